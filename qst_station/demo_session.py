"""A simulated fMRI heat-pain run, recorded end to end into a session file.

Everything is simulated but real on the wire: the TCS II on a pty, a scanner trigger box
on a pty, an ECG published on LSL (this machine only) and recorded back through an LSL
inlet, a participant who rates each stimulus. Heat stimuli start from the trigger reader
thread on scheduled volumes (locked to the scanner); stimuli, ratings, volumes, device
status, thermode temperatures and the ECG go into one recording, which the HDF5 writer
stores and the LSL publisher sends out.
"""

from __future__ import annotations

import itertools
import queue
import threading
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from drivers.serial_input import time_critical
from drivers.tcs import TcsDriver
from drivers.trigger_box import SerialTriggerSource
from drivers.volumes import Volume, VolumeCounter
from qst_station import session as session_file
from qst_station.clock import Clock
from qst_station.config import LslInletConfig, StationConfig
from qst_station.lsl_inlets import LslInletRecorder
from qst_station.lsl_outlets import LslPublisher
from qst_station.privacy import identifying_reason
from qst_station.recorders import record_status, record_thermode, record_triggers
from qst_station.recording import Recording, SessionInfo
from qst_station.session_writer import SessionWriter
from sim.ecg import EcgSimulator
from sim.participant import SimulatedParticipant
from sim.scanner import SimulatedScanner
from sim.tcs import SimulatedTcs

TARGETS_C = (44.0, 46.0, 45.0, 47.0)
BASELINE_C = 32.0


@dataclass(frozen=True)
class DemoPlan:
    volumes: int = 16
    tr_s: float = 2.0
    every: int = 4  # a stimulus on volumes 3, 3 + every, ...
    first: int = 3
    hold_ms: int = 2000  # ramp + plateau (TCS duration)
    rate_c_per_s: float = 20.0
    ecg_rate_hz: float = 500.0
    seed: int = 0
    targets_c: tuple[float, ...] = TARGETS_C  # cycled; e.g. a calibration's T30/T50/T70

    def stimulus_volumes(self) -> list[int]:
        return list(range(self.first, self.volumes + 1, self.every))

    def check(self) -> None:
        rise = (max(self.targets_c) - BASELINE_C) / self.rate_c_per_s
        needs = self.hold_ms / 1000 + rise + 0.5
        if self.every * self.tr_s < needs:
            raise ValueError(f"stimuli every {self.every} volumes of {self.tr_s:g} s leave "
                             f"{self.every * self.tr_s:g} s; each needs {needs:.1f} s")


class _Stimulator:
    """Starts the pre-programmed stimulus when a scheduled volume arrives.

    Settings are programmed and verified while the previous volumes go by, so nothing but
    ``L`` goes out at the critical moment, and it goes out from the trigger reader thread
    itself, before the trigger is recorded (a time-critical subscriber): no thread hand-off.
    That start never waits: if another command holds the wire or the settings still need
    reading back, the volume goes to a thread of its own, which waits and verifies (the
    reader must stay free to stamp the next trigger). The onset is stamped when ``L`` has
    been written; recording it is left to that thread too.
    """

    def __init__(self, tcs: TcsDriver, recording: Recording, plan: DemoPlan) -> None:
        self.tcs, self.recording, self.plan = tcs, recording, plan
        self.schedule = dict(zip(plan.stimulus_volumes(), itertools.cycle(plan.targets_c),
                                 strict=False))
        self.given: list[tuple[int, float, float]] = []  # (trial, target, onset)
        self.errors: list[str] = []
        self.changed = threading.Event()
        # (volume, onset): started already, to record; onset None: still to start
        self._volumes: queue.SimpleQueue[tuple[Volume, float | None] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._serve, name="demo-stimulator", daemon=True)
        self._thread.start()

    def prepare(self, target: float) -> None:
        self.tcs.configure(0, target=target, rise=self.plan.rate_c_per_s,
                           ret=self.plan.rate_c_per_s, duration_ms=self.plan.hold_ms)
        self.tcs.verify_settings()

    @time_critical
    def on_volume(self, volume: Volume) -> None:
        """Trigger-reader thread: start on scheduled volumes, if that needs no waiting."""
        if volume.index not in self.schedule or volume.inferred:
            return
        try:
            started = self.tcs.try_start()
        except Exception as error:  # noqa: BLE001 - recorded; the run goes on safely
            self._not_given(volume, error)
            return
        self._volumes.put((volume, self.recording.clock.now() if started else None))

    def close(self) -> None:
        self._volumes.put(None)
        self._thread.join(timeout=5.0)

    def _serve(self) -> None:
        while (item := self._volumes.get()) is not None:
            volume, onset = item
            if onset is None:
                onset = self._start(volume)
            if onset is not None:
                self._given(volume, onset)

    def _start(self, volume: Volume) -> float | None:
        try:
            self.tcs.start()
        except Exception as error:  # noqa: BLE001 - recorded; the run goes on safely
            self._not_given(volume, error)
            return None
        return self.recording.clock.now()

    def _not_given(self, volume: Volume, error: Exception) -> None:
        self.errors.append(f"volume {volume.index}: {error}")
        self.recording.event("note", {"message": f"stimulus not given: {error}"})

    def _given(self, volume: Volume, onset: float) -> None:
        target = self.schedule[volume.index]
        trial = len(self.given) + 1
        self.given.append((trial, target, onset))
        self.recording.event("stimulus_onset", {
            "device": "tcs2", "modality": "heat", "target": target, "unit": "degC",
            "zones": [1, 2, 3, 4, 5], "trial": trial, "volume": volume.index}, onset)
        self.changed.set()


