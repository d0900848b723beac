"""Run a whole protocol headless on simulated devices with a simulated participant.

The devices a protocol needs (its ``roles``) are simulated on ptys and opened with their
real drivers; a participant (``sim/participant.py``) feels what the simulated devices
deliver and answers through the simulated button box or rating scale after its reaction
time. Everything is recorded into a new session file, with the participant's true
parameters. Each role's simulated station is built by a function in :data:`BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.responses import SerialButtonBox
from drivers.tcs import TcsDriver
from protocols.base import Measure
from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.deliver_manual import ManualDelivery
from qst_station.deliver_thermal import ThermalDelivery
from qst_station.recorders import record_responses, record_status, record_thermode
from qst_station.recording import Recording
from qst_station.runner import Delivery
from qst_station.session_setup import session_file_name
from qst_station.simulated_pressure import PRESSURE_BUILDERS
from qst_station.simulated_scanner import SCANNER_BUILDERS
from sim.button_box import SimulatedButtonBox
from sim.examiner import SimulatedExaminer
from sim.mechanical_participant import MechanicalParticipant
from sim.participant import ParticipantModel, SimulatedParticipant
from sim.perceiver import ThermalPerceiver
from sim.rating_scale import SimulatedRatingScale
from sim.tcs import SimulatedTcs


@dataclass
class SimStation:
    """What the builders share and fill in."""

    clock: Clock
    recording: Recording
    participant: SimulatedParticipant
    stack: ExitStack
    seed: int
    button_sim: SimulatedButtonBox
    buttons: SerialButtonBox
    scale: SimulatedRatingScale
    deliveries: list[Delivery] = field(default_factory=list)
    listeners: list[Callable[[Any], None]] = field(default_factory=list)
    capabilities: dict[str, Any] = field(default_factory=dict)
    devices: list[dict[str, str]] = field(default_factory=list)
    before_start: list[Callable[[], None]] = field(default_factory=list)  # after recording starts
    drivers: dict[str, Any] = field(default_factory=dict)  # role -> driver (and "<role>-sim")
    protocol: Any = None
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)  # e.g. "scanner": SimulatedScanner
    #                                                          keyword arguments

    @property
    def sources(self) -> tuple[Any, ...]:
        """Response sources the session connects once the recording has started."""
        return (self.buttons, self.scale)


def build_thermode(station: SimStation) -> None:
    """A simulated TCS II, its driver, and the participant feeling it."""
    clock = station.clock
    tcs_sim = station.stack.enter_context(SimulatedTcs(clock, seed=station.seed))
    tcs = TcsDriver(tcs_sim.port, clock=clock, quiet_s=0.05)
    device = tcs.connect()
    station.stack.callback(tcs.disconnect)
    perceiver = ThermalPerceiver(station.participant, tcs_sim, station.button_sim,
                                 station.scale, clock).start()
    station.stack.callback(perceiver.stop)
    record_thermode(station.recording, tcs, source=f"TCS II {device.firmware} (simulated)")
    record_status(station.recording, tcs, "thermode")
    station.capabilities["thermode"] = tcs.capabilities
    station.deliveries.append(ThermalDelivery(tcs, [station.buttons, station.scale]))
    station.listeners.append(perceiver.instruct)
    station.drivers.update({"thermode": tcs, "thermode-sim": tcs_sim})
    station.devices.append({"kind": "tcs2", "identity": device.identity,
                            "firmware": device.firmware, "port": tcs_sim.port})

    def prepare() -> None:
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        tcs.set_baseline(32.0)

    station.before_start.append(prepare)


def build_examiner(station: SimStation) -> None:
    """A simulated examiner applying hand-held stimuli to the participant."""
    mechanical = MechanicalParticipant(station.seed,
                                       **station.participant.model.mechanical.model_dump())
    station.deliveries.append(ManualDelivery(SimulatedExaminer(mechanical, station.clock)))
    station.devices.append({"kind": "examiner", "identity": "simulated examiner"})


# role -> builder; roles without one (buttons, rating) are always there
BUILDERS: dict[str, Callable[[SimStation], None]] = {"thermode": build_thermode,
                                                     "examiner": build_examiner}
BUILDERS.update(PRESSURE_BUILDERS)  # algometer, cuff, operator
BUILDERS.update(SCANNER_BUILDERS)  # scanner (+ trigger box, ECG on LSL)
LAST_ROLES = ("scanner",)  # built after the devices they drive


def session_path(out_dir: Path, participant: str, visit: str, protocol: str) -> Path:
    """``out_dir/sub-<participant>_ses-<visit>_<protocol>_<UTC stamp now>.h5``."""
    return out_dir / session_file_name(participant, visit, protocol)


def run_simulated(protocol: ProtocolFile, clock: Clock, path: Path,
                  model: ParticipantModel | None = None, seed: int = 0,
                  visit: str = "sim", progress: Callable[[str], None] = print,
                  options: dict[str, Any] | None = None) -> list[Measure]:
    """Run ``protocol`` on simulated devices into ``path``; returns the measures.

    ``options`` tune the simulated station (e.g. ``{"scanner": {"drop": {12}}}``)."""
    from qst_station.protocol_session import ProtocolSession

    return ProtocolSession(protocol, clock, path, model, seed, visit, progress,
                           options).run()


def build_station(protocol: ProtocolFile, clock: Clock, recording: Recording,
                  participant: SimulatedParticipant, stack: ExitStack, seed: int, path: Path,
                  options: dict[str, Any], progress: Callable[[str], None]) -> SimStation:
    """The simulated devices for ``protocol``'s roles, opened with their drivers."""
    box = stack.enter_context(SimulatedButtonBox(clock, seed=seed))
    station = SimStation(clock, recording, participant, stack, seed, box,
                         SerialButtonBox(box.port, clock=clock), SimulatedRatingScale(clock),
                         protocol=protocol, path=path,
                         options={**options, "progress": progress})
    for name, source in (("buttons", station.buttons), ("rating", station.scale)):
        record_status(recording, source, name)
        record_responses(recording, source)  # once, whichever delivery waits for them
    for role in sorted(protocol.roles, key=lambda r: r in LAST_ROLES):
        builder = BUILDERS.get(role)
        if builder is None and role not in ("buttons", "rating"):
            raise ValueError(f"{protocol.name}: no simulated device for the role {role!r}")
        if builder is not None:
            builder(station)
    return station
