"""Protocol runs on the lab's configured devices, with a person as participant.

:func:`build_real_station` gives the runner what :func:`qst_station.simulated_run.build_station`
gives it (deliveries, capabilities, devices, listeners, before_start, drivers), built from the
station configuration instead of simulators. Each of the protocol's roles is resolved to a
configured device first (a missing one is a one-line :class:`StationError` before any port
is opened), then each device is opened with its driver and recorded; a device that does not
open is a one-line :class:`StationError`, and every driver opened so far is closed on the
``stack``. Stimulators are made safe by the runner through the deliveries' ``abort()``.

The participant answers on the configured button box and on the response sources the
console passes in ``options["responses"]`` (its rating screen, keyboard); the examiner and
operator answer through an :class:`~qst_station.examiner_answers.ExaminerAnswers` in
``options["examiner"]``.
``port = "sim"`` (Medoc: ``host = "sim"``) serves that device from an in-process simulator
(``drivers["<role>-sim"]``), with nobody simulated behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.algometer import AlgometerDriver
from drivers.cuff import CuffDriver
from drivers.errors import DeviceError
from drivers.lsl_triggers import LslTriggerSource
from drivers.medoc import MedocDriver
from drivers.responses import SerialButtonBox
from drivers.thermal_safety import ThermalLimits
from drivers.trigger_box import SerialTriggerSource
from drivers.volumes import VolumeCounter
from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.config import LslInletConfig, StationConfig, TcsConfig
from qst_station.deliver_pressure import PressureCapabilities, PressureDelivery
from qst_station.deliver_scanner import ScannerLockedDelivery
from qst_station.deliver_thermal import ThermalDelivery
from qst_station.device_config import (
    AlgometerConfig,
    ButtonBoxConfig,
    CuffConfig,
    LslTriggerConfig,
    MedocConfig,
    TriggerBoxConfig,
)
from qst_station.examiner_answers import ExaminerDelivery, OperatorDelivery
from qst_station.lsl_inlets import LslInletRecorder
from qst_station.lsl_outlets import LslPublisher
from qst_station.recorders import (
    record_pressure,
    record_responses,
    record_status,
    record_thermode,
    record_triggers,
)
from qst_station.recording import Channel, Recording, StreamSpec
from qst_station.runner import Delivery
from qst_station.simulated_pressure import record_cuff
from qst_station.station import open_thermode

ALGOMETER_FULL_SCALE_N = 445.0  # Wagner FDIX 100 (100 lbf); the configuration has no field yet
START_DELAY_S = 4.0  # a simulated scanner ("sim" trigger box): first trigger after the start
DOCS = "(see docs/configuration.md)"
# device role -> (what it needs, the drivers that serve it)
DEVICE_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "thermode": ("a thermode", ("tcs2", "medoc")),
    "algometer": ("an algometer", ("wagner-fdix",)),
    "cuff": ("a cuff stimulator", ("ocp1-cuff",)),
    "scanner": ("scanner triggers", ("trigger-box", "lsl-markers")),
}
PERSON_ROLES = ("buttons", "rating", "examiner", "operator")


class StationError(RuntimeError):
    """This station cannot run this protocol (a missing or unopenable device), as one line."""


@dataclass
class Station:
    """What the runner needs of a station, built from the configuration."""

    protocol: ProtocolFile
    config: StationConfig
    clock: Clock
    recording: Recording
    stack: ExitStack
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[str], None] = print
    responses: list[Any] = field(default_factory=list)  # every participant response source
    deliveries: list[Delivery] = field(default_factory=list)
    listeners: list[Callable[[Any], None]] = field(default_factory=list)
    capabilities: dict[str, Any] = field(default_factory=dict)
    devices: list[dict[str, str]] = field(default_factory=list)
    before_start: list[Callable[[], None]] = field(default_factory=list)  # after the start
    drivers: dict[str, Any] = field(default_factory=dict)  # role -> driver ("<role>-sim")
    sources: list[Any] = field(default_factory=list)  # connected by the session at the start

    @property
    def seed(self) -> int:
        return int(self.options.get("seed", 0))

    def add_device(self, kind: str, name: str, identity: str, firmware: str = "",
                   port: str = "") -> None:
        """List a device for the session file (``port``: where it was reached)."""
        self.devices.append({"kind": kind, "name": name, "identity": identity,
                             "firmware": firmware, "port": port})


# ---------------------------------------------------------------- the station


def build_real_station(protocol: ProtocolFile, config: StationConfig, clock: Clock,
                       recording: Recording, stack: ExitStack, path: Path | None,
                       options: dict[str, Any], progress: Callable[[str], None]) -> Station:
    """The configured devices for ``protocol``'s roles, opened and recorded (module doc)."""
    plan = plan_roles(protocol, config, options)
    station = Station(protocol, config, clock, recording, stack, path, dict(options), progress)
    _responses(station, plan.get("buttons"))
    for role in sorted(plan, key=lambda r: r == "scanner"):
        builder = BUILDERS.get(role)
        if builder is not None:
            name, device = plan[role]
            builder(station, name, device)
    people = [role for role in ("examiner", "operator") if role in protocol.roles]
    if people and hasattr(options["examiner"], "begin"):
        options["examiner"].begin(clock)
    for role in people:
        _answers(station, role)
    _inlets(station)
    return station


