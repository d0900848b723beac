"""Simulated stations for the roles ``algometer``, ``cuff`` and ``operator``.

Each builder serves a simulated device on a pty, opens it with its real driver, records its
stream and status, and connects the simulated participant (``sim/pressure_perceiver.py``):
the algometer is pushed by a simulated examiner and felt by the participant, who answers on
the button box; the cuff's VAS and button follow the participant model's ``[cuff]``
pressures; the operator's confirmations (cold water, tonic heat) are automatic. The roles
share one :class:`PressureDelivery` and one :class:`PressurePerceiver` per station.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from drivers.algometer import AlgometerDriver
from drivers.cuff import CuffDriver
from qst_station.deliver_pressure import ConfirmDelivery, PressureCapabilities, PressureDelivery
from qst_station.recorders import record_pressure, record_status
from qst_station.recording import Channel, Recording, StreamSpec
from sim.algometer import SimulatedAlgometer
from sim.cuff import SimulatedCuff
from sim.pressure_perceiver import AlgometerExaminer, ModelCuffParticipant, PressurePerceiver

if TYPE_CHECKING:
    from qst_station.simulated_run import SimStation

ALGOMETER_RATE_HZ = 50
CUFF_CHANNELS = (Channel("p1", "kPa"), Channel("target1", "kPa"), Channel("p2", "kPa"),
                 Channel("target2", "kPa"), Channel("vas", "cm"), Channel("button", "1"))


def record_cuff(recording: Recording, cuff: Any, source: str, name: str = "cuff"
                ) -> Callable[[], None]:
    """Both outlets' pressure and target, the VAS and the button of a cuff stimulator."""
    recording.add_stream(StreamSpec(name, CUFF_CHANNELS, 20.0, source, publish=True,
                                    lsl_type="Pressure"))
    return cuff.subscribe(lambda s: recording.push(name, [s.timestamp], [s.all]))


def _delivery(station: SimStation) -> PressureDelivery:
    found = next((d for d in station.deliveries if isinstance(d, PressureDelivery)), None)
    if found is None:
        found = PressureDelivery([station.buttons])
        station.deliveries.append(found)
    return found


def _perceiver(station: SimStation) -> PressurePerceiver:
    found = next((getattr(f, "__self__", None) for f in station.listeners
                  if isinstance(getattr(f, "__self__", None), PressurePerceiver)), None)
    if found is None:
        found = PressurePerceiver(station.participant, station.button_sim,
                                  station.clock).start()
        station.stack.callback(found.stop)
        station.listeners.append(found.instruct)
    return found


def build_algometer(station: SimStation) -> None:
    """A simulated Wagner FDIX gauge, pushed by a simulated examiner, felt by the participant."""
    clock = station.clock
    gauge = station.stack.enter_context(SimulatedAlgometer(clock, seed=station.seed))
    driver = AlgometerDriver(gauge.port, clock=clock, rate_hz=ALGOMETER_RATE_HZ)
    driver.connect()
    station.stack.callback(driver.disconnect)
    source = "Wagner FDIX (simulated)"
    record_pressure(station.recording, driver, source, rate_hz=ALGOMETER_RATE_HZ)
    record_status(station.recording, driver, "algometer")
    _delivery(station).attach_algometer(driver)
    _perceiver(station).algometer = gauge
    station.listeners.append(AlgometerExaminer(gauge, station.seed).instruct)
    device = gauge.device
    full_scale_kpa = device.full_scale_n / (device.area * 1e-4) / 1000.0
    station.capabilities["algometer"] = PressureCapabilities(source, full_scale_kpa)
    station.devices.append({"kind": "wagner-fdix", "identity": source, "firmware": "",
                            "port": gauge.port})


def build_cuff(station: SimStation) -> None:
    """A simulated two-outlet cuff stimulator (OCP/1); its VAS follows the model's ``[cuff]``."""
    clock = station.clock
    sim = station.stack.enter_context(SimulatedCuff(clock, seed=station.seed))
    with sim.lock:
        sim.device.participant = ModelCuffParticipant(np.random.default_rng([station.seed, 1]),
                                                      station.participant.model.cuff)
    cuff = CuffDriver(sim.port, clock=clock, stop_mode="vas")
    info = cuff.connect()
    station.stack.callback(cuff.disconnect)
    source = f"{info.model} {info.firmware} (simulated)"
    record_cuff(station.recording, cuff, source)
    record_status(station.recording, cuff, "cuff")
    _delivery(station).attach_cuff(cuff)
    _perceiver(station).cuff = sim
    station.drivers.update({"cuff": cuff, "cuff-sim": sim})
    station.capabilities["cuff"] = PressureCapabilities(source, cuff.limit, (1, 2), 100.0)
    station.devices.append({"kind": "ocp1-cuff", "identity": info.model,
                            "firmware": info.firmware, "port": sim.port})


def build_operator(station: SimStation) -> None:
    """Operator-confirmed steps, confirmed automatically; the participant follows them."""
    station.deliveries.append(ConfirmDelivery(auto_s=1.0))
    _perceiver(station)


PRESSURE_BUILDERS: dict[str, Callable[[SimStation], None]] = {
    "algometer": build_algometer, "cuff": build_cuff, "operator": build_operator}
