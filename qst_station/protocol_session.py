"""One protocol run on a station, from building its devices to the closed session file.

:class:`ProtocolSession` is what the CLI (``run --simulate``) and the operator console use:
:meth:`~ProtocolSession.run` builds the devices the protocol's roles need (simulated ones on
ptys, opened with the real drivers, with a simulated participant; or, with
``options["station"] = "real"``, the devices of ``options["config"]`` with a person as
participant: :mod:`qst_station.real_station`), checks every stimulus
against their limits, records into a new session file and runs the protocol; from any
other thread :meth:`stop`, :meth:`pause`/:meth:`resume`, :meth:`skip_test` and
:meth:`repeat_trial` steer it. Extra recording subscribers (live plots, the GUI's event
feed, live heart rate) and instruction listeners are added before it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from protocols.base import Measure, Stimulus
from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.recording import Recording, SessionInfo, Subscriber
from qst_station.runner import ProtocolRunner, RunAborted
from qst_station.session_writer import SessionWriter
from sim.participant import ParticipantModel, SimulatedParticipant


class ProtocolSession:
    """Runs ``protocol`` once into ``path`` (see the module docstring)."""

    def __init__(self, protocol: ProtocolFile, clock: Clock, path: Path,
                 model: ParticipantModel | None = None, seed: int = 0, visit: str = "sim",
                 progress: Callable[[str], None] = print, options: dict[str, Any] | None = None,
                 subscribers: Sequence[Subscriber] = (),
                 listeners: Sequence[Callable[[Stimulus], None]] = (),
                 info: dict[str, Any] | None = None) -> None:
        """``info`` overrides SessionInfo fields (participant, visit, site, operator...)."""
        self.protocol, self.clock, self.path = protocol, clock, Path(path)
        self.seed, self.visit, self.progress = seed, visit, progress
        self.options = dict(options or {})
        self.participant = SimulatedParticipant(seed, model)
        self.recording = Recording(clock)
        self.writer = SessionWriter(self.path)
        self.recording.subscribe(self.writer)
        for subscriber in subscribers:
            self.recording.subscribe(subscriber)
        self.listeners = list(listeners)
        self.info = dict(info or {})
        self.status, self.reason = "idle", ""
        self.measures: list[Measure] = []
        self.station: Any = None
        self._runner: ProtocolRunner | None = None
        self._ready = threading.Event()  # the runner exists: steering works

    # -- steering (any thread) ----------------------------------------------------------------
    def stop(self, reason: str = "stopped by the operator") -> None:
        """Abort the current stimulus and every device; the run ends as ``aborted``."""
        if self._runner is not None:
            self._runner.stop(reason)

    def pause(self) -> None:
        if self._runner is not None:
            self._runner.pause()

    def resume(self) -> None:
        if self._runner is not None:
            self._runner.resume()

    @property
    def paused(self) -> bool:
        return self._runner is not None and self._runner.paused

    def skip_test(self) -> None:
        if self._runner is not None:
            self._runner.skip_test()

    def repeat_trial(self) -> None:
        if self._runner is not None:
            self._runner.repeat_trial()

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the devices are built and the run can be steered."""
        return self._ready.wait(timeout_s)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> list[Measure]:
        """Build, record, run; returns the measures. Raises what made the run fail (the file
        then says ``failed``); a stop or Ctrl-C ends it as ``aborted``."""
        procedure = self.protocol.procedure(np.random.default_rng(self.seed))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        status, reason = "failed", ""
        with ExitStack() as stack:
            station = self._build(stack)
            self.station = station
            self.protocol.check_devices(station.capabilities)
            self._record_lsl(stack)
            runner = ProtocolRunner(procedure, self.recording, station.deliveries,
                                    name=self.protocol.name, progress=self.progress)
            runner.listeners.extend([*station.listeners, *self.listeners])
            self._runner = runner
            stack.callback(self.writer.on_status(
                lambda kind, message: runner.stop(f"the session file cannot be written: "
                                                  f"{message}") if kind == "failed" else None))
            self.recording.start(self._session_info(station))
            self._ready.set()
            for source in station.sources:
                source.connect()
                stack.callback(source.disconnect)
            try:
                for prepare in station.before_start:
                    prepare()
                self.measures = runner.run()
                status = "success"
            except RunAborted as stop:
                status, reason = "aborted", str(stop)
            except KeyboardInterrupt:  # run() has already made every device safe
                status, reason = "aborted", "interrupted by the operator (Ctrl-C)"
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                raise
            finally:
                self.status, self.reason = status, reason
                self.recording.stop(status, reason)
                if status == "failed":  # the exit status must reach the file first
                    self.writer.wait(30.0)
        if not self.writer.wait(30.0):
            raise RuntimeError(f"{self.path}: the writer did not finish within 30 s")
        if self.writer.error:
            raise RuntimeError(f"the session file was not completed: {self.writer.error}")
        return self.measures

    def _record_lsl(self, stack: ExitStack) -> None:
        """Record the LSL streams named in ``options["record_lsl"]`` (e.g. chosen in the
        console's LSL tab) along with the run; one that does not resolve is an error."""
        from qst_station.lsl_inlets import LslInletRecorder
        from qst_station.recorders import record_status

        for stream in self.options.get("record_lsl", ()):
            inlet = LslInletRecorder(self.recording, stream, resolve_timeout_s=3.0)
            inlet.connect()
            stack.callback(inlet.disconnect)
            record_status(self.recording, inlet, f"lsl:{stream}")

    @property
    def real(self) -> bool:
        """The configured devices with a person (``options["station"] == "real"``)."""
        return self.options.get("station", "simulated") == "real"

    def _build(self, stack: ExitStack) -> Any:
        if self.real:
            if "participant" not in self.info:
                raise ValueError("a run on the station's devices needs info[\"participant\"] "
                                 "(the participant's code)")
            from qst_station.config import load_config
            from qst_station.real_station import build_real_station

            return build_real_station(self.protocol, self.options.get("config") or load_config(),
                                      self.clock, self.recording, stack, self.path,
                                      self.options, self.progress)
        from qst_station.simulated_run import build_station  # the builders import this module

        return build_station(self.protocol, self.clock, self.recording, self.participant, stack,
                             self.seed, self.path, self.options, self.progress)

    def _session_info(self, station: Any) -> SessionInfo:
        fields: dict[str, Any] = {
            "participant": self.participant.model.participant.code, "visit": self.visit,
            "protocol": self.protocol.name, "site": self.protocol.protocol.site}
        if self.real:  # a person: who it is comes with ``info``
            fields.update(devices=tuple(station.devices),
                          station_config=station.config.model_dump_json())
        else:
            fields.update(operator="simulation", simulation=self.participant.truth(),
                          devices=(*station.devices, {"kind": "button-box",
                                                      "port": station.button_sim.port}))
        fields.update(self.info)
        return SessionInfo(**fields)