def plan_roles(protocol: ProtocolFile, config: StationConfig, options: dict[str, Any]
               ) -> dict[str, tuple[str, Any]]:
    """Role -> (configuration name, entry) for the devices to open; StationError naming the
    first role this station cannot fill. ``options["devices"]`` may name an entry per role."""
    chosen: dict[str, str] = dict(options.get("devices") or {})
    responses = list(options.get("responses") or [])
    plan: dict[str, tuple[str, Any]] = {}
    for role in protocol.roles:
        if role in DEVICE_ROLES:
            plan[role] = _configured(protocol, config, role, chosen.get(role))
        elif role not in PERSON_ROLES:
            raise StationError(f"{protocol.name}: this station has no device for the role "
                               f"{role!r}")
    boxes = [(n, d) for n, d in config.devices.items() if isinstance(d, ButtonBoxConfig)]
    if "buttons" in chosen:
        boxes = [(n, d) for n, d in boxes if n == chosen["buttons"]]
        if not boxes:
            raise StationError(f"{protocol.name}: no button-box entry named "
                               f"{chosen['buttons']!r} {DOCS}")
    if boxes and {"buttons", "rating"} & set(protocol.roles):
        plan["buttons"] = boxes[0]
    elif "buttons" in protocol.roles and not responses:
        raise StationError(f"{protocol.name} needs the participant's button: add a "
                           f"[devices.<name>] entry with driver = \"button-box\" {DOCS}, or "
                           "let the participant answer on the keyboard (options[\"responses\"])")
    if "rating" in protocol.roles and not responses:
        raise StationError(f"{protocol.name} needs a rating source for the participant: pass "
                           "the console's rating screen in options[\"responses\"]")
    for role in ("examiner", "operator"):
        if role in protocol.roles and options.get("examiner") is None:
            raise StationError(f"{protocol.name} needs the {role} at the console: pass an "
                               "ExaminerAnswers in options[\"examiner\"]")
    return plan


def _configured(protocol: ProtocolFile, config: StationConfig, role: str, name: str | None
                ) -> tuple[str, Any]:
    what, drivers = DEVICE_ROLES[role]
    found = [(n, d) for n, d in config.devices.items()
             if getattr(d, "driver", "") in drivers and (name is None or n == name)]
    if not found:
        also = "".join(f" (or \"{d}\")" for d in drivers[1:])
        named = f" named {name!r}" if name is not None else ""
        raise StationError(f"{protocol.name} needs {what}{named}: add a [devices.<name>] "
                           f"entry with driver = \"{drivers[0]}\"{also} {DOCS}")
    tcs = [entry for entry in found if isinstance(entry[1], TcsConfig)]
    return (tcs or found)[0]  # a TCS II before a Medoc