def record_demo_session(path: str | Path, clock: Clock, plan: DemoPlan | None = None,
                        participant: str = "DEMO01", visit: str = "baseline",
                        publish: bool = True, print_line: Callable[[str], None] = print,
                        resume: bool = False, config: StationConfig | None = None
                        ) -> Recording:
    """Run the plan and record it into ``path``; returns the stopped recording.

    ``path`` must be new unless ``resume``: then the run is added to it as a new part
    (same participant and visit; nothing recorded before is changed). From the station
    configuration: the site, the privacy setting, and every ``lsl-inlet`` entry, recorded
    along (its stream must be on the network)."""
    plan = plan or DemoPlan()
    plan.check()
    config = config or StationConfig()
    refuse_identifying_codes = config.station.refuse_identifying_codes
    why = identifying_reason(participant) if refuse_identifying_codes else None
    if why:
        raise ValueError(f"{why}; use a pseudonymous code")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # each part of a continued session is a scanner run of its own
    run_number = len(session_file.open(path).parts) + 1 if resume and path.exists() else 1
    recording = Recording(clock, refuse_identifying_codes)
    writer = SessionWriter(path, resume=resume)
    recording.subscribe(writer)
    if publish:
        recording.subscribe(LslPublisher(station="qst-station-demo"))
    ecg_name = f"qst-demo-ECG-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        tcs_sim = stack.enter_context(SimulatedTcs(clock, seed=plan.seed))
        scanner = SimulatedScanner(plan.tr_s, volumes=plan.volumes, clock=clock,
                                   seed=plan.seed, start_delay_s=plan.tr_s)
        stack.callback(scanner.stop)
        ecg = EcgSimulator(plan.ecg_rate_hz, seed=plan.seed, clock=clock, name=ecg_name,
                           truth_path=_new_file(path.with_name(path.stem + "_rr-truth.tsv")))
        stack.callback(ecg.close)
        tcs = TcsDriver(tcs_sim.port, clock=clock, quiet_s=0.05)
        device = tcs.connect()
        stack.callback(tcs.disconnect)
        triggers = SerialTriggerSource(scanner.port, character=b"5", clock=clock,
                                       counter=VolumeCounter(tr_s=plan.tr_s))
        ecg_inlet = LslInletRecorder(recording, ecg_name, name="ecg", resolve_timeout_s=5.0)
        ecg.start()
        ecg_inlet.connect()
        stack.callback(ecg_inlet.disconnect)
        for key, entry in config.devices.items():
            if isinstance(entry, LslInletConfig):
                inlet = LslInletRecorder.from_config(recording, key, entry)
                inlet.connect()
                stack.callback(inlet.disconnect)
                record_status(recording, inlet, key)
        record_thermode(recording, tcs, source=f"TCS II {device.firmware} on {tcs_sim.port}")
        record_triggers(recording, triggers)
        for name, source in (("tcs2", tcs), ("scanner", triggers), ("ecg", ecg_inlet)):
            record_status(recording, source, name)
        stimulator = _Stimulator(tcs, recording, plan)
        stack.callback(stimulator.close)
        triggers.subscribe(stimulator.on_volume)
        recording.start(SessionInfo(
            participant, visit, site=config.station.site, protocol="demo-fmri-heat",
            operator="demo", station_config=config.model_dump_json(),
            devices=({"kind": "tcs2", "identity": device.identity,
                      "firmware": device.firmware, "port": tcs_sim.port},
                     {"kind": "trigger-box", "port": scanner.port},
                     {"kind": "lsl-inlet", "stream": ecg_name})))
        print_line(f"recording {path}: {plan.volumes} volumes, TR {plan.tr_s:g} s, heat on "
                   f"volumes {plan.stimulus_volumes()}, ECG {plan.ecg_rate_hz:g} Hz via LSL")
        triggers.connect()
        stack.callback(triggers.disconnect)
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        tcs.set_baseline(BASELINE_C)
        try:
            _run(recording, tcs, scanner, stimulator, plan, print_line, run_number)
        except BaseException:
            writer.wait(30.0)  # the exit status ("failed") reaches the file first
            raise
    if not writer.wait(30.0):
        raise RuntimeError(f"{path}: the writer did not finish within 30 s")
    if writer.error:
        raise RuntimeError(f"the session file was not completed: {writer.error}")
    return recording


