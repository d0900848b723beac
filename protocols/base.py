"""What every protocol state machine speaks: stimuli out, answers in, measures at the end.

A protocol is pure logic (no Qt, no I/O, no clock of its own): a runner asks
:meth:`Procedure.next_stimulus`, delivers it with a device (or asks the examiner to),
hands back what happened with :meth:`Procedure.record`, and reads :meth:`Procedure.result`
when :attr:`Procedure.done`. Randomness (ISI jitter, orders) comes from a seeded
``numpy.random.Generator`` passed in, so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# Stimulus kinds a runner knows how to deliver
THERMAL_RAMP = "thermal-ramp"  # baseline -> towards a cut-off at a rate until the button
THERMAL_PULSE = "thermal-pulse"  # to a target, hold, return (ratings, calibration, TSP)
PRESSURE_RAMP = "pressure-ramp"  # algometer or cuff ramp until the button / VAS
CUFF_PROGRAM = "cuff-program"  # a cuff waveform (TSP trains, CPM conditioning)
MANUAL = "manual"  # applied by the examiner (von Frey, pinprick, brush, tuning fork)
CONFIRM = "confirm"  # the operator confirms a step (cold water bath on, rest period)
SCANNER_LOCKED = "scanner-locked"  # a stimulus started on a scheduled scanner volume

# Answer kinds a runner hands back
STOPPED = "stopped"  # the participant stopped a ramp: value = the stimulus level then
CUTOFF = "cutoff"  # the ramp reached its cut-off without a stop: value = the cut-off
RATING = "rating"  # value = rating on the stimulus' scale (e.g. 0-100)
YES, NO = "yes", "no"  # detection answers (value unused)
VALUE = "value"  # a reading entered by the examiner (e.g. tuning fork x/8)
DONE = "done"  # a manual / confirm step was carried out
PARADOXICAL = "paradoxical"  # a cold ramp felt as warm or hot (PHS)


@dataclass(frozen=True)
class Stimulus:
    """The next thing to deliver (``params`` depend on ``kind``; units in the names)."""

    test: str  # DFNS abbreviation or protocol step, e.g. "CDT", "HPT", "MDT", "PPT"
    kind: str  # one of the stimulus kinds above
    params: Mapping[str, Any]  # e.g. baseline_c, limit_c, rate_c_s, return_rate_c_s
    repetition: int = 1  # 1-based within its test
    isi_s: float = 0.0  # wait this long (from the end of the previous stimulus) first
    site: str = ""
    instruction: str = ""  # shown to the examiner
    participant_instruction: str = ""  # shown to the participant


@dataclass(frozen=True)
class Answer:
    """What happened to one stimulus."""

    kind: str  # one of the answer kinds above
    value: float | None = None
    time: float = 0.0  # program clock
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measure:
    """One result: value with unit, how it is transformed for z-scores, where it came from."""

    name: str  # DFNS abbreviation (CDT, WDT, TSL, PHS, CPT, HPT, MDT, MPT, MPS, DMA, WUR,
    #            VDT, PPT) or TSP, CPM, or a protocol's own (e.g. "T50")
    value: float
    unit: str
    transform: str = "none"  # "log10" where the DFNS z-score uses log10(value)
    trials: tuple[float, ...] = ()  # the values it was computed from
    flags: tuple[str, ...] = ()  # e.g. "cutoff-reached", "outlier", "rate-off-target"
    site: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"phs_count": 1}

    def as_payload(self) -> dict[str, Any]:
        """The ``result`` event payload of the session file."""
        return {"measure": self.name, "value": self.value, "unit": self.unit,
                "transform": self.transform, "trials": list(self.trials),
                "flags": list(self.flags), "site": self.site, **dict(self.extra)}


class Procedure(Protocol):
    """A protocol's state machine."""

    @property
    def done(self) -> bool: ...

    def next_stimulus(self) -> Stimulus | None:
        """The stimulus to deliver now, or None when done. Asking twice without a
        :meth:`record` in between returns the same stimulus."""

    def record(self, answer: Answer) -> None:
        """The answer to the stimulus last returned by :meth:`next_stimulus`."""

    def result(self) -> list[Measure]:
        """The measures so far (complete once :attr:`done`)."""


def isi_schedule(count: int, isi_s: tuple[float, float], rng: np.random.Generator
                 ) -> list[float]:
    """Inter-stimulus intervals: none before the first, then uniform in ``isi_s``."""
    return [0.0 if i == 0 else float(rng.uniform(*isi_s)) for i in range(count)]


# A repetition this far from the median of its test is flagged "outlier" (project defaults,
# not DFNS rules): temperatures 3 °C; differences and pressures a factor of 2 on log scale.
OUTLIER_C = 3.0
OUTLIER_FACTOR = 2.0


def outlier_flags(values: Sequence[float], log_scale: bool) -> tuple[str, ...]:
    """``("outlier",)`` if a repetition lies far from the median of the others' test."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    if len(data) < 3:
        return ()
    if log_scale:
        data = np.log10(np.maximum(data, 1e-9))
        limit = np.log10(OUTLIER_FACTOR)
    else:
        limit = OUTLIER_C
    return ("outlier",) if np.any(np.abs(data - np.median(data)) > limit) else ()


class ProtocolError(ValueError):
    """A procedure was used out of order or given an answer it cannot take."""


class InOrder:
    """Procedures one after another (a battery); the measures of all of them."""

    def __init__(self, procedures: list[Any]) -> None:
        self.procedures = list(procedures)
        self.skipped: set[int] = set()  # indices of procedures the operator skipped

    @property
    def done(self) -> bool:
        return all(p.done or i in self.skipped for i, p in enumerate(self.procedures))

    def _current(self) -> Any:
        return next((p for i, p in enumerate(self.procedures)
                     if not p.done and i not in self.skipped), None)

    def skip_current(self) -> None:
        """End the current procedure now; its measures are left out of :meth:`result`."""
        current = self._current()
        if current is not None:
            self.skipped.add(self.procedures.index(current))

    def next_stimulus(self) -> Stimulus | None:
        current = self._current()
        return None if current is None else current.next_stimulus()

    def record(self, answer: Answer) -> None:
        current = self._current()
        if current is None:
            raise ProtocolError("the battery is complete")
        current.record(answer)

    def result(self) -> list[Measure]:
        return [m for i, p in enumerate(self.procedures) if i not in self.skipped
                for m in p.result()]
