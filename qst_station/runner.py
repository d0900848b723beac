"""Run a protocol's state machine on devices, into a recording.

The runner asks the procedure for the next stimulus, waits its ISI, hands it to the
:class:`Delivery` registered for its kind (thermal ramps and pulses, pressure ramps,
examiner-applied stimuli, ...), gives the answer back to the procedure, and records every
step: ``phase`` events per test, ``trial`` per answer and ``result`` per measure (the
deliveries record ``stimulus_onset``/``stimulus_offset`` and ``response`` events).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Protocol as TypingProtocol

from protocols.base import Answer, Measure, Procedure, ProtocolError, Stimulus
from qst_station.recording import Recording


class RunAborted(RuntimeError):
    """The operator stopped the run (STOP / Ctrl-C); devices are back in their safe state."""


class RunContext:
    """What deliveries share: the recording, the clock, the stop request, the listeners."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.clock = recording.clock
        self.stopped = threading.Event()
        self.stop_reason = "stopped by the operator"
        self.listeners: list[Callable[[Stimulus], None]] = []  # see each instruction

    def abort_error(self) -> RunAborted:
        """What a delivery raises once :attr:`stopped` is set."""
        return RunAborted(self.stop_reason)

    def announce(self, stimulus: Stimulus) -> None:
        """Show ``stimulus``'s instructions (GUI, simulated participant or examiner)."""
        for listener in list(self.listeners):
            listener(stimulus)

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` of clock time; RunAborted if the operator stops meanwhile."""
        if self.stopped.wait(seconds / self.clock.speed if seconds > 0 else 0):
            raise self.abort_error()


class Delivery(TypingProtocol):
    """Delivers the stimuli of some kinds and says what happened."""

    kinds: tuple[str, ...]

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer: ...

    def abort(self) -> None:
        """Return the devices to their safe state now (any thread)."""


class ProtocolRunner:
    """Runs ``procedure`` with ``deliveries`` into ``recording``."""

    def __init__(self, procedure: Procedure, recording: Recording,
                 deliveries: Iterable[Delivery], name: str = "protocol",
                 progress: Callable[[str], None] | None = None) -> None:
        self.procedure = procedure
        self.recording = recording
        self.name = name
        self.progress = progress or (lambda line: None)
        self.context = RunContext(recording)
        self.deliveries = list(deliveries)
        self._by_kind = {kind: d for d in self.deliveries for kind in d.kinds}
        self._resume = threading.Event()
        self._resume.set()
        self._skip = self._repeat = False

    @property
    def listeners(self) -> list[Callable[[Stimulus], None]]:
        return self.context.listeners

    def stop(self, reason: str = "stopped by the operator") -> None:
        """Stop the run from any thread: the current stimulus is aborted, every device made
        safe at once (before this returns), the run ends as ``aborted`` with ``reason``."""
        self.context.stop_reason = reason
        self.context.stopped.set()
        self._resume.set()
        failures = self._make_safe()
        self.recording.event("note", {"message": f"stop: {reason}"})
        if failures:
            raise failures[0]

    def pause(self) -> None:
        """Hold before the next stimulus (the current one finishes)."""
        if self._resume.is_set():
            self._resume.clear()
            self.recording.event("phase", {"name": "pause", "state": "start"})
            self.progress("paused")

    def resume(self) -> None:
        if not self._resume.is_set():
            self._resume.set()
            self.recording.event("phase", {"name": "pause", "state": "end"})
            self.progress("resumed")

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def skip_test(self) -> None:
        """End the current test after the current stimulus (its measures are left out)."""
        self._skip = True

    def repeat_trial(self) -> None:
        """Give the current stimulus again; its answer is kept in the file but not used."""
        self._repeat = True

    def _make_safe(self) -> list[Exception]:
        """Abort every delivery's devices, even if one fails; the failures."""
        failures = []
        for delivery in self.deliveries:
            try:
                delivery.abort()
            except Exception as error:  # noqa: BLE001 - the others must still be made safe
                failures.append(error)
        return failures

    def run(self) -> list[Measure]:
        """Deliver every stimulus; returns the measures (also recorded as ``result`` events)."""
        self.recording.event("phase", {"name": self.name, "state": "start"})
        current, trial = "", 0
        try:
            while (stimulus := self._next()) is not None:
                if stimulus.test != current:
                    self._phase_change(current, stimulus.test)
                    current = stimulus.test
                self.context.wait(stimulus.isi_s)
                trial += 1
                answer = self._delivery(stimulus).deliver(stimulus, trial, self.context)
                if self._repeat:
                    self._repeat = False
                    self._record_trial(stimulus, answer, trial, discarded=True)
                    continue
                self.procedure.record(answer)
                self._record_trial(stimulus, answer, trial)
        except BaseException:  # a stop, a device error, Ctrl-C: every device to safe state
            self._make_safe()
            raise
        finally:
            if current:
                self.recording.event("phase", {"name": current, "state": "end"})
            self.recording.event("phase", {"name": self.name, "state": "end"})
        measures = self.procedure.result()
        for measure in measures:
            self.recording.event("result", measure.as_payload())
        return measures

    def _next(self) -> Stimulus | None:
        """The next stimulus, after a pause and with a requested skip carried out."""
        while not self._resume.wait(0.05):
            if self.context.stopped.is_set():
                break
        if self.context.stopped.is_set():
            raise self.context.abort_error()
        stimulus = self.procedure.next_stimulus()
        if self._skip and stimulus is not None:
            self._skip = False
            skip = getattr(self.procedure, "skip_current", None)
            if skip is None:
                self.progress(f"  {stimulus.test} cannot be skipped in this protocol")
            else:
                skip()
                self.recording.event("note", {"message": f"{stimulus.test} skipped by the "
                                                         "operator", "test": stimulus.test})
                self.progress(f"  {stimulus.test} skipped")
                stimulus = self.procedure.next_stimulus()
        return stimulus

    def _delivery(self, stimulus: Stimulus) -> Delivery:
        delivery = self._by_kind.get(stimulus.kind)
        if delivery is None:
            raise ProtocolError(f"{stimulus.test}: no device here delivers {stimulus.kind!r} "
                                "stimuli")
        return delivery

    def _phase_change(self, previous: str, test: str) -> None:
        if previous:
            self.recording.event("phase", {"name": previous, "state": "end"})
        self.recording.event("phase", {"name": test, "state": "start"})
        self.progress(f"{test}:")

    def _record_trial(self, stimulus: Stimulus, answer: Answer, trial: int,
                      discarded: bool = False) -> None:
        unit = str(answer.extra.get("unit", ""))
        extra = {"discarded": True} if discarded else {}
        self.recording.event("trial", {
            "test": stimulus.test, "repetition": stimulus.repetition, "trial": trial,
            "answer": answer.kind, "value": answer.value, "unit": unit,
            "site": stimulus.site, **{k: v for k, v in stimulus.params.items()
                                      if isinstance(v, (int, float, str))}, **extra})
        value = "-" if answer.value is None else f"{answer.value:.2f}"
        note = " (discarded: repeated)" if discarded else ""
        self.progress(f"  {stimulus.test} {stimulus.repetition}: {answer.kind} {value} "
                      f"{unit}{note}")
