"""Thermal stimuli on a thermode: method-of-limits ramps and rated pulses.

A ramp runs from the baseline towards its cut-off until the participant's button; the
temperature at the press (the newest probe sample at or before the press's timestamp, mean
of zones 1-5) is the answer, and the thermode returns to the baseline. A pulse goes to its
target, holds, returns; if ``params["rate"]`` it then waits for the participant's rating
(a ``vas`` response, 0-100) for up to ``rating_window_s``; if ``params["ask"] == "yes-no"``
for a press (button 1 = yes, button 2 or none = no).
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from drivers.errors import DeviceError
from drivers.responses import Response
from protocols.base import (
    CUTOFF,
    DONE,
    NO,
    PARADOXICAL,
    RATING,
    STOPPED,
    THERMAL_PULSE,
    THERMAL_RAMP,
    YES,
    Answer,
    ProtocolError,
    Stimulus,
)
from qst_station.live_buffer import LiveBuffer
from qst_station.runner import RunContext

RAMP_MARGIN_S = 1.0  # wait this long past the planned end of a ramp for its press
PARADOXICAL_BUTTON = 2  # TSL: the participant reports a cold ramp felt warm or hot


class ThermalDelivery:
    """Ramps and pulses on ``thermode``; presses and ratings from ``responses``."""

    kinds = (THERMAL_RAMP, THERMAL_PULSE)

    def __init__(self, thermode: Any, responses: Any, name: str = "thermode") -> None:
        self.thermode = thermode
        self.name = name
        self._presses: queue.SimpleQueue[Response] = queue.SimpleQueue()
        self._ratings: queue.SimpleQueue[Response] = queue.SimpleQueue()
        self._probe = LiveBuffer(6, capacity=6000)
        thermode.subscribe(lambda s: self._probe.append(s.timestamp, s.all))
        for source in responses if isinstance(responses, (list, tuple)) else [responses]:
            source.subscribe(self._on_response)

    def abort(self) -> None:
        self.thermode.abort()

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        if stimulus.kind == THERMAL_RAMP:
            return self._ramp(stimulus, trial, run)
        return self._pulse(stimulus, trial, run)

    # -- ramps -------------------------------------------------------------------------------
    def _ramp(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        p = stimulus.params
        self._at_baseline(p["baseline_c"], run)
        self.thermode.prepare_ramp_and_hold(p["limit_c"], p["rate_c_s"], p["return_rate_c_s"],
                                            0.0)
        run.announce(stimulus)
        _drain(self._presses)
        onset = self._start(stimulus, trial, run, p["limit_c"])
        ramp_end = onset + abs(p["limit_c"] - p["baseline_c"]) / p["rate_c_s"]
        press = self._next(self._presses, ramp_end + RAMP_MARGIN_S, run, after=onset)
        if press is None or press.timestamp > ramp_end:  # the cut-off came first
            run.recording.event("stimulus_offset", {"trial": trial, "device": self.name,
                                                    "reason": "cut-off"}, ramp_end)
            return Answer(CUTOFF, float(p["limit_c"]), ramp_end, {"unit": "degC"})
        self.thermode.abort()
        run.recording.event("stimulus_offset", {"trial": trial, "device": self.name,
                                                "reason": "button"}, press.timestamp)
        temperature = self._temperature_at(press.timestamp)
        kind = STOPPED
        if press.value == PARADOXICAL_BUTTON and stimulus.test == "TSL" \
                and p["direction"] == "cold":
            kind = PARADOXICAL
        return Answer(kind, temperature, press.timestamp,
                      {"button": press.value, "unit": "degC"})

    # -- pulses ------------------------------------------------------------------------------
    def _pulse(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        p = stimulus.params
        if p.get("train"):
            return self._train(stimulus, trial, run)
        self._at_baseline(p["baseline_c"], run)
        self.thermode.prepare_ramp_and_hold(p["target_c"], p["rate_c_s"],
                                            p["return_rate_c_s"], p["hold_s"])
        run.announce(stimulus)
        _drain(self._ratings)
        _drain(self._presses)
        onset = self._start(stimulus, trial, run, p["target_c"])
        rise_s = abs(p["target_c"] - p["baseline_c"]) / p["rate_c_s"]
        end = onset + rise_s + p["hold_s"]
        run.wait(max(0.0, end - run.clock.now()))
        run.recording.event("stimulus_offset", {"trial": trial, "device": self.name,
                                                "reason": "end"}, end)
        if p.get("ask") == "yes-no":
            return self._yes_no(end + float(p.get("rating_window_s", 4.0)), run, onset)
        if not p.get("rate"):
            return Answer(DONE, None, end, {"unit": ""})
        window = float(p.get("rating_window_s", 8.0))
        run.recording.event("rating_prompt", {"trial": trial, "scale": "NRS 0-100",
                                              "timeout_s": window}, end)
        rating = self._next(self._ratings, end + window, run, after=end)
        if rating is None:
            run.recording.event("rating_timeout", {"trial": trial}, end + window)
            return Answer(RATING, None, run.clock.now(), {"unit": "NRS 0-100",
                                                          "missing": True})
        return Answer(RATING, float(rating.value), rating.timestamp, {"unit": "NRS 0-100"})

    def _train(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        """``train`` identical pulses, one every ``period_s`` (onsets on a fixed schedule),
        rated while the train goes on: each rating belongs to the last pulse that had ended
        before it. ``extra["ratings"]`` has one rating (or None) per pulse."""
        p = stimulus.params
        count, period = int(p["train"]), float(p["period_s"])
        self._at_baseline(p["baseline_c"], run)
        self.thermode.prepare_ramp_and_hold(p["target_c"], p["rate_c_s"],
                                            p["return_rate_c_s"], p["hold_s"])
        run.announce(stimulus)
        _drain(self._ratings)
        pulse_s = abs(p["target_c"] - p["baseline_c"]) / p["rate_c_s"] + p["hold_s"]
        first: float | None = None
        ends, late = [], 0.0
        for k in range(count):
            if first is not None:
                run.wait(max(0.0, first + k * period - run.clock.now()))
                self._wait_idle(run)
            onset = self._start(stimulus, trial, run, p["target_c"])
            first = onset if first is None else first
            late = max(late, onset - (first + k * period))
            ends.append(onset + pulse_s)
        run.wait(max(0.0, ends[-1] + float(p.get("rating_window_s", 3.0)) - run.clock.now()))
        ratings: list[float | None] = [None] * count
        while not self._ratings.empty():
            rating = self._ratings.get_nowait()
            after = [i for i, end in enumerate(ends) if end <= rating.timestamp]
            if after and ratings[after[-1]] is None:
                ratings[after[-1]] = float(rating.value)
        run.recording.event("stimulus_offset", {"trial": trial, "device": self.name,
                                                "reason": "end"}, ends[-1])
        return Answer(RATING, None, ends[-1], {"unit": "NRS 0-100", "ratings": ratings,
                                               "max_onset_delay_s": late})

    def _yes_no(self, deadline: float, run: RunContext, onset: float) -> Answer:
        """Button 1 = yes; button 2, or no press before ``deadline``, = no."""
        press = self._next(self._presses, deadline, run, after=onset)
        if press is None:
            return Answer(NO, None, run.clock.now(), {"unit": "", "pressed": False})
        kind = YES if press.value == 1 else NO
        return Answer(kind, None, press.timestamp, {"unit": "", "button": press.value})

    # -- shared ------------------------------------------------------------------------------
    def _start(self, stimulus: Stimulus, trial: int, run: RunContext, target: float) -> float:
        p = stimulus.params
        start_unless_stopped(self.thermode, run)
        onset = run.clock.now()
        run.recording.event("stimulus_onset", {
            "device": self.name, "test": stimulus.test, "trial": trial,
            "modality": "cold" if target < p["baseline_c"] else "heat", "target": target,
            "unit": "degC", "rate_c_s": p["rate_c_s"], "baseline_c": p["baseline_c"],
            "return_rate_c_s": p.get("return_rate_c_s"), "repetition": stimulus.repetition,
            "site": stimulus.site}, onset)
        return onset

    def _on_response(self, response: Response) -> None:
        """Hand presses (and ratings) to the waiting stimulus; the station records them."""
        if response.kind == "press":
            self._presses.put(response)
        elif response.kind in ("vas", "rating"):
            self._ratings.put(response)

    def _next(self, source: queue.SimpleQueue[Response], deadline: float, run: RunContext,
              after: float) -> Response | None:
        """The next response stamped after ``after`` and before ``deadline`` (clock time),
        or None; earlier ones (pressed before the stimulus began) are skipped."""
        while True:
            left = deadline - run.clock.now()
            if left <= 0:
                return None
            try:
                response = source.get(timeout=min(left, 0.05) / run.clock.speed)
            except queue.Empty:
                if run.stopped.is_set():
                    self.thermode.abort()
                    raise run.abort_error() from None
                continue
            if response.timestamp >= after:
                return response

    def _at_baseline(self, baseline: float, run: RunContext, settle_c: float = 0.3,
                     timeout_s: float = 120.0) -> None:
        """Idle, holding the stimulus's baseline (set it and wait for the probe if needed)."""
        self._wait_idle(run)
        if abs(self.thermode.baseline - baseline) < 1e-6:
            return
        self.thermode.set_baseline(baseline)
        deadline = run.clock.now() + timeout_s
        while True:
            latest = self._probe.latest()
            if latest is not None and abs(float(np.mean(latest[2:])) - baseline) <= settle_c:
                return
            if run.clock.now() > deadline:
                raise ProtocolError(f"the probe did not settle at the {baseline:g} °C baseline")
            run.wait(0.05)

    def _wait_idle(self, run: RunContext, timeout_s: float = 120.0) -> None:
        deadline = run.clock.now() + timeout_s
        while self.thermode.busy:
            if run.clock.now() > deadline:
                raise ProtocolError("the thermode did not return to its baseline")
            run.wait(0.02)

    def _temperature_at(self, timestamp: float) -> float:
        times, values = self._probe.snapshot()
        if not len(times):
            raise ProtocolError("no temperature samples from the thermode")
        i = max(0, int(np.searchsorted(times, timestamp, side="right")) - 1)
        return float(np.mean(values[i, 1:]))  # zones 1-5 (column 0 is the neutral sensor)


_NOW = object()


def start_unless_stopped(device: Any, run: RunContext, generation: Any = _NOW) -> None:
    """``device.start()``, never after a STOP: a stop before this call raises the run's
    abort error, and one during it (it sets ``stopped``, then aborts the device) cancels the
    start where the driver counts STOPs (``generation``, read now unless given: pass the
    count read when the start was decided) or is followed by the abort."""
    if generation is _NOW:
        generation = getattr(device, "generation", None)
    if run.stopped.is_set():
        raise run.abort_error()
    try:
        if generation is None:
            device.start()
        else:
            device.start(generation=generation)
    except DeviceError:
        if run.stopped.is_set():
            raise run.abort_error() from None
        raise


def _drain(source: queue.SimpleQueue[Response]) -> None:
    while not source.empty():
        source.get_nowait()
