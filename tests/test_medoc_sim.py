"""The simulated Medoc MMS on its own: states, pre-test, thermode physics, byte orders."""

from __future__ import annotations

import struct

import pytest

from drivers import medoc_wire as wire
from drivers.medoc_wire import Command, ReturnCode, Status, SystemState, TestState
from qst_station.clock import SimulatedClock
from sim.medoc_device import MedocDevice, Program
from sim.medoc_server import SimulatedMedoc
from tests import medoc_support as support

# the shared fixtures (here, so they win over conftest's TCS `sim` and `driver`)
mclock = support.mclock

# ---------------------------------------------------------------------- the simulated device


def _run(device: MedocDevice, start: float, end: float, dt: float = 0.01) -> float:
    t = start
    while t < end:
        t = round(t + dt, 6)
        device.step(t)
    return t


def _ask(device: MedocDevice, command: Command, now: float, parameter: int | None = None,
         big: bool = False) -> Status | None:
    raw = device.receive(wire.encode_request(command, parameter, timestamp=5,
                                             big_endian_length=big), now)
    return wire.decode_response(raw) if raw else None


def test_sim_pretest_loses_trigger_then_runs_the_program() -> None:
    device = MedocDevice(seed=1)
    assert _ask(device, Command.SELECT_TP, 0.0, 1).test_state == TestState.READY
    started = _ask(device, Command.START, 0.0)
    assert (started.system_state, started.test_state) == (SystemState.TEST, TestState.READY)
    assert _ask(device, Command.TRIGGER, 0.5).return_code == ReturnCode.OK  # acknowledged...
    assert device.lost_triggers == 1 and device.stimuli_started == 0  # ...and lost
    t = _run(device, 0.5, 1.6)
    assert _ask(device, Command.GET_STATUS, t).test_state == TestState.RUNNING
    _ask(device, Command.TRIGGER, t)
    assert device.stimuli_started == 1
    t = _run(device, t, t + 5.5)  # 4 s ramp to 40 °C, then into the 3 s hold
    status = _ask(device, Command.GET_STATUS, t)
    assert status.temperature_c == pytest.approx(40.0, abs=0.2)
    assert status.test_time_ms >= 5000
    t = _run(device, t, t + 6.0)  # rest of the hold, 4 s back to 32 °C
    status = _ask(device, Command.GET_STATUS, t)
    assert (status.system_state, status.test_state) == (SystemState.READY, TestState.IDLE)
    assert status.temperature_c == pytest.approx(32.0, abs=0.2)


@pytest.mark.parametrize(("thermode", "heating"), [("ATS", 8.0), ("CHEPS", 70.0)])
def test_sim_thermode_rates(thermode: str, heating: float) -> None:
    device = MedocDevice(thermode, programs={
        1: Program("fast", target=50.0, rise=100.0, ret=100.0, hold_s=0.0,
                   wait_for_trigger=False)}, pretest_s=0.0)
    _ask(device, Command.SELECT_TP, 0.0, 1)
    _ask(device, Command.START, 0.0)
    device.step(0.001)  # pre-test over: the stimulus begins
    _run(device, 0.001, 0.101, dt=0.001)  # 0.101 s of heating, at the thermode's fastest
    assert (device.setpoint - 32.0) / 0.101 == pytest.approx(heating, rel=0.01)
    assert device.temperature < device.setpoint  # the surface lags behind


def test_sim_answers_both_byte_orders_echoing_the_timestamp() -> None:
    device = MedocDevice()
    raw = struct.pack(">I", 5) + struct.pack(">I", 1_700_000_000) + bytes([Command.GET_STATUS])
    answer = device.receive(raw, 0.0)
    assert answer[4:8] == struct.pack(">I", 1_700_000_000)  # the bytes as they came
    assert wire.decode_response(answer).system_state == SystemState.READY
    assert device.log[-1].big_endian_length


def test_sim_is_deterministic_for_a_seed() -> None:
    def answers(seed: int) -> list[bytes]:
        device = MedocDevice(seed=seed)
        return [device.receive(wire.encode_request(Command.GET_STATUS, timestamp=0), t / 10)
                for t in range(20)]

    assert answers(3) == answers(3)
    assert answers(3) != answers(4)


def test_sim_safe_mode_answers_only_get_status() -> None:
    device = MedocDevice()
    device.fault("safety_error", "probe fault", safe_mode=True)
    first = _ask(device, Command.GET_STATUS, 0.0)
    assert first.return_code == ReturnCode.SAFETY_ERROR and first.message == "probe fault"
    assert first.system_state == SystemState.IDLE
    assert _ask(device, Command.SELECT_TP, 0.1, 1) is None
    assert device.unanswered == 1
    assert "Safe mode" in _ask(device, Command.GET_STATUS, 0.2).message
    device.self_test()
    assert _ask(device, Command.SELECT_TP, 0.3, 1).ok


def test_server_listens_on_loopback_only(mclock: SimulatedClock) -> None:
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        SimulatedMedoc(mclock, host="0.0.0.0")

