"""Run a protocol's state machine on devices, into a recording.

The runner asks the procedure for the next stimulus, waits its ISI, shows its instruction
(to whoever listens: the GUI, a simulated participant), delivers it with the thermal
stimulator, turns what happened into an :class:`~protocols.base.Answer`, and records every
step: ``phase`` events per test, ``stimulus_onset``/``stimulus_offset``, ``response``,
``trial`` per answer and ``result`` per measure. A method-of-limits ramp is stopped by the
participant's button; the temperature at the press (the newest probe sample at or before
the press's timestamp, mean of the zones) is the answer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.responses import Response
from protocols.base import (
    CUTOFF,
    PARADOXICAL,
    STOPPED,
    THERMAL_RAMP,
    Answer,
    Measure,
    Procedure,
    ProtocolError,
    Stimulus,
)
from qst_station.live_buffer import LiveBuffer
from qst_station.recording import Recording

RAMP_MARGIN_S = 1.0  # wait this long past the planned end of a ramp for its press
PARADOXICAL_BUTTON = 2


class RunAborted(RuntimeError):
    """The operator stopped the run (STOP / Ctrl-C); the device is back at baseline."""


class ProtocolRunner:
    """Delivers a procedure's stimuli with ``thermode`` and reads ``responses``."""

    def __init__(self, procedure: Procedure, recording: Recording, thermode: Any,
                 responses: Any, name: str = "protocol",
                 progress: Callable[[str], None] | None = None) -> None:
        self.procedure = procedure
        self.recording = recording
        self.clock = recording.clock
        self.thermode = thermode
        self.name = name
        self.progress = progress or (lambda line: None)
        self.listeners: list[Callable[[Stimulus], None]] = []  # see the instruction
        self.stopped = threading.Event()
        self._presses: queue.SimpleQueue[Response] = queue.SimpleQueue()
        self._probe = LiveBuffer(6, capacity=6000)
        thermode.subscribe(lambda s: self._probe.append(s.timestamp, s.all))
        responses.subscribe(self._on_response)

    def stop(self) -> None:
        """Ask the run to stop (any thread); the current stimulus is aborted."""
        self.stopped.set()

    def run(self) -> list[Measure]:
        """Deliver every stimulus; returns the measures (also recorded as ``result`` events)."""
        self.recording.event("phase", {"name": self.name, "state": "start"})
        current, trial = "", 0
        try:
            while (stimulus := self.procedure.next_stimulus()) is not None:
                if stimulus.test != current:
                    self._phase_change(current, stimulus.test)
                    current = stimulus.test
                self._wait(stimulus.isi_s)
                trial += 1
                answer = self._deliver(stimulus, trial)
                self.procedure.record(answer)
                self._record_trial(stimulus, answer, trial)
        finally:
            if current:
                self.recording.event("phase", {"name": current, "state": "end"})
            self.recording.event("phase", {"name": self.name, "state": "end"})
        measures = self.procedure.result()
        for measure in measures:
            self.recording.event("result", measure.as_payload())
        return measures

    # -- steps -------------------------------------------------------------------------------
    def _phase_change(self, previous: str, test: str) -> None:
        if previous:
            self.recording.event("phase", {"name": previous, "state": "end"})
        self.recording.event("phase", {"name": test, "state": "start"})
        self.progress(f"{test}:")

    def _wait(self, seconds: float) -> None:
        if self.stopped.wait(seconds / self.clock.speed if seconds > 0 else 0):
            raise RunAborted("stopped by the operator")

    def _deliver(self, stimulus: Stimulus, trial: int) -> Answer:
        if stimulus.kind != THERMAL_RAMP:
            raise ProtocolError(f"{stimulus.test}: this runner cannot deliver "
                                f"{stimulus.kind!r} stimuli yet")
        return self._ramp(stimulus, trial)

    def _ramp(self, stimulus: Stimulus, trial: int) -> Answer:
        p = stimulus.params
        self._wait_idle()
        self.thermode.prepare_ramp_and_hold(p["limit_c"], p["rate_c_s"], p["return_rate_c_s"],
                                            0.0)
        for listener in list(self.listeners):
            listener(stimulus)
        self._drain_presses()
        self.thermode.start()
        onset = self.clock.now()
        self.recording.event("stimulus_onset", {
            "device": "thermode", "modality": "cold" if p["direction"] == "cold" else "heat",
            "test": stimulus.test, "target": p["limit_c"], "unit": "degC",
            "rate_c_s": p["rate_c_s"], "trial": trial, "repetition": stimulus.repetition,
            "site": stimulus.site}, onset)
        ramp_s = abs(p["limit_c"] - p["baseline_c"]) / p["rate_c_s"]
        press = self._next_press(onset + ramp_s + RAMP_MARGIN_S)
        if press is None:
            self.recording.event("stimulus_offset", {"trial": trial, "device": "thermode",
                                                     "reason": "cut-off"})
            return Answer(CUTOFF, float(p["limit_c"]), self.clock.now())
        self.thermode.abort()
        self.recording.event("stimulus_offset", {"trial": trial, "device": "thermode",
                                                 "reason": "button"}, press.timestamp)
        temperature = self._temperature_at(press.timestamp)
        kind = STOPPED
        if press.value == PARADOXICAL_BUTTON and p["direction"] == "cold":
            kind = PARADOXICAL if stimulus.test == "TSL" else STOPPED
        return Answer(kind, temperature, press.timestamp, {"button": press.value})

    def _record_trial(self, stimulus: Stimulus, answer: Answer, trial: int) -> None:
        self.recording.event("trial", {
            "test": stimulus.test, "repetition": stimulus.repetition, "trial": trial,
            "answer": answer.kind, "value": answer.value, "unit": "degC",
            "direction": stimulus.params.get("direction"), "site": stimulus.site})
        value = "-" if answer.value is None else f"{answer.value:.2f}"
        self.progress(f"  {stimulus.test} {stimulus.repetition}: {answer.kind} at {value} °C")

    # -- devices -----------------------------------------------------------------------------
    def _on_response(self, response: Response) -> None:
        self.recording.event("response", {"source": response.source, "action": response.kind,
                                          "value": response.value}, response.timestamp)
        if response.kind == "press":
            self._presses.put(response)

    def _drain_presses(self) -> None:
        while not self._presses.empty():
            self._presses.get_nowait()

    def _next_press(self, deadline: float) -> Response | None:
        """The next button press before ``deadline`` (clock time), or None."""
        while True:
            left = deadline - self.clock.now()
            if left <= 0:
                return None
            try:
                return self._presses.get(timeout=min(left, 0.05) / self.clock.speed)
            except queue.Empty:
                if self.stopped.is_set():
                    self.thermode.abort()
                    raise RunAborted("stopped by the operator") from None

    def _wait_idle(self, timeout_s: float = 120.0) -> None:
        deadline = self.clock.now() + timeout_s
        while self.thermode.busy:
            if self.clock.now() > deadline:
                raise ProtocolError("the thermode did not return to its baseline")
            self._wait(0.02)

    def _temperature_at(self, timestamp: float) -> float:
        times, values = self._probe.snapshot()
        if not len(times):
            raise ProtocolError("no temperature samples from the thermode")
        i = max(0, int(np.searchsorted(times, timestamp, side="right")) - 1)
        return float(np.mean(values[i, 1:]))  # zones 1-5 (column 0 is the neutral sensor)
