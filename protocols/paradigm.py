"""A scanner run's paradigm as pure logic: trials scheduled on volumes, ratings, results.

Time zero is the first counted volume (the first after the dummies), as in BIDS
``events.tsv``. A trial's onset, given in volumes or seconds from there (plus seeded
jitter), becomes the scanner volume whose trigger starts it and a delay after that
trigger (0 for an onset on a volume): so the schedule follows the scanner's clock, not the
computer's. :class:`ParadigmRun` hands out one ``scanner-locked`` stimulus per trial and a
last one that waits for the run's final volume; the runner's delivery does the waiting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from protocols.base import DONE, RATING, SCANNER_LOCKED, Answer, Measure, ProtocolError, Stimulus

RUN = "fmri-run"  # the stimuli's test name: the runner's phase around the trials
ON_VOLUME_S = 1e-6  # an onset this close to a volume starts on its trigger


@dataclass(frozen=True)
class Scanner:
    tr_s: float
    dummy_volumes: int  # triggers before volume 1 of the stored run
    volumes: int  # stored volumes
    start: str = "software"  # or "device-trigger": the stimulator starts from its own input


@dataclass(frozen=True)
class TrialPlan:
    """One trial as the paradigm file gives it (onset from the first counted volume)."""

    onset_s: float
    modality: str  # "heat" | "pressure"
    level: str  # what the file asked for: "VAS50", "46.5 °C", "40 kPa"
    target: float  # °C or kPa, resolved
    baseline: float  # °C or kPa
    rise: float  # °C/s or kPa/s
    ret: float
    plateau_s: float
    cue_s: float = 0.0  # a cue this long before the onset
    rating: bool = True
    rating_delay_s: float = 1.0  # the rating prompt, after the stimulus ends
    rating_timeout_s: float = 6.0
    outlet: int = 1  # cuff outlet

    @property
    def unit(self) -> str:
        return "degC" if self.modality == "heat" else "kPa"

    @property
    def duration_s(self) -> float:
        """Onset to the end of the plateau (the return follows)."""
        return abs(self.target - self.baseline) / self.rise + self.plateau_s

    @property
    def busy_s(self) -> float:
        """Onset to back at baseline with the rating done."""
        back = abs(self.target - self.baseline) / self.ret
        rating = self.rating_delay_s + self.rating_timeout_s if self.rating else 0.0
        return self.duration_s + max(back, rating)


@dataclass(frozen=True)
class ScheduledTrial:
    number: int
    volume: int  # trigger index, dummies included (1 = the first trigger of the run)
    delay_s: float  # after that trigger
    plan: TrialPlan

    @property
    def onset_s(self) -> float:
        return self.plan.onset_s


def schedule(scanner: Scanner, trials: Sequence[TrialPlan], rng: np.random.Generator,
             jitter_s: float = 0.0, prepare_s: float = 2.0) -> list[ScheduledTrial]:
    """Trials in onset order on their volumes; ProtocolError if they overlap or run past the
    last volume. ``jitter_s``: each onset moves later by uniform [0, jitter_s]. A trial is
    prepared on the device during the ``prepare_s`` before its onset (after the last one)."""
    tr = scanner.tr_s
    planned = sorted((replace(t, onset_s=t.onset_s + float(rng.uniform(0.0, jitter_s)))
                      if jitter_s > 0 else t for t in trials), key=lambda t: t.onset_s)
    out: list[ScheduledTrial] = []
    run_end = scanner.volumes * tr
    for number, plan in enumerate(planned, start=1):
        if plan.onset_s < 0:
            raise ProtocolError(f"trial {number}: onset {plan.onset_s:g} s is before the first "
                                "counted volume")
        index = math.floor(plan.onset_s / tr + ON_VOLUME_S)
        delay = max(0.0, plan.onset_s - index * tr)
        delay = 0.0 if delay < ON_VOLUME_S else delay
        if out and plan.onset_s < out[-1].onset_s + out[-1].plan.busy_s + prepare_s:
            previous = out[-1]
            raise ProtocolError(
                f"trial {number} at {plan.onset_s:g} s starts before trial {previous.number} "
                f"(onset {previous.onset_s:g} s) is over with its rating and "
                f"{prepare_s:g} s to prepare ({previous.onset_s + previous.plan.busy_s:g} s)")
        if plan.onset_s + plan.duration_s > run_end:
            raise ProtocolError(f"trial {number} ends at {plan.onset_s + plan.duration_s:g} s, "
                                f"after the last volume ({scanner.volumes} x {tr:g} s)")
        out.append(ScheduledTrial(number, scanner.dummy_volumes + 1 + index, delay, plan))
    return out


class ParadigmRun:
    """The state machine of one scanner run: trials in order, then the end of the run."""

    def __init__(self, scanner: Scanner, trials: list[ScheduledTrial], site: str = "",
                 instruction: str = "", participant_instruction: str = "") -> None:
        if not trials:
            raise ProtocolError("a scanner run needs at least one trial")
        self.scanner = scanner
        self.trials = trials
        self.site = site
        self.instruction = instruction
        self.participant_instruction = participant_instruction
        self.answers: list[Answer] = []
        self._ended = False

    @property
    def done(self) -> bool:
        return self._ended

    def next_stimulus(self) -> Stimulus | None:
        if self._ended:
            return None
        k = len(self.answers)
        if k == len(self.trials):
            return Stimulus(RUN, SCANNER_LOCKED, self._end_params(), repetition=k + 1,
                            site=self.site, instruction="end of the run: wait for the last "
                                                        "volume")
        trial = self.trials[k]
        params = {**asdict(trial.plan), "action": "stimulus", "trial": trial.number,
                  "volume": trial.volume, "delay_s": trial.delay_s, "tr_s": self.scanner.tr_s,
                  "dummy_volumes": self.scanner.dummy_volumes, "start": self.scanner.start,
                  "target_unit": trial.plan.unit}
        repetition = 1 + sum(1 for t in self.trials[:k] if t.plan.level == trial.plan.level)
        return Stimulus(RUN, SCANNER_LOCKED, params, repetition=repetition, site=self.site,
                        instruction=self.instruction or f"trial {trial.number}: "
                                                        f"{trial.plan.level}",
                        participant_instruction=self.participant_instruction)

    def _end_params(self) -> dict[str, Any]:
        last = self.scanner.dummy_volumes + self.scanner.volumes
        return {"action": "end", "volume": last, "delay_s": 0.0, "tr_s": self.scanner.tr_s,
                "dummy_volumes": self.scanner.dummy_volumes}

    def record(self, answer: Answer) -> None:
        if self._ended:
            raise ProtocolError("the run is over")
        if len(self.answers) == len(self.trials):
            if answer.kind != DONE:
                raise ProtocolError(f"the end of the run takes {DONE!r}, got {answer.kind!r}")
            self._ended = True
            return
        if answer.kind != RATING:
            raise ProtocolError(f"a scanner trial takes a {RATING!r} answer, got {answer.kind!r}")
        self.answers.append(answer)

    def result(self) -> list[Measure]:
        """Mean rating per level; the onset timing against the schedule; missed ratings."""
        measures: list[Measure] = []
        levels: dict[str, list[float | None]] = {}
        for trial, answer in zip(self.trials, self.answers, strict=False):
            if trial.plan.rating:
                levels.setdefault(trial.plan.level, []).append(answer.value)
        for level, ratings in levels.items():
            given = [r for r in ratings if r is not None]
            missing = len(ratings) - len(given)
            flags = ("rating-missing",) if missing else ()
            if given:
                measures.append(Measure(f"RATING-{level}", float(np.mean(given)), "VAS 0-100",
                                        trials=tuple(given), flags=flags, site=self.site,
                                        extra={"missing": missing}))
        errors = [a.extra.get("onset_error_s") for a in self.answers]
        errors_ms = [1000.0 * e for e in errors if isinstance(e, (int, float))]
        if errors_ms:
            blind = sum(1 for a in self.answers if a.extra.get("inferred_volume"))
            measures.append(Measure(
                "ONSET-ERROR", float(np.max(np.abs(errors_ms))), "ms",
                trials=tuple(round(e, 3) for e in errors_ms),
                flags=("started-on-missed-trigger",) if blind else (), site=self.site,
                extra={"median_ms": float(np.median(errors_ms)), "trials_started": len(errors_ms),
                       "on_missed_trigger": blind}))
        return measures
