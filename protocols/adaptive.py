"""Shared pieces of the yes/no level procedures: stimulus templates and trial bookkeeping.

A level procedure presents one pulse per trial at a *level* (°C, kPa, or a difference from a
baseline), hears YES (detected / painful) or NO, and picks the next level. The procedures are
:class:`protocols.staircase.Staircase`, :class:`protocols.staircase.MethodOfLevels` and
:class:`protocols.psychometric.PsychometricProcedure`; see ``docs/protocols-adaptive.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.base import (
    NO,
    PRESSURE_RAMP,
    THERMAL_PULSE,
    YES,
    Answer,
    Measure,
    ProtocolError,
    Stimulus,
)

_EPS = 1e-9  # tolerance for level comparisons (levels are rounded to 9 decimals)


@dataclass(frozen=True)
class StimulusTemplate:
    """How a level becomes a :class:`Stimulus`: ``params[level_key] = origin + sign * level``.

    ``sign`` is +1 or -1 (-1 e.g. for cooling below a baseline). ``isi_s`` is the wait before
    each pulse; ``isi_jitter_s`` adds a uniform draw in [0, jitter) from the procedure's rng.
    """

    test: str
    kind: str
    level_key: str
    unit: str
    params: Mapping[str, Any] = field(default_factory=dict)
    origin: float = 0.0
    sign: int = 1
    site: str = ""
    isi_s: float = 0.0
    isi_jitter_s: float = 0.0
    instruction: str = ""
    participant_instruction: str = ""

    def __post_init__(self) -> None:
        if self.sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, not {self.sign!r}")
        if self.level_key in self.params:
            raise ValueError(f"{self.level_key!r} is set per trial; remove it from params")
        if self.isi_s < 0 or self.isi_jitter_s < 0:
            raise ValueError("isi_s and isi_jitter_s must be >= 0")

    def device_value(self, level: float) -> float:
        """The device setting (``params[level_key]``) for ``level``."""
        return round(self.origin + self.sign * level, 9)

    def stimulus(self, level: float, repetition: int, isi_s: float) -> Stimulus:
        """The pulse at ``level``."""
        params = {**self.params, self.level_key: self.device_value(level)}
        return Stimulus(test=self.test, kind=self.kind, params=params, repetition=repetition,
                        isi_s=isi_s, site=self.site, instruction=self.instruction,
                        participant_instruction=self.participant_instruction)


def thermal_pulse(test: str, *, rate_c_s: float, hold_s: float, return_rate_c_s: float,
                  baseline_c: float = 32.0, levels: str = "absolute", site: str = "",
                  isi_s: float = 0.0, isi_jitter_s: float = 0.0) -> StimulusTemplate:
    """A THERMAL_PULSE template (level key ``target_c``, unit °C).

    ``levels``: "absolute" (level = target °C), "warm" (level = °C above ``baseline_c``) or
    "cold" (level = °C below ``baseline_c``).
    """
    mappings = {"absolute": (0.0, 1), "warm": (baseline_c, 1), "cold": (baseline_c, -1)}
    if levels not in mappings:
        raise ValueError(f"levels must be one of {sorted(mappings)}, not {levels!r}")
    origin, sign = mappings[levels]
    params = {"baseline_c": baseline_c, "rate_c_s": rate_c_s, "hold_s": hold_s,
              "return_rate_c_s": return_rate_c_s}
    return StimulusTemplate(test=test, kind=THERMAL_PULSE, level_key="target_c", unit="°C",
                            params=params, origin=origin, sign=sign, site=site, isi_s=isi_s,
                            isi_jitter_s=isi_jitter_s)


def pressure_pulse(test: str, *, rate_kpa_s: float, hold_s: float, site: str = "",
                   isi_s: float = 0.0, isi_jitter_s: float = 0.0) -> StimulusTemplate:
    """A pressure pulse template: PRESSURE_RAMP to ``target_kpa`` (unit kPa), hold, release."""
    params = {"rate_kpa_s": rate_kpa_s, "hold_s": hold_s}
    return StimulusTemplate(test=test, kind=PRESSURE_RAMP, level_key="target_kpa", unit="kPa",
                            params=params, site=site, isi_s=isi_s, isi_jitter_s=isi_jitter_s)


def near_bound(value: float, lower: float, upper: float, margin: float) -> bool:
    """Whether ``value`` is within ``margin`` of ``lower`` or ``upper``."""
    return value - lower <= margin + _EPS or upper - value <= margin + _EPS


def sample_sd(values: list[float]) -> float | None:
    """Sample SD (n - 1), None for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


