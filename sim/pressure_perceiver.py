"""The simulated participant and examiner at pressure devices.

* :class:`PressurePerceiver`: told each stimulus, it draws this trial's PPT for the site and
  watches the pressure the simulated algometer actually produces; at the threshold it
  presses the simulated button box after its reaction time (so a PPT measures truth +
  rate x reaction time). It also decides when CPM conditioning acts: while the simulated
  cuff's conditioning outlet is at or above the participant's cuff pain detection pressure,
  or between the operator's "start" and "stop" of a confirmed conditioning step (cold
  water, tonic heat), and ``cpm.carryover_s`` after that; it sets
  :attr:`SimulatedParticipant.conditioned` accordingly.
* :class:`AlgometerExaminer`: presses the simulated algometer at the asked rate, off by a
  seeded per-trial factor (hand-made ramps are uneven), and releases when told.
* :class:`ModelCuffParticipant`: the simulated cuff's VAS and button from the model's
  ``[cuff]`` pressures instead of the cuff simulator's random ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drivers import cuff_wire as wire
from protocols.base import CONFIRM, CUFF_PROGRAM, PRESSURE_RAMP, SCANNER_LOCKED, Stimulus
from sim.cuff import Participant
from sim.participant import CuffPain, SimulatedParticipant
from sim.watcher import Watcher


def _hand_ramp(stimulus: Stimulus) -> bool:
    return stimulus.kind == PRESSURE_RAMP and stimulus.params.get("device",
                                                                  "algometer") == "algometer"


class PressurePerceiver(Watcher):
    """Connects a :class:`SimulatedParticipant` to a simulated algometer, cuff and buttons."""

    def __init__(self, participant: SimulatedParticipant, buttons: Any, clock: Any = None,
                 tick_real_s: float = 0.001) -> None:
        super().__init__("sim-pressure", tick_real_s)
        self.participant = participant
        self.buttons = buttons
        self.clock = clock or buttons.clock
        self.algometer: Any = None  # SimulatedAlgometer
        self.cuff: Any = None  # SimulatedCuff
        self.presses: list[tuple[str, float, float]] = []  # (site, threshold, press time)
        self._trial: tuple[str, float] | None = None
        self._outlet: int | None = None  # the cuff outlet that conditions
        self._confirmed = False  # an operator-confirmed conditioning step is on
        self._last_active: float | None = None
        self._judging: tuple[int, float, float] | None = None
        self.scale: Any = None  # SimulatedRatingScale: rates scanner pressure blocks
        self._block: tuple[int, float, float, float] | None = None  # outlet, kPa, VAS, delay

    def instruct(self, stimulus: Stimulus) -> None:
        """The runner shows ``stimulus``'s instruction: get ready to answer it."""
        p = stimulus.params
        if stimulus.kind == PRESSURE_RAMP and p.get("ask") == "yes-no":
            detection = self.participant.model.cuff.pain_detection_kpa
            threshold = detection * float(np.exp(self.participant.rng.normal(0.0, 0.05)))
            with self._lock:  # (outlet, threshold, highest pressure so far)
                self._judging = (int(p.get("outlet", 1)), threshold, 0.0)
            return
        if _hand_ramp(stimulus):
            trial = None
            if p.get("phase") != "release":
                self._update_conditioning()
                level = self.participant.ppt(stimulus.site)
                trial = None if self.participant.lapses() else (stimulus.site, level)
            with self._lock:
                self._trial = trial
        elif stimulus.kind == CUFF_PROGRAM and p.get("action") == "start":
            with self._lock:
                self._outlet = int(p["outlet"])
        elif stimulus.kind == SCANNER_LOCKED and p.get("modality") == "pressure" \
                and p.get("rating", True):
            with self._lock:
                self._block = (int(p.get("outlet", 1)), 0.0, 0.0,
                               float(p.get("rating_delay_s", 0.0)))
        elif stimulus.kind == CONFIRM and p.get("action") in ("start", "stop"):
            with self._lock:
                self._confirmed = p["action"] == "start"
            self._update_conditioning()

    def _judge_cuff(self) -> None:
        """A yes/no cuff pulse: painful if its highest pressure reached the threshold."""
        with self._lock:
            judging = self._judging
            if judging is None or self.cuff is None:
                return
            outlet, threshold, highest = judging
            kpa = float(self.cuff.device.outlets[outlet - 1].pressure)
            highest = max(highest, kpa)
            over = highest > 5.0 and kpa < highest - 2.0
            self._judging = None if over else (outlet, threshold, highest)
        if over:
            button = 1 if highest >= threshold else 2
            self.buttons.respond_after(self.participant.reaction_time(), button)

    def _rate_block(self) -> None:
        """A scanner pressure block: once the cuff deflates, rate it (its highest VAS, 0-100)
        when the prompt comes."""
        with self._lock:
            block = self._block
            if block is None or self.cuff is None or self.scale is None:
                return
            outlet, highest, vas, delay = block
            kpa = float(self.cuff.device.outlets[outlet - 1].pressure)
            vas = max(vas, float(self.cuff.device.participant.vas))
            highest = max(highest, kpa)
            over = highest > 5.0 and kpa < 0.3 * highest
            self._block = None if over else (outlet, highest, vas, delay)
        if over:
            rating = float(np.clip(round(10.0 * vas), 0.0, 100.0))
            self.scale.rate_after(delay + 2.5 * self.participant.reaction_time(), rating)

    def tick(self) -> None:
        self._rate_block()
        self._judge_cuff()
        self._update_conditioning()
        with self._lock:
            trial = self._trial
        if trial is None or self.algometer is None:
            return
        site, level = trial
        if self.algometer.device.kpa >= level:
            with self._lock:
                self._trial = None
            due = self.buttons.respond_after(self.participant.reaction_time(), 1)
            self.presses.append((site, level, due))

    def _update_conditioning(self) -> None:
        now = self.clock.now()
        with self._lock:
            active = self._confirmed
            if self.cuff is not None and self._outlet is not None:
                kpa = self.cuff.device.outlets[self._outlet - 1].pressure
                active = active or kpa >= self.participant.model.cuff.pain_detection_kpa
            if active:
                self._last_active = now
            carry = self.participant.model.cpm.carryover_s
            self.participant.conditioned = active or (
                self._last_active is not None and now - self._last_active <= carry)