@contextmanager
def _opening(role: str, what: str, where: str) -> Iterator[None]:
    """A device that does not open becomes one StationError line."""
    try:
        yield
    except (DeviceError, OSError, ValueError) as error:
        text = " ".join(str(error).split()) or type(error).__name__
        raise StationError(f"{role}: {what} on {where} did not open: {text}") from error


def _served(station: Station, role: str, device: Any, make: Callable[[], Any]) -> tuple[str, Any]:
    """(port, simulator): the configured port, or an in-process simulator for "sim"."""
    if not device.simulated:
        return device.port, None
    simulator = station.stack.enter_context(make())
    station.drivers[f"{role}-sim"] = simulator
    return simulator.port, simulator


def _suffix(simulator: Any) -> str:
    return " (simulated)" if simulator is not None else ""


def _responses(station: Station, box: tuple[str, ButtonBoxConfig] | None) -> None:
    """The configured button box (opened now) and the console's sources; all recorded."""
    from sim.button_box import SimulatedButtonBox

    supplied = list(station.options.get("responses") or [])
    station.responses = list(supplied)
    if box is not None:
        name, device = box
        port, sim = _served(station, "buttons", device,
                            lambda: SimulatedButtonBox(station.clock, seed=station.seed))
        buttons = SerialButtonBox(port, device.press_map, baudrate=device.baudrate,
                                  clock=station.clock, name=name)
        station.stack.callback(buttons.disconnect)
        record_status(station.recording, buttons, "buttons")
        with _opening("buttons", f"the button box {name!r}", port):
            buttons.connect()
        station.drivers["buttons"] = buttons
        station.add_device("button-box", name, f"button box{_suffix(sim)}", port=port)
        station.responses.insert(0, buttons)
    for source in supplied:
        name = str(getattr(source, "name", type(source).__name__))
        if not source.connected:
            station.sources.append(source)  # the session connects it once recording runs
        record_status(station.recording, source, name)
        station.add_device("responses", name, name)
    for source in station.responses:
        record_responses(station.recording, source)  # once, whichever delivery waits


def _thermode(station: Station, name: str, device: TcsConfig | MedocConfig) -> None:
    if isinstance(device, MedocConfig):
        _medoc(station, name, device)
        return
    only = station.config.model_copy(update={"devices": {name: device}})
    thermode = open_thermode(only, station.clock, seed=station.seed)
    station.stack.callback(thermode.close)
    tcs, sim = thermode.driver, thermode.simulator
    record_status(station.recording, tcs, "thermode")
    with _opening("thermode", f"the TCS II {name!r}", tcs.port):
        info = tcs.connect()
    record_thermode(station.recording, tcs, source=f"TCS II {info.firmware}{_suffix(sim)}")
    station.capabilities["thermode"] = tcs.capabilities
    station.deliveries.append(ThermalDelivery(tcs, station.responses))
    station.drivers["thermode"] = tcs
    if sim is not None:
        station.drivers["thermode-sim"] = sim
    station.add_device("tcs2", name, info.identity, info.firmware, tcs.port)

    def prepare() -> None:
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        tcs.set_baseline(device.baseline)

    station.before_start.append(prepare)


