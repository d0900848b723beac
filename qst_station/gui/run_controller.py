"""The console's link to a protocol run: one :class:`ProtocolSession` at a time, off the GUI
thread.

:meth:`RunController.start` opens a worker thread that builds the devices, records and runs
the protocol; the GUI sees the run through the Qt signals below (delivered on its thread)
and through the fresh :class:`EventFeed`, :class:`LiveBuffers` and :class:`LiveHeartRate`
of each run, which it polls at its own frame rate. :meth:`stop` never waits: the devices are
made safe on a thread of its own, at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from protocols.base import Measure, Stimulus
from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.event_feed import EventFeed
from qst_station.live_buffer import LiveBuffers
from qst_station.live_heart_rate import LiveHeartRate
from qst_station.protocol_session import ProtocolSession
from qst_station.session_setup import SessionSetup
from sim.participant import ParticipantModel


@dataclass(frozen=True)
class RunOutcome:
    path: Path
    status: str  # success | aborted | failed
    reason: str = ""
    measures: list[Measure] = field(default_factory=list)


@dataclass
class LiveRun:
    """What the panels read while a run goes on."""

    path: Path
    protocol: ProtocolFile
    setup: SessionSetup
    feed: EventFeed
    buffers: LiveBuffers
    heart: LiveHeartRate
    session: ProtocolSession
    started: float  # program clock


class RunController(QObject):
    started = Signal(object)  # LiveRun
    line = Signal(str)  # the runner's progress lines
    instruction = Signal(object)  # Stimulus: what the examiner and participant are told
    finished = Signal(object)  # RunOutcome

    def __init__(self, clock: Clock, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.clock = clock
        self.live: LiveRun | None = None
        self._worker: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self, protocol: ProtocolFile, setup: SessionSetup, path: Path,
              model: ParticipantModel | None = None, seed: int = 0,
              options: dict[str, Any] | None = None, station_config: str = "") -> LiveRun:
        """Start ``protocol`` for ``setup`` into ``path`` (simulated devices and participant).
        Raises SessionSetupError (naming the fields) before anything starts."""
        if self.running:
            raise RuntimeError("a run is already going on")
        feed, buffers = EventFeed(), LiveBuffers(seconds=120.0)
        heart = LiveHeartRate(clock=self.clock)
        info = setup.to_session_info(protocol.name, station_config)
        fields = {"participant": info.participant, "visit": info.visit, "site": info.site,
                  "operator": info.operator, "station_config": station_config,
                  "participant_details": setup.file_attrs()}
        session = ProtocolSession(protocol, self.clock, path, model, seed, info.visit,
                                  progress=self.line.emit, options=options,
                                  subscribers=[feed, buffers, heart],
                                  listeners=[self.instruction.emit], info=fields)
        live = LiveRun(path, protocol, setup, feed, buffers, heart, session, self.clock.now())
        self.live = live
        self._worker = threading.Thread(target=self._run, args=(live,), name="protocol-run",
                                        daemon=True)
        self._worker.start()
        self.started.emit(live)
        return live

    def _run(self, live: LiveRun) -> None:
        try:
            measures = live.session.run()
            outcome = RunOutcome(live.path, live.session.status, live.session.reason, measures)
        except Exception as error:  # noqa: BLE001 - shown in the console; the file says failed
            outcome = RunOutcome(live.path, "failed", f"{type(error).__name__}: {error}")
        finally:
            live.heart.close()
        self.finished.emit(outcome)

    def stop(self, reason: str = "stopped by the operator") -> threading.Thread | None:
        """Abort the run now (devices made safe on a thread of their own); never blocks."""
        live = self.live
        if live is None or not self.running:
            return None
        stopper = threading.Thread(target=live.session.stop, args=(reason,), name="stop",
                                   daemon=True)
        stopper.start()
        return stopper

    def pause(self) -> None:
        if self.live is not None:
            self.live.session.pause()

    def resume(self) -> None:
        if self.live is not None:
            self.live.session.resume()

    def skip_test(self) -> None:
        if self.live is not None:
            self.live.session.skip_test()

    def repeat_trial(self) -> None:
        if self.live is not None:
            self.live.session.repeat_trial()

    def wait(self, timeout_s: float) -> bool:
        """Wait for the run's thread to end (the file closed); True if it did."""
        worker = self._worker
        if worker is None:
            return True
        worker.join(timeout_s)
        return not worker.is_alive()


def instruction_text(stimulus: Stimulus) -> str:
    """The examiner's instruction for ``stimulus``, or a description of it."""
    if stimulus.instruction:
        return stimulus.instruction
    p = stimulus.params
    if "limit_c" in p:
        return (f"{stimulus.test} {stimulus.repetition}: ramp {p.get('direction', '')} at "
                f"{p.get('rate_c_s', '?')} °C/s; the participant presses at the sensation")
    if "target_c" in p:
        return f"{stimulus.test} {stimulus.repetition}: pulse to {p['target_c']:g} °C"
    return f"{stimulus.test} {stimulus.repetition}"