class AlgometerExaminer:
    """Presses the simulated algometer for each hand ramp; releases when told."""

    def __init__(self, algometer: Any, seed: int = 0, rate_sd: float = 0.08) -> None:
        self.algometer = algometer
        self.rate_sd = rate_sd  # SD of the per-trial rate, as a fraction of the target
        self.rng = np.random.default_rng([seed, 7])
        self.rates: list[float] = []  # the rate the hand aimed at, per trial

    def instruct(self, stimulus: Stimulus) -> None:
        if not _hand_ramp(stimulus):
            return
        if stimulus.params.get("phase") == "release":
            self.algometer.release()
            return
        factor = float(np.clip(1.0 + self.rate_sd * self.rng.standard_normal(), 0.6, 1.4))
        rate = float(stimulus.params["rate_kpa_s"]) * factor
        self.rates.append(rate)
        self.algometer.press(rate)


class ModelCuffParticipant(Participant):
    """The cuff simulator's participant with the model's detection and tolerance pressures."""

    def __init__(self, rng: np.random.Generator, pain: CuffPain) -> None:
        super().__init__(rng)
        self.detection = pain.pain_detection_kpa
        self.tolerance = pain.pain_tolerance_kpa
        self.summation, self.gap_s = pain.summation_per_inflation, pain.train_gap_s
        self.train = 0  # inflations so far in the current train
        self._inflated = False
        self._since_end = float("inf")  # seconds since the last inflation ended

    def update(self, kpa: float, dt: float) -> None:
        """The base VAS, raised by temporal summation over a train of inflations."""
        hurting = kpa >= self.detection
        if hurting and not self._inflated:
            self.train = self.train + 1 if self._since_end <= self.gap_s else 0
        if self._inflated and not hurting:
            self._since_end = 0.0
        elif not hurting:
            self._since_end += dt
        self._inflated = hurting
        super().update(kpa, dt)
        if self.vas > 0 and self.train:
            boosted = self.vas * (1.0 + self.summation) ** self.train
            self.vas = wire.quantize(min(boosted, wire.VAS_MAX))
