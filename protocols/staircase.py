"""Transformed up-down staircase and method of levels: linear steps, YES/NO pulses.

Both present a pulse at a fixed level per trial (no reaction time in the threshold) and move
the level by a *linear* step in the stimulus unit (°C or kPa), never multiplicatively.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from protocols.adaptive import StimulusTemplate, YesNoProcedure, near_bound, sample_sd


class Staircase(YesNoProcedure):
    """1-up/N-down staircase (Levitt 1971): converges on P(YES) = 0.5 ** (1 / n_down).

    Any NO moves the level up by ``step``; ``n_down`` YES in a row move it down. A reversal is
    a change of direction; its level is the level of the trial that caused it. The step halves
    at the reversal counts in ``halve_at`` (never below ``min_step``). Stops as soon as EITHER
    ``max_reversals`` reversals OR ``max_trials`` trials are reached. Estimate: mean (and SD)
    of the last ``estimate_last`` reversal levels.
    """

    method = "staircase"

    def __init__(self, name: str, template: StimulusTemplate, *, start: float, step: float,
                 lower: float, upper: float, n_down: int = 2, max_trials: int = 50,
                 max_reversals: int = 8, estimate_last: int = 6, halve_at: Sequence[int] = (),
                 min_step: float = 0.0, rng: np.random.Generator | None = None) -> None:
        super().__init__(name, template, lower=lower, upper=upper, max_trials=max_trials,
                         rng=rng)
        if step <= 0 or min_step < 0 or n_down < 1:
            raise ValueError("need step > 0, min_step >= 0 and n_down >= 1")
        if not 1 <= estimate_last <= max_reversals:
            raise ValueError("need 1 <= estimate_last <= max_reversals")
        self.start, self.step, self.min_step = float(start), float(step), float(min_step)
        self.n_down, self.max_reversals, self.estimate_last = n_down, max_reversals, estimate_last
        self.halve_at = frozenset(halve_at)
        self.reversals: list[float] = []
        self._direction = 0  # +1 up, -1 down, 0 before the first move
        self._yes_run = 0

    @property
    def target_p(self) -> float:
        """P(YES) the rule converges on: 0.707 for 1-up/2-down, 0.794 for 1-up/3-down."""
        return 0.5 ** (1.0 / self.n_down)

    def _first_level(self) -> float:
        return self.start

    def _update(self, level: float, detected: bool) -> None:
        self._yes_run = self._yes_run + 1 if detected else 0
        move = -1 if self._yes_run >= self.n_down else (0 if detected else 1)
        if move == 0:
            return
        self._yes_run = 0
        if self._direction and move != self._direction:
            self._reverse(level)
        self._direction = move
        self._level = self._clamp(level + move * self.step)
        if len(self.reversals) >= self.max_reversals:
            self._stop("reversals")

    def _reverse(self, level: float) -> None:
        self.reversals.append(level)
        if len(self.reversals) in self.halve_at:
            self.step = max(self.step / 2.0, self.min_step)

    def _estimate(self) -> tuple[float, list[str], dict[str, Any]]:
        used = self.reversals[-self.estimate_last:]
        flags = []
        if used:
            value = float(np.mean(used))
            if len(used) < self.estimate_last:
                flags.append("few-reversals")
        else:  # never turned: report where it ended up
            value = self.levels[-1]
            flags.append("no-reversals")
        if near_bound(value, self.lower, self.upper, self.step):
            flags.append("at-bound")
        extra = {"sd": sample_sd(used), "reversals": tuple(self.reversals),
                 "n_used": len(used), "rule": f"1-up/{self.n_down}-down",
                 "target_p": self.target_p, "final_step": self.step}
        return value, flags, extra


class MethodOfLevels(YesNoProcedure):
    """Method of levels with a halving step (reaction-time free).

    Starts at ``start`` (normally below threshold) and moves up by ``step`` after NO and down
    after YES; each time the answer differs from the previous one the step is halved first.
    Stops when the halved step falls below ``min_step`` ("resolution"), when a NO at the upper
    bound or a YES at the lower bound leaves nowhere to go ("at-bound"), or at ``max_trials``.
    Estimate: midpoint of the last YES level and the last NO level.
    """

    method = "levels"

    def __init__(self, name: str, template: StimulusTemplate, *, start: float, step: float,
                 min_step: float, lower: float, upper: float, max_trials: int = 30,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(name, template, lower=lower, upper=upper, max_trials=max_trials,
                         rng=rng)
        if not 0 < min_step <= step:
            raise ValueError("need 0 < min_step <= step")
        self.start, self.step, self.min_step = float(start), float(step), float(min_step)
        self.last_yes: float | None = None
        self.last_no: float | None = None

    def _first_level(self) -> float:
        return self.start

    def _update(self, level: float, detected: bool) -> None:
        if len(self.answers) > 1 and detected != self.answers[-2]:
            self.step /= 2.0
        if detected:
            self.last_yes = level
        else:
            self.last_no = level
        if self.step < self.min_step:
            self._stop("resolution")
            return
        bound = self.lower if detected else self.upper
        if abs(level - bound) <= 1e-9:
            self._stop("at-bound", flag=True)
            return
        self._level = self._clamp(level + (-self.step if detected else self.step))

    def _estimate(self) -> tuple[float, list[str], dict[str, Any]]:
        flags = []
        if self.last_yes is not None and self.last_no is not None:
            value = (self.last_yes + self.last_no) / 2.0
        else:  # only one kind of answer so far
            value = self.levels[-1]
            flags.append("no-change")
        extra = {"sd": None, "last_yes": self.last_yes, "last_no": self.last_no,
                 "final_step": self.step}
        return value, flags, extra
