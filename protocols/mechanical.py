"""Examiner-guided mechanical DFNS tests: MDT, MPT, MPS + DMA, WUR and VDT.

Each test is a :class:`protocols.base.Procedure`: it names the stimulus the examiner applies
next (kind ``MANUAL``), validates and records the answer or rating, and computes the DFNS
value. MDT and MPT (method of limits series) live in :mod:`protocols.method_of_series` and
are re-exported here. Formulas, defaults and what is recalled: docs/protocols-mechanical.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import TypeVar

import numpy as np

from protocols.base import MANUAL, RATING, VALUE, Answer, Measure, Stimulus
from protocols.dfns import MPS_LOG_OFFSET
from protocols.method_of_series import (
    BLUNT,
    MDT_FORCES_MN,
    MPT_FORCES_MN,
    SHARP,
    ManualProcedure,
    MdtProcedure,
    MptProcedure,
    expect_kind,
    expect_number,
    geometric_mean,
)

__all__ = ["BLUNT", "MDT_FORCES_MN", "MPT_FORCES_MN", "SHARP", "MdtProcedure", "MptProcedure",
           "MpsDmaProcedure", "TouchStimulus", "VdtProcedure", "WurProcedure", "balanced_order"]

RATING_SCALE = "NRS 0-100"
RATE_TEXT = "Rate how painful it was: 0 = not painful, 100 = most intense pain imaginable."
MPS_FORCES_MN = MPT_FORCES_MN  # 8-512 mN, 7 pinpricks
LIGHT_TOUCH = ("cotton wisp", "Q-tip", "brush")
T = TypeVar("T")


@dataclass(frozen=True)
class TouchStimulus:
    """One stimulus type of MPS/DMA: a pinprick force or a light-touch instrument."""

    instrument: str  # "pinprick" or a light-touch instrument
    force_mN: float | None = None  # pinprick only

    @property
    def is_pinprick(self) -> bool:
        return self.force_mN is not None


def balanced_order(kinds: Sequence[T], repeats: int, rng: np.random.Generator) -> list[T]:
    """``repeats`` blocks, each a random permutation of all ``kinds`` (so each appears
    ``repeats`` times); a block that would start with the kind ending the previous block
    has its first and last entries swapped, so no kind is applied twice in a row."""
    order: list[T] = []
    for _ in range(repeats):
        block = [kinds[int(i)] for i in rng.permutation(len(kinds))]
        if order and len(block) > 1 and block[0] == order[-1]:
            block[0], block[-1] = block[-1], block[0]
        order.extend(block)
    return order


def _rating(test: str, answer: Answer) -> float:
    expect_kind(test, answer, RATING)
    return expect_number(test, answer, 0.0, 100.0, "rating")


class MpsDmaProcedure(ManualProcedure):
    """MPS and DMA: 7 pinprick forces and 3 light-touch stimuli, each ``repeats`` times in
    a balanced pseudo-random order from ``rng``, each rated 0-100.

    MPS = geometric mean of (pinprick rating + ``log_offset``) - ``log_offset``, so that
    log10(MPS + 0.1), the DFNS z-score scale (:mod:`protocols.dfns`), is the mean of
    log10(rating + 0.1). DMA = arithmetic mean of the light-touch ratings (no transform).
    All stimuli carry ``test="MPS"``.
    """

    test = "MPS"

    def __init__(self, rng: np.random.Generator, repeats: int = 5, site: str = "",
                 forces_mN: Sequence[float] = MPS_FORCES_MN,
                 light_touch: Sequence[str] = LIGHT_TOUCH,
                 log_offset: float = MPS_LOG_OFFSET) -> None:
        super().__init__(site)
        if repeats < 1 or not log_offset > 0:
            raise ValueError("MPS: repeats must be at least 1 and log_offset above 0")
        kinds = [TouchStimulus("pinprick", float(f)) for f in forces_mN]
        kinds += [TouchStimulus(name) for name in light_touch]
        self.order: tuple[TouchStimulus, ...] = tuple(balanced_order(kinds, repeats, rng))
        self.log_offset = log_offset
        self.ratings: list[tuple[TouchStimulus, float]] = []

    def _finished(self) -> bool:
        return len(self.ratings) >= len(self.order)

    def _make_stimulus(self, number: int) -> Stimulus:
        kind = self.order[number - 1]
        params: dict[str, object] = {"instrument": kind.instrument, "scale": RATING_SCALE}
        if kind.is_pinprick:
            params["force_mN"] = kind.force_mN
            action = f"apply the {kind.force_mN:g} mN pinprick once"
        else:
            action = f"stroke the skin once with the {kind.instrument}"
        return Stimulus(
            test=self.test, kind=MANUAL, params=params, repetition=number, site=self.site,
            instruction=f"Stimulus {number}/{len(self.order)}: {action}, then ask for a rating.",
            participant_instruction=RATE_TEXT)

    def _take(self, stimulus: Stimulus, answer: Answer) -> None:
        self.ratings.append((self.order[len(self.ratings)], _rating(self.test, answer)))

    def _shifted_geometric_mean(self, ratings: Sequence[float]) -> float:
        """geomean(rating + offset) - offset, so log10(value + offset) = mean log10(r + offset)."""
        shifted = geometric_mean([r + self.log_offset for r in ratings]) - self.log_offset
        return max(shifted, 0.0)

    def result(self) -> list[Measure]:
        """MPS from the pinprick ratings, DMA from the light-touch ratings (so far)."""
        pin = [r for kind, r in self.ratings if kind.is_pinprick]
        touch = [r for kind, r in self.ratings if not kind.is_pinprick]
        measures = []
        if pin:
            measures.append(Measure(
                name="MPS", value=self._shifted_geometric_mean(pin),
                unit=RATING_SCALE, transform="log10", trials=tuple(pin), flags=self._flags(),
                site=self.site, extra={"log_offset": self.log_offset}))
        if touch:
            measures.append(Measure(
                name="DMA", value=fmean(touch), unit=RATING_SCALE, trials=tuple(touch),
                flags=self._flags(), site=self.site,
                extra={"painful_light_touch": sum(r > 0 for r in touch)}))
        return measures


class WurProcedure(ManualProcedure):
    """WUR: ``pairs`` x (one single pinprick, then a train of ``train_length`` at
    ``train_rate_hz``), all at ``force_mN`` (256 mN, recalled), each rated 0-100.

    WUR = mean train rating / mean single rating (log10 for z). If either mean is 0, both
    get ``zero_offset`` added first and the measure is flagged (``single-rating-zero``,
    ``train-rating-zero``), so the value stays finite and positive.
    """

    test = "WUR"

    def __init__(self, force_mN: float = 256.0, pairs: int = 5, train_length: int = 10,
                 train_rate_hz: float = 1.0, site: str = "", zero_offset: float = 0.1) -> None:
        super().__init__(site)
        self.force_mN = force_mN
        self.pairs = pairs
        self.train_length = train_length
        self.train_rate_hz = train_rate_hz
        self.zero_offset = zero_offset
        self.single: list[float] = []
        self.train: list[float] = []

    def _finished(self) -> bool:
        return len(self.train) >= self.pairs

    def _make_stimulus(self, number: int) -> Stimulus:
        pair, is_train = (number + 1) // 2, number % 2 == 0
        params: dict[str, object] = {"instrument": "pinprick", "force_mN": self.force_mN,
                                     "count": self.train_length if is_train else 1,
                                     "scale": RATING_SCALE}
        if is_train:
            params["rate_hz"] = self.train_rate_hz
            action = (f"apply a train of {self.train_length} pinpricks ({self.force_mN:g} mN) "
                      f"at {self.train_rate_hz:g}/s within about 1 cm², then ask for one "
                      f"rating of the whole train")
            told = "Rate the overall pain of the whole series of pricks. " + RATE_TEXT
        else:
            action = f"apply a single {self.force_mN:g} mN pinprick, then ask for a rating"
            told = RATE_TEXT
        return Stimulus(test=self.test, kind=MANUAL, params=params, repetition=number,
                        site=self.site, instruction=f"Pair {pair}/{self.pairs}: {action}.",
                        participant_instruction=told)

    def _take(self, stimulus: Stimulus, answer: Answer) -> None:
        rating = _rating(self.test, answer)
        (self.train if len(self.single) > len(self.train) else self.single).append(rating)

    def result(self) -> list[Measure]:
        """The wind-up ratio, once there is at least one single and one train rating."""
        if not self.single or not self.train:
            return []
        single, train = fmean(self.single), fmean(self.train)
        flags = [f for f, mean in (("single-rating-zero", single), ("train-rating-zero", train))
                 if mean == 0]
        if flags:
            single, train = single + self.zero_offset, train + self.zero_offset
        ordered = [r for pair in zip(self.single, self.train, strict=False) for r in pair]
        return [Measure(
            name=self.test, value=train / single, unit="ratio", transform="log10",
            trials=tuple(ordered + self.single[len(self.train):]), flags=self._flags(*flags),
            site=self.site, extra={"single_ratings": list(self.single),
                                   "train_ratings": list(self.train)})]


class VdtProcedure(ManualProcedure):
    """VDT: 64 Hz Rydel-Seiffer tuning fork, ``repetitions`` readings x/8 at disappearance;
    VDT = their mean (x/8, no transform)."""

    test = "VDT"

    def __init__(self, repetitions: int = 3, site: str = "") -> None:
        super().__init__(site)
        self.repetitions = repetitions
        self.readings: list[float] = []

    def _finished(self) -> bool:
        return len(self.readings) >= self.repetitions

    def _make_stimulus(self, number: int) -> Stimulus:
        return Stimulus(
            test=self.test, kind=MANUAL, repetition=number, site=self.site,
            params={"instrument": "Rydel-Seiffer tuning fork", "frequency_hz": 64.0,
                    "scale": "x/8"},
            instruction=(f"Repetition {number}/{self.repetitions}: strike the 64 Hz fork, place "
                         "it on the bony site; enter the x/8 reading when the participant says "
                         "the vibration has gone."),
            participant_instruction="Say 'now' as soon as you no longer feel the vibration.")

    def _take(self, stimulus: Stimulus, answer: Answer) -> None:
        expect_kind(self.test, answer, VALUE)
        self.readings.append(expect_number(self.test, answer, 0.0, 8.0, "reading x/8"))

    def result(self) -> list[Measure]:
        """Mean reading x/8 so far."""
        if not self.readings:
            return []
        return [Measure(name=self.test, value=fmean(self.readings), unit="/8",
                        trials=tuple(self.readings), flags=self._flags(), site=self.site)]


class PinprickTsp(WurProcedure):
    """Temporal summation by pinprick (low back pain batteries): the same single/train pairs
    as WUR; TSP = mean train rating minus mean single rating (positive = summation), with
    the wind-up ratio alongside."""

    test = "TSP"

    def result(self) -> list[Measure]:
        if not self.single or not self.train:
            return []
        single, train = fmean(self.single), fmean(self.train)
        ratio = train / single if single > 0 else None
        ordered = [r for pair in zip(self.single, self.train, strict=False) for r in pair]
        return [Measure(
            name="TSP", value=train - single, unit="NRS 0-100", transform="none",
            trials=tuple(ordered), flags=self._flags(*(() if ratio else ("single-rating-zero",))),
            site=self.site, extra={"modality": "pinprick", "ratio": ratio,
                                   "single_ratings": list(self.single),
                                   "train_ratings": list(self.train),
                                   "sign": "positive = summation (the train hurts more)"})]