class YesNoProcedure:
    """Bookkeeping for one pulse per trial, YES/NO answers, bounds and the stop reason.

    Subclasses provide :meth:`_first_level`, :meth:`_update` (sets ``self._level`` or calls
    :meth:`_stop`) and :meth:`_estimate`.
    """

    method = "yes-no"

    def __init__(self, name: str, template: StimulusTemplate, *, lower: float, upper: float,
                 max_trials: int, rng: np.random.Generator | None = None) -> None:
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise ValueError(f"bounds must be finite with lower < upper, got {lower}, {upper}")
        if max_trials < 1:
            raise ValueError("max_trials must be >= 1")
        if template.isi_jitter_s > 0 and rng is None:
            raise ValueError("isi_jitter_s needs a seeded numpy Generator (rng)")
        self.name, self.template = name, template
        self.lower, self.upper, self.max_trials = float(lower), float(upper), max_trials
        self._rng = rng
        self.levels: list[float] = []
        self.answers: list[bool] = []
        self.stop_reason: str | None = None
        self._flags: list[str] = []
        self._pending: Stimulus | None = None
        self._level = 0.0

    # --------------------------------------------------------------- Procedure interface

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def next_stimulus(self) -> Stimulus | None:
        """The pulse to deliver now (the same one until :meth:`record`), None when done."""
        if self.done:
            return None
        if self._pending is None:
            if not self.levels:
                self._level = self._clamp(self._first_level())
            isi = self.template.isi_s
            if self.template.isi_jitter_s > 0:
                isi += float(self._rng.uniform(0.0, self.template.isi_jitter_s))
            self._pending = self.template.stimulus(self._level, len(self.levels) + 1, isi)
        return self._pending

    def record(self, answer: Answer) -> None:
        """YES (detected / painful) or NO for the pulse last returned."""
        if self.done:
            raise ProtocolError(f"{self.name}: the procedure is done; no answer is expected")
        if self._pending is None:
            raise ProtocolError(f"{self.name}: record() before next_stimulus()")
        if answer.kind not in (YES, NO):
            raise ProtocolError(f"{self.name}: takes a yes/no answer, not {answer.kind!r}")
        self._pending = None
        level, detected = self._level, answer.kind == YES
        self.levels.append(level)
        self.answers.append(detected)
        self._update(level, detected)
        if not self.done and len(self.levels) >= self.max_trials:
            self._stop("max-trials", flag=self._cap_is_early())

    def result(self) -> list[Measure]:
        """The measure so far (empty before the first answer)."""
        if not self.levels:
            return []
        value, flags, extra = self._estimate()
        extra = {"method": self.method, "stop": self.stop_reason,
                 "answers": tuple(YES if a else NO for a in self.answers), **extra}
        flags = tuple(dict.fromkeys(self._flags + flags))
        return [Measure(name=self.name, value=float(value), unit=self.template.unit,
                        trials=tuple(self.levels), flags=flags,
                        site=self.template.site, extra=extra)]

    # --------------------------------------------------------------- for subclasses

    def _first_level(self) -> float:
        raise NotImplementedError

    def _update(self, level: float, detected: bool) -> None:
        raise NotImplementedError

    def _estimate(self) -> tuple[float, list[str], dict[str, Any]]:
        raise NotImplementedError

    def _cap_is_early(self) -> bool:
        """Whether reaching ``max_trials`` means the stopping criterion was not met."""
        return True

    def _flag(self, flag: str) -> None:
        if flag not in self._flags:
            self._flags.append(flag)

    def _stop(self, reason: str, flag: bool = False) -> None:
        self.stop_reason = reason
        if flag:
            self._flag(reason)

    def _clamp(self, level: float) -> float:
        """``level`` within the bounds (flag "clamped" when it was not), rounded to 1e-9."""
        clamped = min(max(level, self.lower), self.upper)
        if abs(clamped - level) > _EPS:
            self._flag("clamped")
        return round(clamped, 9)
