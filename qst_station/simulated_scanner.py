"""The simulated scanner room for ``fmri-run`` protocols: scanner, trigger box, ECG on LSL.

The scanner sends one ``5`` per volume on a pty (TR, dummies and volumes from the paradigm;
``options["scanner"]`` adds jitter or dropped volumes) to the real trigger-box driver (or,
with ``options["triggers"] = "lsl"``, as LSL markers to the LSL trigger source); an
ECG with a known RR series goes out on LSL (this machine only) and comes back through an
LSL inlet into the session, its true RR series written next to the session file. The
run's markers go out on LSL too. With ``start = "device-trigger"`` the scanner's pulse also
reaches the simulated TCS II's trigger input (the TTL cable).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from drivers.lsl_triggers import LslScannerOutlet, LslTriggerSource
from drivers.trigger_box import SerialTriggerSource
from drivers.volumes import VolumeCounter
from qst_station.deliver_scanner import ScannerLockedDelivery
from qst_station.lsl_inlets import LslInletRecorder
from qst_station.lsl_outlets import LslPublisher
from qst_station.recorders import record_status, record_triggers
from sim.ecg import EcgSimulator
from sim.scanner import SimulatedScanner

if TYPE_CHECKING:
    from qst_station.simulated_run import SimStation

START_DELAY_S = 4.0  # from the start of the recording to the first trigger
ECG_RATE_HZ = 500.0


class _TtlCable:
    """The scanner's trigger pulse into the thermode's trigger input."""

    def __init__(self, tcs_sim: Any) -> None:
        self.tcs_sim = tcs_sim

    def push(self, now: float) -> None:  # noqa: ARG002 - the scanner's LSL-outlet hook
        self.tcs_sim.external_trigger()


class _Fanout:
    """Each volume to several of the scanner's outputs (LSL markers, the TTL cable)."""

    def __init__(self, outputs: list[Any]) -> None:
        self.outputs = outputs

    def push(self, now: float) -> None:
        for output in self.outputs:
            output.push(now)


def _trigger_source(station: SimStation, scanner: SimulatedScanner, settings: Any,
                    outputs: list[Any]) -> Any:
    """The trigger box on the scanner's pty, or (``options["triggers"] == "lsl"``) the
    scanner's LSL marker stream."""
    counter = VolumeCounter(settings.tr_s, settings.dummy_volumes)
    if station.options.get("triggers", "serial") == "lsl":
        name = f"qst-sim-scanner-{uuid.uuid4().hex[:8]}"
        outputs.append(LslScannerOutlet(name))
        return LslTriggerSource(name, counter=counter)
    return SerialTriggerSource(scanner.port, character=b"5", clock=station.clock,
                               counter=counter)


def build_scanner(station: SimStation) -> None:
    settings = station.protocol.scanner_settings()
    clock, stack = station.clock, station.stack
    options = dict(station.options.get("scanner", {}))
    options.setdefault("start_delay_s", START_DELAY_S)
    scanner = SimulatedScanner(settings.tr_s, volumes=settings.dummy_volumes + settings.volumes,
                               clock=clock, seed=station.seed, **options)
    stack.callback(scanner.stop)
    outputs: list[Any] = []
    if settings.start == "device-trigger":
        if "thermode-sim" not in station.drivers:
            raise ValueError("start = device-trigger needs the simulated thermode")
        outputs.append(_TtlCable(station.drivers["thermode-sim"]))
    triggers = _trigger_source(station, scanner, settings, outputs)
    scanner.lsl = _Fanout(outputs) if outputs else None
    progress = station.options.get("progress", lambda line: None)
    delivery = ScannerLockedDelivery(triggers, [station.scale], settings.tr_s, clock,
                                     thermode=station.drivers.get("thermode"),
                                     cuff=station.drivers.get("cuff"), notify=progress)
    record_triggers(station.recording, triggers)  # after the delivery: it hears them first
    record_status(station.recording, triggers, "scanner")
    triggers.on_status(lambda kind, message: progress(f"  scanner: {message}")
                       if kind == "warning" else None)
    stack.callback(delivery.close)
    station.deliveries.append(delivery)
    station.devices.append({"kind": "trigger-box", "identity": "simulated scanner",
                            "port": scanner.port})
    station.recording.subscribe(LslPublisher(station="qst-station-sim"))
    for listener in station.listeners:  # the participant at the cuff rates the blocks
        if hasattr(getattr(listener, "__self__", None), "_rate_block"):
            listener.__self__.scale = station.scale
    if station.options.get("ecg", True):
        _ecg(station)

    def start() -> None:
        triggers.connect()
        stack.callback(triggers.disconnect)
        scanner.start()
        progress(f"scanner: TR {settings.tr_s:g} s, {settings.dummy_volumes} dummies + "
                 f"{settings.volumes} volumes, first trigger in {options['start_delay_s']:g} s")

    station.before_start.append(start)


def _ecg(station: SimStation) -> None:
    """A simulated ECG on LSL, recorded back through an inlet; its truth beside the file."""
    name = f"qst-sim-ECG-{uuid.uuid4().hex[:8]}"
    truth = None
    if station.path is not None:
        truth = station.path.with_name(station.path.stem + "_rr-truth.tsv")
    ecg = EcgSimulator(ECG_RATE_HZ, seed=station.seed, clock=station.clock, name=name,
                       truth_path=truth)
    station.stack.callback(ecg.close)
    inlet = LslInletRecorder(station.recording, name, name="ecg", resolve_timeout_s=5.0)
    ecg.start()
    inlet.connect()
    station.stack.callback(inlet.disconnect)
    record_status(station.recording, inlet, "ecg")
    station.devices.append({"kind": "lsl-inlet", "stream": name})


SCANNER_BUILDERS = {"scanner": build_scanner}