def _medoc(station: Station, name: str, device: MedocConfig) -> None:
    """A Medoc runs programs only: no ramp delivery; the protocol's check refuses ramps with
    the Medoc's capability error before anything starts."""
    from sim.medoc_server import SimulatedMedoc

    host, port, sim = device.host, device.port, None
    if device.simulated:
        sim = station.stack.enter_context(SimulatedMedoc(station.clock, thermode=device.thermode,
                                                         seed=station.seed))
        host, port = "127.0.0.1", sim.port
        station.drivers["thermode-sim"] = sim
    limits = ThermalLimits(device.min_celsius, device.max_celsius)
    medoc = MedocDriver(host, port, clock=station.clock, limits=limits, thermode=device.thermode,
                        allowed_programs=device.allowed_programs)
    station.stack.callback(medoc.disconnect)
    record_status(station.recording, medoc, "thermode")
    with _opening("thermode", f"the Medoc {name!r}", f"{host}:{port}"):
        medoc.connect()
    caps = medoc.capabilities
    station.recording.add_stream(StreamSpec("thermode", (Channel("temperature", "degC"),),
                                            1.0 / medoc.poll_interval_s,
                                            caps.device + _suffix(sim), publish=True,
                                            lsl_type="Temperature"))
    medoc.subscribe(lambda s: station.recording.push("thermode", [s.timestamp], [s.all]))
    station.capabilities["thermode"] = caps
    station.drivers["thermode"] = medoc
    station.add_device("medoc", name, caps.device, port=f"{host}:{port}")


def _pressure_delivery(station: Station) -> PressureDelivery:
    found = next((d for d in station.deliveries if isinstance(d, PressureDelivery)), None)
    if found is None:
        found = PressureDelivery(station.responses)
        station.deliveries.append(found)
    return found


def _algometer(station: Station, name: str, device: AlgometerConfig) -> None:
    from sim.algometer import SimulatedAlgometer

    port, sim = _served(station, "algometer", device,
                        lambda: SimulatedAlgometer(station.clock, seed=station.seed))
    driver = AlgometerDriver(port, clock=station.clock, probe_area_cm2=device.probe_area_cm2,
                             rate_hz=device.rate_hz, baudrate=device.baudrate)
    station.stack.callback(driver.disconnect)
    record_status(station.recording, driver, "algometer")
    with _opening("algometer", f"the algometer {name!r}", port):
        driver.connect()
    source = f"Wagner FDIX{_suffix(sim)}"
    record_pressure(station.recording, driver, source, rate_hz=device.rate_hz)
    _pressure_delivery(station).attach_algometer(driver)
    full_scale_kpa = ALGOMETER_FULL_SCALE_N / (device.probe_area_cm2 * 1e-4) / 1000.0
    station.capabilities["algometer"] = PressureCapabilities(source, full_scale_kpa)
    station.drivers["algometer"] = driver
    station.add_device("wagner-fdix", name, source, port=port)


def _cuff(station: Station, name: str, device: CuffConfig) -> None:
    from sim.cuff import SimulatedCuff

    port, sim = _served(station, "cuff", device,
                        lambda: SimulatedCuff(station.clock, seed=station.seed))
    cuff = CuffDriver(port, clock=station.clock, max_kpa=device.max_kpa,
                      stop_mode=device.stop_mode)
    station.stack.callback(cuff.disconnect)
    record_status(station.recording, cuff, "cuff")
    with _opening("cuff", f"the cuff {name!r}", port):
        info = cuff.connect()
    source = f"{info.model} {info.firmware}{_suffix(sim)}"
    record_cuff(station.recording, cuff, source)
    _pressure_delivery(station).attach_cuff(cuff)
    station.capabilities["cuff"] = PressureCapabilities(source, cuff.limit, (1, 2), 100.0)
    station.drivers["cuff"] = cuff
    station.add_device("ocp1-cuff", name, info.model, info.firmware, port)


