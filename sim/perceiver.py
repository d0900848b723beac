"""The simulated participant at the thermode: feels the probe, presses the button.

It is told what each stimulus asks (the instruction the runner shows: which test, which
direction) and then watches the temperature the simulated TCS II actually produces (the
physics of the simulator, not what the driver reads). When the change from the baseline
reaches this trial's threshold (or the temperature reaches the pain threshold), it presses
the simulated button box after its reaction time. So the method of limits measures the
true threshold plus rate x reaction time, as with people.
"""

from __future__ import annotations

from typing import Any

from protocols.base import SCANNER_LOCKED, THERMAL_PULSE, THERMAL_RAMP, Stimulus
from sim.participant import SimulatedParticipant
from sim.watcher import Watcher

PAIN = {"CPT", "HPT"}
PARADOXICAL_BUTTON = 2  # TSL: a cold ramp felt as warm or hot


class ThermalPerceiver(Watcher):
    """Connects a :class:`SimulatedParticipant` to a simulated thermode and button box."""

    def __init__(self, participant: SimulatedParticipant, tcs_sim: Any, buttons: Any,
                 scale: Any = None, clock: Any = None, tick_real_s: float = 0.001) -> None:
        super().__init__("sim-perceiver", tick_real_s)
        self.participant = participant
        self.tcs = tcs_sim
        self.buttons = buttons
        self.scale = scale  # rates pulses (SimulatedRatingScale)
        self.clock = clock or buttons.clock
        self._pulse: tuple[float, float, float | None, int] | None = None
        self._pulse_span = 0.0
        self.presses: list[tuple[str, float, float]] = []  # (test, threshold, press time)
        self._trial: tuple[str, str, float, float] | None = None
        self._judgement: tuple[float, str, float, float, float] | None = None
        self._rating_delay_s = 0.0  # a scanner trial's rating is asked for this much later

    def instruct(self, stimulus: Stimulus) -> None:
        """The runner shows ``stimulus``'s instruction: get ready to answer it."""
        if stimulus.kind == THERMAL_PULSE and stimulus.params.get("ask") == "yes-no":
            self._prepare_judgement(stimulus)
            return
        if stimulus.kind == THERMAL_PULSE and stimulus.params.get("rate"):
            p = stimulus.params
            rise = abs(p["target_c"] - p["baseline_c"]) / p["rate_c_s"]
            with self._lock:  # (latest end if nothing is felt, baseline, hottest, pulses)
                self._pulse = (self.clock.now() + rise + p["hold_s"] + 5.0, p["baseline_c"],
                               -273.0, int(p.get("train", 1)))
                self._pulse_span = float(p.get("period_s", rise + p["hold_s"])) + 5.0
            return
        if stimulus.kind == SCANNER_LOCKED:
            self._prepare_scanner_trial(stimulus)
            return
        if stimulus.kind != THERMAL_RAMP:
            return
        p = stimulus.params
        direction, test = p["direction"], stimulus.test
        measure = _measure(test, direction)
        threshold = self.participant.threshold(measure)
        if measure in ("CDT", "WDT"):  # a difference from the baseline
            sign = -1.0 if direction == "cold" else 1.0
            level = p["baseline_c"] + sign * threshold
        else:
            level = threshold
        with self._lock:
            self._trial = None if self.participant.lapses() else (test, direction, level,
                                                                  p["baseline_c"])

    def tick(self) -> None:
        self._feel_pulse()
        self._judge_pulse()
        with self._lock:
            trial = self._trial
        if trial is None:
            return
        test, direction, level, _ = trial
        temperature = self._probe_temperature()
        felt = temperature <= level if direction == "cold" else temperature >= level
        if felt:
            with self._lock:
                self._trial = None
            self._press(test, direction, level)

    def _prepare_scanner_trial(self, stimulus: Stimulus) -> None:
        """A heat trial in the scanner: felt whenever its volume comes, rated once prompted."""
        p = stimulus.params
        if p.get("modality") != "heat" or not p.get("rating", True):
            return
        with self._lock:  # it starts on a volume still to come: no deadline of its own
            self._pulse = (self.clock.now() + 3600.0, p["baseline"], -273.0, 1)
            self._pulse_span = 0.0
            self._rating_delay_s = float(p.get("rating_delay_s", 0.0))

    def _prepare_judgement(self, stimulus: Stimulus) -> None:
        """A yes/no pulse: was it painful (HPT), warm (WDT), cold (CDT)? Felt at its extreme."""
        p = stimulus.params
        judge, base = p["judge"], p["baseline_c"]
        threshold = self.participant.threshold(judge)
        rise = abs(p["target_c"] - base) / p["rate_c_s"]
        with self._lock:
            self._judgement = (self.clock.now() + rise + p["hold_s"] + 5.0, judge, base,
                               threshold, base)

    def _judge_pulse(self) -> None:
        with self._lock:
            judgement = self._judgement
            if judgement is None:
                return
            latest, judge, base, threshold, extreme = judgement
            now, temperature = self.clock.now(), self._probe_temperature()
            cold = judge == "CDT"
            extreme = min(extreme, temperature) if cold else max(extreme, temperature)
            moved = abs(extreme - base) > 0.5
            over = (moved and abs(temperature - extreme) > 0.3) or now > latest
            self._judgement = None if over else (latest, judge, base, threshold, extreme)
        if not over:
            return
        felt = {"HPT": extreme >= threshold, "WDT": extreme - base >= threshold,
                "CDT": base - extreme >= threshold}[judge]
        self.buttons.respond_after(self.participant.reaction_time(), 1 if felt else 2)

    def _feel_pulse(self) -> None:
        """During a rated pulse: remember the hottest moment; once the probe cools again
        (the pulse is over), rate it."""
        with self._lock:
            pulse = self._pulse
            if pulse is None:
                return
            latest, baseline, hottest, left = pulse
            now, temperature = self.clock.now(), self._probe_temperature()
            if hottest is None:  # between the pulses of a train: wait until it has cooled
                if temperature < baseline + 1.0:
                    self._pulse = (latest, baseline, -273.0, left)
                return
            hottest = max(hottest, temperature)
            over = (hottest > baseline + 1.0 and temperature < hottest - 0.5) or now > latest
            if not over:
                self._pulse = (latest, baseline, hottest, left)
            elif left > 1:  # a train: the next pulse comes
                self._pulse = (now + self._pulse_span, baseline, None, left - 1)
            else:
                self._pulse = None
        if over and self.scale is not None:
            rating, delay = self.participant.rate_heat(hottest, now)
            with self._lock:
                prompt, self._rating_delay_s = self._rating_delay_s, 0.0
            self.scale.rate_after(prompt + delay, rating)

    def _press(self, test: str, direction: str, level: float) -> None:
        button = 1
        if test == "TSL" and direction == "cold" and self.participant.feels_paradoxical_heat():
            button = PARADOXICAL_BUTTON
        due = self.buttons.respond_after(self.participant.reaction_time(), button)
        self.presses.append((test, level, due))

    def _probe_temperature(self) -> float:
        zones = [z.temperature for z in self.tcs.device.zones]
        return sum(zones) / len(zones)


def _measure(test: str, direction: str) -> str:
    if test == "TSL":
        return "CDT" if direction == "cold" else "WDT"
    return test
