"""MDT and MPT: the DFNS method of limits with series of ascending and descending forces.

The examiner applies von Frey filaments (MDT) or pinpricks (MPT) by hand; the procedure says
which force comes next and where in the series it is, and computes the threshold as the
geometric mean of the turning points. Also home of :class:`ManualProcedure`, the base the
other examiner-guided tests (:mod:`protocols.mechanical`) share.

Series logic (DFNS "modified method of limits"; the staircase reading is recalled):

- The first stimulus is ``start_force_mN``. Its answer sets the direction of series 1:
  felt -> descending, not felt -> ascending.
- An ascending series goes up one factor-2 step per "no" and ends at the first "yes"
  (a turning point); a descending series goes down per "yes" and ends at the first "no".
- The next series runs the other way and starts one step beyond the turning point.
- Ceiling: "no" at the largest force ends an ascending series with that force as its
  (capped) turning point and flag ``ceiling``; floor: "yes" at the smallest force ends a
  descending series likewise with flag ``floor``. The next series then starts at that force.
- After ``2 * series_pairs`` turning points (default 5 ascending + 5 descending) it is done.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from protocols.base import MANUAL, NO, YES, Answer, Measure, ProtocolError, Stimulus

SHARP, BLUNT = YES, NO  # MPT answers: sharp (pain) is YES, blunt is NO
ASCENDING, DESCENDING = "ascending", "descending"
INCOMPLETE = "incomplete"  # flag of a measure computed before the procedure was done


def factor2_forces(low_mN: float, high_mN: float) -> tuple[float, ...]:
    """``low_mN``, 2 x ``low_mN``, ... up to ``high_mN`` (which must be on the grid)."""
    steps = math.log2(high_mN / low_mN)
    if low_mN <= 0 or steps < 1 or abs(steps - round(steps)) > 1e-9:
        raise ValueError(f"{low_mN:g}-{high_mN:g} mN is not a factor-2 range")
    return tuple(low_mN * 2.0**k for k in range(round(steps) + 1))


def geometric_mean(values: Sequence[float]) -> float:
    """exp(mean(log(values))); values must be positive."""
    return float(np.exp(np.mean(np.log(np.asarray(values, dtype=float)))))


def expect_kind(test: str, answer: Answer, *kinds: str, hint: str = "") -> None:
    """Raise :class:`ProtocolError` unless ``answer.kind`` is one of ``kinds``."""
    if answer.kind not in kinds:
        wanted = " or ".join(repr(k) for k in kinds) + (f" ({hint})" if hint else "")
        raise ProtocolError(f"{test}: answer kind {answer.kind!r} does not fit, expected {wanted}")


def expect_number(test: str, answer: Answer, low: float, high: float, what: str) -> float:
    """``answer.value`` as a float in [low, high], else :class:`ProtocolError`."""
    value = answer.value
    number = isinstance(value, int | float | np.integer | np.floating)
    if not number or isinstance(value, bool) or not low <= float(value) <= high:
        raise ProtocolError(f"{test}: {what} {value!r} is not a number in {low:g}-{high:g}")
    return float(value)


class ManualProcedure(ABC):
    """Examiner-guided procedure: one pending stimulus, answers validated before use."""

    test = ""

    def __init__(self, site: str = "") -> None:
        self.site = site
        self._pending: Stimulus | None = None
        self._applied = 0  # stimuli answered so far

    @property
    def done(self) -> bool:
        return self._finished()

    def next_stimulus(self) -> Stimulus | None:
        """The stimulus to apply now (the same one until :meth:`record`), None when done."""
        if self.done:
            return None
        if self._pending is None:
            self._pending = self._make_stimulus(self._applied + 1)
        return self._pending

    def record(self, answer: Answer) -> None:
        """The answer to the pending stimulus; a wrong one raises :class:`ProtocolError`."""
        if self._pending is None:
            raise ProtocolError(f"{self.test}: no stimulus pending, call next_stimulus() first")
        self._take(self._pending, answer)  # validates before it changes any state
        self._pending = None
        self._applied += 1

    def _flags(self, *flags: str) -> tuple[str, ...]:
        """``flags`` plus ``incomplete`` while not done."""
        return tuple(flags) + (() if self.done else (INCOMPLETE,))

    @abstractmethod
    def _finished(self) -> bool: ...

    @abstractmethod
    def _make_stimulus(self, number: int) -> Stimulus: ...

    @abstractmethod
    def _take(self, stimulus: Stimulus, answer: Answer) -> None: ...

    @abstractmethod
    def result(self) -> list[Measure]: ...


@dataclass(frozen=True)
class TurningPoint:
    series: int  # 1-based
    direction: str  # ASCENDING or DESCENDING
    force_mN: float
    capped: bool  # the series hit the end of the range (ceiling or floor)


class SeriesThreshold(ManualProcedure):
    """Method of limits over factor-2 forces; threshold = geometric mean of turning points."""

    instrument = ""
    unit_name = ""  # "filament" or "pin" in the examiner instruction
    question = ""  # what the examiner records as yes / no
    participant_text = ""
    answer_hint = ""  # added to the error for a wrong answer kind

    def __init__(self, forces_mN: Sequence[float], start_force_mN: float,
                 series_pairs: int = 5, site: str = "") -> None:
        super().__init__(site)
        self.forces_mN = tuple(sorted(float(f) for f in forces_mN))
        if start_force_mN not in self.forces_mN:
            raise ValueError(f"{self.test}: start force {start_force_mN:g} mN is not in the set")
        if series_pairs < 1:
            raise ValueError(f"{self.test}: series_pairs must be at least 1")
        self.start_force_mN = float(start_force_mN)
        self.series_pairs = series_pairs
        self.turning_points: list[TurningPoint] = []
        self._index = self.forces_mN.index(self.start_force_mN)
        self._direction = ""  # set by the first answer

    @property
    def series(self) -> int:
        """1-based number of the series in progress."""
        return len(self.turning_points) + 1

    def _finished(self) -> bool:
        return len(self.turning_points) >= 2 * self.series_pairs

    def _make_stimulus(self, number: int) -> Stimulus:
        force = self.forces_mN[self._index]
        total = 2 * self.series_pairs
        where = f"{self._direction}" if self._direction else "start, direction set by the answer"
        return Stimulus(
            test=self.test, kind=MANUAL, repetition=number, site=self.site,
            params={"instrument": self.instrument, "force_mN": force,
                    "series": self.series, "direction": self._direction or "start"},
            instruction=(f"Series {self.series}/{total} ({where}): apply the {force:g} mN "
                         f"{self.unit_name} once. {self.question}"),
            participant_instruction=self.participant_text)

    def _take(self, stimulus: Stimulus, answer: Answer) -> None:
        expect_kind(self.test, answer, YES, NO, hint=self.answer_hint)
        felt = answer.kind == YES
        if not self._direction:
            self._direction = DESCENDING if felt else ASCENDING
        top = len(self.forces_mN) - 1
        if self._direction == ASCENDING:
            if felt or self._index == top:
                self._turn(capped=not felt)
            else:
                self._index += 1
        elif not felt or self._index == 0:
            self._turn(capped=felt)
        else:
            self._index -= 1

    def _turn(self, capped: bool) -> None:
        """End the series at the current force; the next one goes the other way."""
        self.turning_points.append(TurningPoint(
            self.series, self._direction, self.forces_mN[self._index], capped))
        self._direction = DESCENDING if self._direction == ASCENDING else ASCENDING
        if not capped:
            step = 1 if self._direction == ASCENDING else -1
            self._index = min(max(self._index + step, 0), len(self.forces_mN) - 1)

    def result(self) -> list[Measure]:
        """The threshold (mN, log10 for z) from the turning points so far."""
        if not self.turning_points:
            return []
        points = self.turning_points
        flags = [name for name, direction in (("ceiling", ASCENDING), ("floor", DESCENDING))
                 if any(p.capped and p.direction == direction for p in points)]
        return [Measure(
            name=self.test, value=geometric_mean([p.force_mN for p in points]), unit="mN",
            transform="log10", trials=tuple(p.force_mN for p in points),
            flags=self._flags(*flags), site=self.site,
            extra={"directions": [p.direction for p in points],
                   "capped_series": sum(p.capped for p in points),
                   "start_force_mN": self.start_force_mN, "stimuli": self._applied})]


MDT_FORCES_MN = factor2_forces(0.25, 512.0)  # 12 von Frey filaments
MPT_FORCES_MN = factor2_forces(8.0, 512.0)  # 7 pinpricks


class MdtProcedure(SeriesThreshold):
    """MDT: von Frey filaments 0.25-512 mN (factor 2), 5 + 5 series; start 16 mN (recalled)."""

    test = "MDT"
    instrument = "von Frey"
    unit_name = "von Frey filament"
    question = "Record yes if the participant felt a touch, no if not."
    participant_text = "Eyes closed. Say 'yes' whenever you feel a touch."

    def __init__(self, start_force_mN: float = 16.0, series_pairs: int = 5, site: str = "",
                 forces_mN: Sequence[float] = MDT_FORCES_MN) -> None:
        super().__init__(forces_mN, start_force_mN, series_pairs, site)


class MptProcedure(SeriesThreshold):
    """MPT: pinpricks 8-512 mN (factor 2), sharp = yes, blunt = no; start 8 mN (assumed)."""

    test = "MPT"
    instrument = "pinprick"
    unit_name = "pinprick"
    question = "Record sharp as yes, blunt as no."
    answer_hint = "sharp = yes, blunt = no"
    participant_text = "Eyes closed. Say whether the stimulus feels 'sharp' or 'blunt'."

    def __init__(self, start_force_mN: float = 8.0, series_pairs: int = 5, site: str = "",
                 forces_mN: Sequence[float] = MPT_FORCES_MN) -> None:
        super().__init__(forces_mN, start_force_mN, series_pairs, site)