def _scanner(station: Station, name: str, device: TriggerBoxConfig | LslTriggerConfig) -> None:
    """The trigger source (connected when the run starts) and the scanner-locked delivery."""
    settings = station.protocol.scanner_settings()  # type: ignore[attr-defined]
    if device.tr_s is not None and abs(device.tr_s - settings.tr_s) > 0.01 * settings.tr_s:
        raise StationError(f"scanner: {name!r} is configured for TR {device.tr_s:g} s, the "
                           f"paradigm {station.protocol.name} has TR {settings.tr_s:g} s")
    counter = VolumeCounter(settings.tr_s, settings.dummy_volumes)
    scanner: Any = None
    if isinstance(device, LslTriggerConfig):
        triggers: Any = LslTriggerSource(device.stream, device.match, counter=counter)
        where, kind = f"LSL stream {device.stream!r}", "lsl-markers"
    else:
        port = device.port
        if device.simulated:
            from sim.scanner import SimulatedScanner

            scanner = SimulatedScanner(settings.tr_s, settings.dummy_volumes + settings.volumes,
                                       character=device.character.encode(), clock=station.clock,
                                       seed=station.seed, start_delay_s=START_DELAY_S)
            station.stack.callback(scanner.stop)
            station.drivers["scanner-sim"], port = scanner, scanner.port
        elif not Path(port).exists():
            raise StationError(f"scanner: the trigger box {name!r} on {port} did not open: "
                               "no such port")
        triggers = SerialTriggerSource(port, character=device.character,
                                       baudrate=device.baudrate, clock=station.clock,
                                       counter=counter)
        where, kind = port, "trigger-box"
    progress = station.progress
    delivery = ScannerLockedDelivery(triggers, station.responses, settings.tr_s, station.clock,
                                     thermode=station.drivers.get("thermode"),
                                     cuff=station.drivers.get("cuff"), notify=progress)
    record_triggers(station.recording, triggers)  # after the delivery: it hears them first
    record_status(station.recording, triggers, "scanner")
    triggers.on_status(lambda k, message: progress(f"  scanner: {message}")
                       if k == "warning" else None)
    station.stack.callback(delivery.close)
    station.deliveries.append(delivery)
    station.drivers["scanner"] = triggers
    station.add_device(kind, name, f"scanner triggers{_suffix(scanner)}", port=where)

    def start() -> None:
        with _opening("scanner", f"the trigger source {name!r}", where):
            triggers.connect()
        station.stack.callback(triggers.disconnect)
        if scanner is not None:
            scanner.start()
        progress(f"scanner: TR {settings.tr_s:g} s, {settings.dummy_volumes} dummies + "
                 f"{settings.volumes} volumes; waiting for the scanner's triggers")

    station.before_start.append(start)


def _answers(station: Station, role: str) -> None:
    answers = station.options["examiner"]
    if role == "examiner":
        station.deliveries.insert(0, ExaminerDelivery(answers))  # CONFIRM: the operator's
    else:
        station.deliveries.append(OperatorDelivery(answers))
    station.add_device(role, role, f"the {role} at the console")


def _inlets(station: Station) -> None:
    """The configured ``lsl-inlet`` entries (all, or those in ``options["lsl_inlets"]``)."""
    entries = {n: d for n, d in station.config.devices.items() if isinstance(d, LslInletConfig)}
    wanted = station.options.get("lsl_inlets")
    names = list(entries) if wanted is None else list(wanted)
    for name in names:
        if name not in entries:
            raise StationError(f"lsl: no lsl-inlet entry named {name!r} in the station "
                               f"configuration {DOCS}")
        inlet = LslInletRecorder.from_config(station.recording, name, entries[name])
        with _opening("lsl", f"the LSL stream {name!r}", f"{inlet.query[0]} "
                                                          f"{inlet.query[1]!r}"):
            inlet.connect()
        station.stack.callback(inlet.disconnect)
        record_status(station.recording, inlet, name)
        station.add_device("lsl-inlet", name, inlet.where, port=inlet.where)
    if station.options.get("publish_lsl", "scanner" in station.protocol.roles):
        station.recording.subscribe(LslPublisher(station=station.config.station.name))


BUILDERS: dict[str, Callable[[Station, str, Any], None]] = {
    "thermode": _thermode, "algometer": _algometer, "cuff": _cuff, "scanner": _scanner}
