"""Rated heat pulses: calibration of pain ratings before scanning, and temporal summation.

Heat calibration: each temperature of a range is given ``repetitions`` times in a seeded
random order (no temperature twice in a row), as a pulse (ramp, plateau, return) that the
participant rates 0-100. Ratings are fitted against temperature with a logistic function
``100 / (1 + exp(-(T - T50) / s))`` (scipy ``curve_fit``) and a straight line; the
temperatures for the target ratings (e.g. 30/50/70) are read off the logistic fit (the
linear one if the logistic fit fails) and rounded to 0.5 °C. They are stored as measures
``T30``, ``T50``, ``T70`` for later runs.

Temporal summation (TSP): a train of identical pulses, each rated; TSP = last minus first
rating, with the ratio last / first alongside (undefined when the first rating is 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from protocols.base import (
    CUFF_PROGRAM,
    DONE,
    RATING,
    THERMAL_PULSE,
    Answer,
    Measure,
    ProtocolError,
    Stimulus,
    isi_schedule,
)


@dataclass(frozen=True)
class PulseShape:
    baseline_c: float = 32.0
    rate_c_s: float = 8.0  # rise (about 1.5 s from 32 to 44 °C)
    return_rate_c_s: float = 8.0
    hold_s: float = 8.0  # plateau
    rating_window_s: float = 8.0
    isi_s: tuple[float, float] = (10.0, 14.0)

    def params(self, target: float) -> dict[str, float | bool]:
        return {"target_c": target, "baseline_c": self.baseline_c, "rate_c_s": self.rate_c_s,
                "return_rate_c_s": self.return_rate_c_s, "hold_s": self.hold_s,
                "rate": True, "rating_window_s": self.rating_window_s}


def calibration_order(temperatures: list[float], repetitions: int,
                      rng: np.random.Generator) -> list[float]:
    """Each temperature ``repetitions`` times, shuffled per block, never twice in a row."""
    order: list[float] = []
    for _ in range(repetitions):
        block = list(rng.permutation(temperatures))
        if order and len(block) > 1 and block[0] == order[-1]:
            block[0], block[-1] = block[-1], block[0]
        order += [float(t) for t in block]
    return order


class _RatedPulses:
    """Pulses in a fixed order, each answered with a rating (missing ratings allowed)."""

    test = ""

    def __init__(self, targets: list[float], shape: PulseShape, rng: np.random.Generator,
                 site: str, instruction: str, participant_instruction: str,
                 isi: list[float] | None = None) -> None:
        self.targets, self.shape, self.site = targets, shape, site
        self.instruction, self.participant_instruction = instruction, participant_instruction
        self._isi = isi if isi is not None else isi_schedule(len(targets), shape.isi_s, rng)
        self.ratings: list[float | None] = []

    @property
    def done(self) -> bool:
        return len(self.ratings) == len(self.targets)

    def next_stimulus(self) -> Stimulus | None:
        if self.done:
            return None
        i = len(self.ratings)
        return Stimulus(self.test, THERMAL_PULSE, self.shape.params(self.targets[i]),
                        repetition=i + 1, isi_s=self._isi[i], site=self.site,
                        instruction=self.instruction or f"{self.test} pulse {i + 1}/"
                                                        f"{len(self.targets)}: "
                                                        f"{self.targets[i]:g} °C",
                        participant_instruction=self.participant_instruction)

    def record(self, answer: Answer) -> None:
        if self.done:
            raise ProtocolError(f"{self.test}: every pulse is rated")
        if answer.kind not in (RATING, DONE):
            raise ProtocolError(f"{self.test}: a pulse is answered with a rating, "
                                f"not {answer.kind!r}")
        value = answer.value
        if value is not None and not 0.0 <= value <= 100.0:
            raise ProtocolError(f"{self.test}: rating {value!r} is not in 0-100")
        self.ratings.append(value)


class HeatCalibration(_RatedPulses):
    test = "CAL"

    def __init__(self, temperatures: list[float], repetitions: int, shape: PulseShape,
                 rng: np.random.Generator, targets: tuple[float, ...] = (30.0, 50.0, 70.0),
                 site: str = "", instruction: str = "", participant_instruction: str = ""
                 ) -> None:
        super().__init__(calibration_order(temperatures, repetitions, rng), shape, rng, site,
                         instruction, participant_instruction)
        self.target_ratings = targets

    def result(self) -> list[Measure]:
        pairs = [(t, r) for t, r in zip(self.targets, self.ratings, strict=False)
                 if r is not None]
        if len(pairs) < 3:
            return []
        temps, ratings = (np.array(x, dtype=float) for x in zip(*pairs, strict=True))
        fit = fit_ratings(temps, ratings)
        flags = [] if len(pairs) == len(self.targets) else ["missing-ratings"]
        out = []
        for target in self.target_ratings:
            value, how = fit.temperature_for(target)
            extra_flags = tuple(flags) + (("outside-tested-range",)
                                          if not temps.min() <= value <= temps.max() else ())
            out.append(Measure(f"T{target:g}", value, "degC", "none",
                               tuple(float(t) for t in temps), extra_flags, self.site,
                               {"target_rating": target, "fit": how, **fit.describe()}))
        return out


@dataclass(frozen=True)
class RatingFit:
    """Logistic (``t50``, ``spread``; None if it failed) and linear fits of rating vs T."""

    t50: float | None
    spread: float | None
    slope: float
    intercept: float
    r2_logistic: float | None
    r2_linear: float

    def temperature_for(self, rating: float) -> tuple[float, str]:
        """Temperature for ``rating`` rounded to 0.5 °C, and which fit gave it."""
        if self.t50 is not None and self.spread is not None:
            value = self.t50 + self.spread * np.log(rating / (100.0 - rating))
            return round_half(value), "logistic"
        return round_half((rating - self.intercept) / self.slope), "linear"

    def describe(self) -> dict[str, float | None]:
        return {"t50": self.t50, "spread": self.spread, "slope": self.slope,
                "intercept": self.intercept, "r2_logistic": self.r2_logistic,
                "r2_linear": self.r2_linear}


def logistic(t: np.ndarray, t50: float, spread: float) -> np.ndarray:
    return 100.0 / (1.0 + np.exp(-(t - t50) / spread))


def fit_ratings(temps: np.ndarray, ratings: np.ndarray) -> RatingFit:
    slope, intercept = np.polyfit(temps, ratings, 1)
    r2_linear = _r2(ratings, slope * temps + intercept)
    try:
        (t50, spread), _ = curve_fit(logistic, temps, ratings,
                                     p0=(float(np.median(temps)), 1.0),
                                     bounds=((temps.min() - 10, 0.05), (temps.max() + 10, 10.0)))
        r2 = _r2(ratings, logistic(temps, t50, spread))
        return RatingFit(float(t50), float(spread), float(slope), float(intercept), r2,
                         r2_linear)
    except (RuntimeError, ValueError):
        return RatingFit(None, None, float(slope), float(intercept), None, r2_linear)


def round_half(value: float) -> float:
    """To the nearest 0.5 °C, halves up (46.25 -> 46.5, 46.75 -> 47.0)."""
    return float(np.floor(value * 2.0 + 0.5) / 2.0)


def _r2(observed: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum((observed - observed.mean()) ** 2))
    return 1.0 - float(np.sum((observed - predicted) ** 2)) / total if total > 0 else 0.0


class HeatTsp:
    """A train of ``pulses`` identical pulses at ``target_c``, one every ``period_s`` (a
    fixed rate, as temporal summation needs), each rated while the train goes on."""

    test = "TSP"

    def __init__(self, target_c: float, pulses: int, shape: PulseShape, site: str = "",
                 instruction: str = "", participant_instruction: str = "",
                 period_s: float = 2.0) -> None:
        self.target_c, self.pulses, self.shape, self.site = target_c, pulses, shape, site
        self.instruction, self.participant_instruction = instruction, participant_instruction
        self.period_s = period_s
        self.ratings: list[float | None] | None = None
        self.onset_delay_s = 0.0

    @property
    def done(self) -> bool:
        return self.ratings is not None

    def next_stimulus(self) -> Stimulus | None:
        if self.done:
            return None
        params = {**self.shape.params(self.target_c), "train": self.pulses,
                  "period_s": self.period_s}
        return Stimulus(self.test, THERMAL_PULSE, params, site=self.site,
                        instruction=self.instruction or f"TSP: {self.pulses} pulses at "
                                                        f"{self.target_c:g} °C, one every "
                                                        f"{self.period_s:g} s",
                        participant_instruction=self.participant_instruction)

    def record(self, answer: Answer) -> None:
        if self.done:
            raise ProtocolError("TSP: the train is over")
        ratings = answer.extra.get("ratings") if answer.kind == RATING else None
        if not isinstance(ratings, list) or len(ratings) != self.pulses:
            raise ProtocolError(f"TSP: a train is answered with {self.pulses} ratings")
        if any(r is not None and not 0.0 <= r <= 100.0 for r in ratings):
            raise ProtocolError("TSP: ratings must be in 0-100")
        self.ratings = list(ratings)
        self.onset_delay_s = float(answer.extra.get("max_onset_delay_s", 0.0))

    def result(self) -> list[Measure]:
        ratings = self.ratings or []
        given = [r for r in ratings if r is not None]
        if not ratings or ratings[0] is None or ratings[-1] is None:
            return []
        first, last = float(ratings[0]), float(ratings[-1])
        flags = () if len(given) == len(ratings) else ("missing-ratings",)
        if self.onset_delay_s > 0.1 * self.period_s:
            flags += ("rate-not-kept",)
        ratio = last / first if first > 0 else None
        return [Measure("TSP", last - first, "NRS 0-100", "none", tuple(given),
                        flags + (() if ratio is not None else ("first-rating-zero",)),
                        self.site, {"first": first, "last": last, "ratio": ratio,
                                    "period_s": self.period_s,
                                    "sign": "positive = summation (last rated higher)"})]


class CuffTsp(HeatTsp):
    """Temporal summation by repeated cuff inflations: ``pulses`` inflations to ``level_kpa``
    (``on_s`` on, ``off_s`` off) on one outlet, each rated on the cuff's VAS."""

    def __init__(self, level_kpa: float, pulses: int, on_s: float, off_s: float, outlet: int,
                 site: str = "", instruction: str = "", participant_instruction: str = ""
                 ) -> None:
        super().__init__(level_kpa, pulses, PulseShape(), site, instruction,
                         participant_instruction, period_s=on_s + off_s)
        self.on_s, self.off_s, self.outlet = on_s, off_s, outlet

    def next_stimulus(self) -> Stimulus | None:
        if self.done:
            return None
        params = {"train": self.pulses, "level_kpa": self.target_c, "on_s": self.on_s,
                  "off_s": self.off_s, "outlet": self.outlet}
        return Stimulus(self.test, CUFF_PROGRAM, params, site=self.site,
                        instruction=self.instruction or f"TSP: {self.pulses} cuff inflations "
                                                        f"to {self.target_c:g} kPa",
                        participant_instruction=self.participant_instruction)