def _run(recording: Recording, tcs: TcsDriver, scanner: SimulatedScanner,
         stimulator: _Stimulator, plan: DemoPlan, print_line: Callable[[str], None],
         run_number: int) -> None:
    """Prepare each stimulus, rate it, end the run after the last volume."""
    clock = recording.clock
    participant = SimulatedParticipant(seed=plan.seed)
    recording.event("phase", {"name": "fmri-run", "state": "start", "run": run_number})
    stimulator.prepare(plan.targets_c[0])
    scanner.start()
    pending: list[tuple[float, str, dict[str, object]]] = []
    rated = 0
    status, reason = "success", ""
    try:
        end = clock.now() + plan.tr_s * (plan.volumes + 1) + 1.0
        while clock.now() < end or pending:
            stimulator.changed.wait(0.02 / clock.speed)
            stimulator.changed.clear()
            while rated < len(stimulator.given):
                trial, target, onset = stimulator.given[rated]
                rated += 1
                offset = onset + plan.hold_ms / 1000
                rating, delay = participant.rate_heat(target)
                pending.append((offset, "stimulus_offset", {"trial": trial, "device": "tcs2"}))
                pending.append((offset + delay, "rating", {
                    "scale": "NRS 0-100", "value": rating, "stimulus": trial}))
                if rated < len(stimulator.schedule):
                    next_target = plan.targets_c[rated % len(plan.targets_c)]
                    _prepare_when_idle(tcs, stimulator, next_target, clock)
            pending = _emit_due(recording, pending, print_line)
    except KeyboardInterrupt:
        status, reason = "aborted", "interrupted by the operator"
        tcs.abort()
    except Exception as error:
        status, reason = "failed", f"{type(error).__name__}: {error}"
        tcs.abort()
        raise
    finally:
        recording.event("phase", {"name": "fmri-run", "state": "end", "run": run_number})
        recording.stop(status, "" if status == "success" else reason)
    if stimulator.errors:
        print_line("stimuli not given: " + "; ".join(stimulator.errors))


def _prepare_when_idle(tcs: TcsDriver, stimulator: _Stimulator, target: float,
                       clock: Clock) -> None:
    """Program the next stimulus once the probe is back at baseline (the driver is idle)."""
    deadline = clock.now() + 30.0
    while tcs.busy and clock.now() < deadline:
        clock.sleep(0.05)
    stimulator.prepare(target)


def _emit_due(recording: Recording, pending: list[tuple[float, str, dict[str, object]]],
              print_line: Callable[[str], None]) -> list[tuple[float, str, dict[str, object]]]:
    now = recording.clock.now()
    for when, kind, payload in sorted(p for p in pending if p[0] <= now):
        recording.event(kind, payload, when)
        if kind == "rating":
            print_line(f"  trial {payload['stimulus']}: rated {payload['value']:g}/100")
    return [p for p in pending if p[0] > now]


def _new_file(path: Path) -> Path:
    """``path``, or ``<stem>-2<suffix>``, ``-3``... if it exists (never overwrite)."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
