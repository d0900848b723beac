"""Psi method (Kontsevich & Tyler 1999) on a linear grid, YES/NO pulses.

The psychometric function is P(YES | x) = guess + (1 - guess - lapse) * F((x - threshold) /
width), F logistic or normal. A posterior over (threshold, width, lapse) lives on a grid;
each trial presents the grid level that minimises the expected entropy of the posterior over
(threshold, width), the lapse being marginalised as a nuisance parameter (Prins 2013).
The estimate is the posterior mean of the threshold, with the posterior SD as its precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, ndtr, xlogy

from protocols.adaptive import StimulusTemplate, YesNoProcedure, near_bound

SIGMOIDS = {"logistic": expit, "normal": ndtr}


def level_grid(lower: float, upper: float, step: float) -> np.ndarray:
    """``lower, lower + step, ...`` up to ``upper`` (never beyond it)."""
    if step <= 0:
        raise ValueError("grid step must be > 0")
    n = int(np.floor((upper - lower) / step + 1e-9)) + 1
    if n < 3:
        raise ValueError("the grid needs at least 3 levels between the bounds")
    return np.round(lower + step * np.arange(n), 9)


def p_yes_table(levels: np.ndarray, thresholds: np.ndarray, widths: np.ndarray,
                lapses: np.ndarray, guess: float, sigmoid: str) -> np.ndarray:
    """P(YES) with axes (level, threshold, width, lapse)."""
    x = levels[:, None, None, None]
    a = thresholds[None, :, None, None]
    w = widths[None, None, :, None]
    lam = lapses[None, None, None, :]
    return guess + (1.0 - guess - lam) * SIGMOIDS[sigmoid]((x - a) / w)


def entropy(p: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Shannon entropy (nats) of normalised distributions over ``axes``."""
    return -xlogy(p, p).sum(axis=axes)


class PsychometricProcedure(YesNoProcedure):
    """Psi: levels on ``level_grid(lower, upper, grid_step)``, thresholds on the same grid.

    ``widths`` (the function's scale in the stimulus unit; default 10 values log-spaced from
    grid_step / 4 to (upper - lower) / 4) and ``lapses`` form the rest of the grid; priors are
    uniform. Stops at ``max_trials`` or, when ``target_sd`` is set, as soon as the posterior SD
    of the threshold is below it (after at least ``min_trials``). Flags "at-bound" when the
    posterior mean or mode is within one grid step of a bound.
    """

    method = "psi"

    def __init__(self, name: str, template: StimulusTemplate, *, lower: float, upper: float,
                 grid_step: float, widths: Sequence[float] | None = None,
                 lapses: Sequence[float] = (0.0, 0.02, 0.05), guess: float = 0.0,
                 sigmoid: str = "logistic", max_trials: int = 40,
                 target_sd: float | None = None, min_trials: int = 0,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__(name, template, lower=lower, upper=upper, max_trials=max_trials,
                         rng=rng)
        if sigmoid not in SIGMOIDS:
            raise ValueError(f"sigmoid must be one of {sorted(SIGMOIDS)}")
        self.grid = level_grid(self.lower, self.upper, grid_step)
        self.grid_step = float(grid_step)
        if widths is None:
            widths = np.geomspace(grid_step / 4, (self.upper - self.lower) / 4, 10)
        self.widths = np.asarray(widths, dtype=float)
        self.lapses = np.asarray(lapses, dtype=float)
        if np.any(self.widths <= 0) or np.any(self.lapses < 0) or not 0 <= guess < 1:
            raise ValueError("need widths > 0, lapses >= 0 and 0 <= guess < 1")
        if np.any(guess + self.lapses >= 1):
            raise ValueError("need guess + lapse < 1")
        self.target_sd, self.min_trials = target_sd, min_trials
        self._p_yes = p_yes_table(self.grid, self.grid, self.widths, self.lapses, guess,
                                  sigmoid)
        shape = self._p_yes.shape[1:]
        self.posterior = np.full(shape, 1.0 / np.prod(shape))  # (threshold, width, lapse)
        self._index = 0

    # --------------------------------------------------------------- selection and update

    def _best_index(self) -> int:
        """The grid index minimising the expected posterior entropy over (threshold, width)."""
        joint_yes = self._p_yes * self.posterior  # (level, threshold, width, lapse)
        joint_no = self.posterior - joint_yes
        p_yes = joint_yes.sum(axis=(1, 2, 3))
        p_no = 1.0 - p_yes
        tiny = np.finfo(float).tiny
        h_yes = entropy(joint_yes.sum(axis=3) / np.maximum(p_yes, tiny)[:, None, None], (1, 2))
        h_no = entropy(joint_no.sum(axis=3) / np.maximum(p_no, tiny)[:, None, None], (1, 2))
        return int(np.argmin(p_yes * h_yes + p_no * h_no))

    def _first_level(self) -> float:
        self._index = self._best_index()
        return float(self.grid[self._index])

    def _update(self, level: float, detected: bool) -> None:
        like = self._p_yes[self._index]
        self.posterior *= like if detected else 1.0 - like
        self.posterior /= self.posterior.sum()
        if self._precise_enough():
            self._stop("precision")
            return
        if len(self.levels) < self.max_trials:
            self._index = self._best_index()
            self._level = float(self.grid[self._index])

    def _precise_enough(self) -> bool:
        return (self.target_sd is not None and len(self.levels) >= self.min_trials
                and self.threshold_posterior()[1] < self.target_sd)

    def _cap_is_early(self) -> bool:
        return self.target_sd is not None

    # --------------------------------------------------------------- estimates

    def threshold_posterior(self) -> tuple[float, float, float]:
        """Posterior mean, SD and mode of the threshold."""
        marginal = self.posterior.sum(axis=(1, 2))
        mean = float(marginal @ self.grid)
        sd = float(np.sqrt(max(marginal @ (self.grid - mean) ** 2, 0.0)))
        return mean, sd, float(self.grid[np.argmax(marginal)])

    def _estimate(self) -> tuple[float, list[str], dict[str, Any]]:
        mean, sd, mode = self.threshold_posterior()
        at_bound = any(near_bound(v, self.lower, self.upper, self.grid_step)
                       for v in (mean, mode))
        width = float(self.posterior.sum(axis=(0, 2)) @ self.widths)
        lapse = float(self.posterior.sum(axis=(0, 1)) @ self.lapses)
        extra = {"sd": sd, "mode": mode, "width": width, "lapse": lapse,
                 "grid": (float(self.grid[0]), float(self.grid[-1]), self.grid_step)}
        return mean, ["at-bound"] if at_bound else [], extra
