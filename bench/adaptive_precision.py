"""Trials needed for a given precision: staircase vs Psi vs a psychopy-default staircase.

Simulated participants (seeded) answer heat pulses (°C, device bounds 32-50 °C) like a
logistic observer: P(YES) = lapse / 2 + (1 - lapse) / (1 + exp(-(x - threshold) / width)),
threshold ~ U(42, 48) °C, width ~ U(0.3, 1.2) °C, lapse ~ U(0, 0.04). Each method is scored
against the participant's own target point of that method (the 50 % point for Psi, 70.7 %
for 1-up/2-down, 79.4 % for 1-up/3-down): error = estimate - target. Precision = SD of the
errors across participants; bias = their mean.

Methods:

* ``staircase-1u2d``: :class:`protocols.staircase.Staircase`, start 40 °C, step 1 °C halved at
  the 2nd reversal, estimate = mean of the last 6 reversal levels.
* ``psi``: :class:`protocols.psychometric.PsychometricProcedure`, grid 32-50 °C in 0.5 °C.
* ``psychopy-default``: PsychoPy ``StairHandler`` documented defaults (nReversals=None ->
  len(stepSizes) = 1, stepSizes=4, nTrials=0, nUp=1, nDown=3, stepType='db',
  applyInitialRule=True), replicated in :class:`PsychopyStyleStair` (no psychopy import),
  with minVal/maxVal set to the device bounds (their default is None: unbounded) and start
  40 °C. Its stop rule is "reversals AND trials", so with the defaults it stops at the
  first reversal; estimate = mean of the (up to 6) last reversal levels. In the trial sweep
  it is run with nTrials = N (the only default it needs changed to run N trials).

The sweep runs each participant once per method up to the largest budget and reads the
estimate after N trials (with no other stop, a run's first N trials do not depend on the cap).

Run: ``python bench/adaptive_precision.py [--n 400] [--seed 1]``. Prints tables and writes
``bench/results/adaptive_precision.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

from protocols.adaptive import YesNoProcedure, thermal_pulse
from protocols.base import NO, YES, Answer
from protocols.psychometric import PsychometricProcedure
from protocols.staircase import Staircase

RESULTS = Path(__file__).resolve().parent / "results" / "adaptive_precision.json"
LOWER, UPPER, START = 32.0, 50.0, 40.0
CHECKPOINTS = (10, 15, 20, 25, 30, 40, 50, 60, 80)
PRECISIONS = (1.0, 0.75, 0.5, 0.4, 0.3)
HEAT = thermal_pulse("HPT", rate_c_s=8.0, hold_s=2.0, return_rate_c_s=8.0)


# ---------------------------------------------------------------------- participants


@dataclass(frozen=True)
class Observer:
    threshold: float
    width: float
    lapse: float

    def p_yes(self, x: float) -> float:
        return self.lapse / 2 + (1 - self.lapse) * float(expit((x - self.threshold) / self.width))

    def level_at(self, p: float) -> float:
        """The level where P(YES) = p."""
        f = (p - self.lapse / 2) / (1 - self.lapse)
        return self.threshold + self.width * float(logit(f))


def population(n: int, seed: int) -> list[Observer]:
    rng = np.random.default_rng([seed, 0])
    return [Observer(float(rng.uniform(42, 48)), float(rng.uniform(0.3, 1.2)),
                     float(rng.uniform(0, 0.04))) for _ in range(n)]


# ---------------------------------------------------------------------- psychopy defaults


class PsychopyStyleStair:
    """PsychoPy StairHandler's documented default behaviour, written from its description.

    1-up/1-down until the first reversal, then nUp/nDown; steps of ``step_db`` dB (level
    multiplied or divided by 10 ** (step_db / 20)); clamped to [min_val, max_val]; done when
    reversals >= n_reversals AND trials >= n_trials.
    """

    def __init__(self, start: float, *, min_val: float, max_val: float, step_db: float = 4.0,
                 n_up: int = 1, n_down: int = 3, n_reversals: int = 1, n_trials: int = 0) -> None:
        self.level, self.min_val, self.max_val = start, min_val, max_val
        self.factor = 10.0 ** (step_db / 20.0)
        self.n_up, self.n_down = n_up, n_down
        self.n_reversals, self.n_trials = n_reversals, n_trials
        self.levels: list[float] = []
        self.reversals: list[float] = []
        self.direction = 0
        self.run = 0  # + consecutive YES, - consecutive NO, since the last step
        self.done = False

    def record(self, detected: bool) -> None:
        level = self.level
        self.levels.append(level)
        self.run = max(self.run, 0) + 1 if detected else min(self.run, 0) - 1
        if not self.reversals:
            move = -1 if detected else 1
        else:
            move = -1 if self.run >= self.n_down else (1 if self.run <= -self.n_up else 0)
        if move:
            if self.direction and move != self.direction:
                self.reversals.append(level)
            self.direction, self.run = move, 0
            scaled = level / self.factor if move < 0 else level * self.factor
            self.level = min(max(scaled, self.min_val), self.max_val)
        if len(self.reversals) >= self.n_reversals and len(self.levels) >= self.n_trials:
            self.done = True

    def estimate(self) -> float:
        return float(np.mean(self.reversals[-6:])) if self.reversals else self.levels[-1]


# ---------------------------------------------------------------------- runs


def staircase(max_trials: int, max_reversals: int = 1000) -> Staircase:
    return Staircase("HPT", HEAT, start=START, step=1.0, lower=LOWER, upper=UPPER, n_down=2,
                     halve_at=(2,), max_trials=max_trials, max_reversals=max_reversals,
                     estimate_last=6)


def psi(max_trials: int, target_sd: float | None = None) -> PsychometricProcedure:
    return PsychometricProcedure("HPT", HEAT, lower=LOWER, upper=UPPER, grid_step=0.5,
                                 max_trials=max_trials, target_sd=target_sd)


def run_procedure(proc: YesNoProcedure, obs: Observer, rng: np.random.Generator,
                  checkpoints: tuple[int, ...] = ()) -> tuple[list[float], float, int]:
    """Estimates at the checkpoints, the final estimate, trials used."""
    snaps = []
    while not proc.done:
        x = proc.next_stimulus().params["target_c"]
        proc.record(Answer(YES if rng.random() < obs.p_yes(x) else NO))
        if len(proc.levels) in checkpoints:
            snaps.append(proc.result()[0].value)
    return snaps, proc.result()[0].value, len(proc.levels)


def run_psychopy(stair: PsychopyStyleStair, obs: Observer, rng: np.random.Generator,
                 checkpoints: tuple[int, ...] = ()) -> tuple[list[float], float, int]:
    snaps = []
    while not stair.done:
        stair.record(bool(rng.random() < obs.p_yes(stair.level)))
        if len(stair.levels) in checkpoints:
            snaps.append(stair.estimate())
    return snaps, stair.estimate(), len(stair.levels)


Runner = Callable[[Observer, np.random.Generator, tuple[int, ...]],
                  tuple[list[float], float, int]]

METHODS: dict[str, tuple[float, Runner, Runner]] = {
    # name: (target P(YES), sweep runner (runs to max(CHECKPOINTS)), own stopping rule)
    "staircase-1u2d": (
        0.5 ** 0.5,
        lambda o, r, c: run_procedure(staircase(max(CHECKPOINTS)), o, r, c),
        lambda o, r, c: run_procedure(staircase(50, max_reversals=8), o, r, c)),
    "psi": (
        0.5,
        lambda o, r, c: run_procedure(psi(max(CHECKPOINTS)), o, r, c),
        lambda o, r, c: run_procedure(psi(80, target_sd=0.5), o, r, c)),
    "psychopy-default": (
        0.5 ** (1 / 3),
        lambda o, r, c: run_psychopy(PsychopyStyleStair(
            START, min_val=LOWER, max_val=UPPER, n_trials=max(CHECKPOINTS)), o, r, c),
        lambda o, r, c: run_psychopy(PsychopyStyleStair(
            START, min_val=LOWER, max_val=UPPER), o, r, c)),
}
OWN_CAP = {"staircase-1u2d": 50, "psi": 80, "psychopy-default": None}
OWN_RULE = {"staircase-1u2d": "8 reversals OR 50 trials",
            "psi": "posterior SD < 0.5 °C OR 80 trials",
            "psychopy-default": "1 reversal AND 0 trials (defaults)"}


# ---------------------------------------------------------------------- statistics


def stats(errors: list[float]) -> dict[str, float]:
    e = np.asarray(errors)
    return {"bias": float(e.mean()), "sd": float(e.std(ddof=1)),
            "rmse": float(np.sqrt(np.mean(e ** 2)))}


def trials_to(sweep: list[dict[str, float]], precision: float) -> int | None:
    return next((int(row["trials"]) for row in sweep if row["sd"] <= precision), None)


def bench_method(name: str, people: list[Observer], seed: int) -> dict:
    p_target, sweep_run, own_run = METHODS[name]
    errors = [[] for _ in CHECKPOINTS]
    own_errors, own_trials, total_trials = [], [], 0
    t0 = time.perf_counter()
    for i, obs in enumerate(people):
        target = obs.level_at(p_target)
        snaps, _, n_sweep = sweep_run(obs, np.random.default_rng([seed, 1, i]), CHECKPOINTS)
        for k, value in enumerate(snaps):
            errors[k].append(value - target)
        _, value, n = own_run(obs, np.random.default_rng([seed, 2, i]), ())
        own_errors.append(value - target)
        own_trials.append(n)
        total_trials += n_sweep + n
    seconds = time.perf_counter() - t0
    cap = OWN_CAP[name]
    sweep = [{"trials": n, **stats(e)} for n, e in zip(CHECKPOINTS, errors, strict=True)]
    return {"target_p": p_target, "sweep": sweep,
            "trials_to_sd": {f"{p:g}": trials_to(sweep, p) for p in PRECISIONS},
            "own_rule": {"rule": OWN_RULE[name], "mean_trials": float(np.mean(own_trials)),
                         "max_trials": int(np.max(own_trials)),
                         "share_at_cap": None if cap is None else float(np.mean(
                             np.asarray(own_trials) >= cap)), **stats(own_errors)},
            "seconds": seconds, "ms_per_trial": 1000 * seconds / total_trials}


# ---------------------------------------------------------------------- report


def print_report(results: dict[str, dict]) -> None:
    names = list(results)
    print("\nSD of (estimate - own target) in °C after N trials  [bias in brackets]")
    print(f"{'N':>4}  " + "  ".join(f"{n:>22}" for n in names))
    for k, n in enumerate(CHECKPOINTS):
        cells = [f"{results[m]['sweep'][k]['sd']:6.2f} [{results[m]['sweep'][k]['bias']:+6.2f}]"
                 for m in names]
        print(f"{n:>4}  " + "  ".join(f"{c:>22}" for c in cells))
    print("\ntrials needed for SD <= precision (- = not within "
          f"{max(CHECKPOINTS)} trials)")
    print(f"{'°C':>5}  " + "  ".join(f"{n:>18}" for n in names))
    for p in PRECISIONS:
        cells = [results[m]["trials_to_sd"][f"{p:g}"] for m in names]
        print(f"{p:>5g}  " + "  ".join(f"{'-' if c is None else c:>18}" for c in cells))
    print("\nown stopping rule")
    for m in names:
        own = results[m]["own_rule"]
        cap = "" if own["share_at_cap"] is None else f"  at cap {own['share_at_cap']:5.1%}"
        print(f"  {m:<17} {own['rule']:<36} trials {own['mean_trials']:5.1f} (max "
              f"{own['max_trials']:>2})  SD {own['sd']:5.2f}  bias {own['bias']:+5.2f}{cap}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="simulated participants")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    people = population(args.n, args.seed)
    results = {}
    for name in METHODS:
        results[name] = bench_method(name, people, args.seed)
        print(f"{name}: {results[name]['seconds']:.1f} s, "
              f"{results[name]['ms_per_trial']:.3f} ms per trial", flush=True)
    print_report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bench": "adaptive_precision", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "participants": args.n, "seed": args.seed,
        "population": {"threshold_c": [42, 48], "width_c": [0.3, 1.2], "lapse": [0, 0.04]},
        "bounds_c": [LOWER, UPPER], "start_c": START, "checkpoints": list(CHECKPOINTS),
        "methods": results}, indent=2, allow_nan=False))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
