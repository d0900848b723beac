"""The Medoc driver's safety watch and connection faults, against the simulated MMS."""

from __future__ import annotations

import re

import pytest

from drivers.errors import DeviceSilent, NotConnected, PortLost
from drivers.medoc import MedocDriver, MedocSample, SafeModeError, TriggerRefused
from drivers.medoc_wire import Command, SystemState, TestState
from drivers.thermal_safety import ThermalLimits
from qst_station.clock import SimulatedClock
from sim.medoc_server import SimulatedMedoc
from tests import medoc_support as support
from tests.medoc_support import (
    Events,
    answers,
    commands,
    make_driver,
    make_sim,
    run_to_running,
    until,
)

# the shared fixtures (here, so they win over conftest's TCS `sim` and `driver`)
mclock, sim, driver, events, samples = (
    support.mclock, support.sim, support.driver, support.events, support.samples)
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

# ---------------------------------------------------------------------- safety


def test_safety_error_is_reported_and_leaves_the_session_safe(
        sim: SimulatedMedoc, driver: MedocDriver, events: Events,
        samples: list[MedocSample]) -> None:
    run_to_running(driver, 60)
    driver.trigger()
    until(lambda: bool(samples) and samples[-1].temperature > 35.0, "heating")
    sim.fault("safety_error", "thermode over temperature")
    message = events.wait_for("error", "SAFETY_ERROR")
    assert "thermode over temperature" in message and "GET_STATUS" in message
    until(lambda: not driver.busy, "the driver to see MMS idle")
    assert sim.device.system_state == SystemState.IDLE
    with pytest.raises(TriggerRefused, match="system IDLE"):
        driver.trigger()
    until(lambda: samples[-1].temperature < 33.0, "the thermode back near 32 °C")
    assert driver.connected


@pytest.mark.parametrize("stop_on_warning", [True, False])
def test_safety_warning_is_reported_and_stops_by_default(
        sim: SimulatedMedoc, mclock: SimulatedClock, events: Events,
        stop_on_warning: bool) -> None:
    driver = make_driver(sim, mclock, stop_on_safety_warning=stop_on_warning)
    driver.on_status(events)
    driver.connect()
    try:
        run_to_running(driver, 60)
        sim.fault("safety_warning", "temperature deviates")
        message = events.wait_for("warning", "SAFETY_WARNING")
        assert "temperature deviates" in message
        if stop_on_warning:
            assert "test aborted" in message
            assert sim.device.test_state == TestState.IDLE
        else:
            assert sim.device.test_state == TestState.RUNNING
            assert Command.ABORT not in commands(sim)
        assert "error" not in events.kinds()
    finally:
        driver.disconnect()


def test_safe_mode_is_recognised(sim: SimulatedMedoc, driver: MedocDriver,
                                 events: Events) -> None:
    run_to_running(driver, 60)
    sim.fault("safety_error", "probe disconnected", safe_mode=True)
    events.wait_for("error", "probe disconnected")
    assert "Safe mode" in driver.get_status().message  # GET_STATUS is still answered
    with pytest.raises(SafeModeError, match="answers GET_STATUS but not SELECT_TP.*Safe Mode"):
        driver.select_program(1)
    events.wait_for("error", "Safe Mode")
    sim.set_safe_mode(False)  # the operator runs the self-test
    assert driver.select_program(1).test_state == TestState.READY


def test_measured_temperature_beyond_the_limits_aborts(sim: SimulatedMedoc,
                                                       driver: MedocDriver,
                                                       events: Events) -> None:
    run_to_running(driver, 99)  # MMS's program goes to 53 °C; we allow 50 (+1 margin)
    driver.trigger()
    message = events.wait_for("error", "outside the limits")
    assert "test aborted" in message
    measured = float(re.search(r"measured (\d+\.\d\d) °C", message).group(1))
    assert 51.0 < measured <= 53.5  # the first reading beyond the limit and its margin
    assert sim.device.test_state == TestState.IDLE and Command.ABORT in commands(sim)
    until(lambda: sim.device.temperature < 50.0, "the thermode cooling after the abort")


def test_measured_dose_is_watched(sim: SimulatedMedoc, mclock: SimulatedClock,
                                  events: Events) -> None:
    strict = ThermalLimits(envelope=((36.0, 1.0), (60.0, 0.5)))  # about 1 s allowed at 38 °C
    driver = make_driver(sim, mclock, limits=strict)
    driver.on_status(events)
    driver.connect()
    try:
        run_to_running(driver, 60)
        driver.trigger()
        message = events.wait_for("error", "dose envelope")
        assert "test aborted" in message and driver.dose >= 1.0
        assert sim.device.test_state == TestState.IDLE
    finally:
        driver.disconnect()


def test_disconnect_aborts_a_running_test(sim: SimulatedMedoc, mclock: SimulatedClock) -> None:
    driver = make_driver(sim, mclock)
    events = Events()
    driver.on_status(events)
    driver.connect()
    run_to_running(driver, 60)
    driver.disconnect()
    assert sim.device.test_state == TestState.IDLE and commands(sim)[-1] == Command.ABORT
    events.wait_for("disconnected")
    with pytest.raises(NotConnected):
        driver.get_status()


# ---------------------------------------------------------------------- the connection


def test_lost_connection_is_reported_and_reconnect_works(
        sim: SimulatedMedoc, driver: MedocDriver, events: Events,
        samples: list[MedocSample]) -> None:
    sim.unplug()
    message = events.wait_for("lost", "connection lost")
    assert "reconnect" in message and not driver.connected
    with pytest.raises(NotConnected):
        driver.get_status()
    sim.plug_in()
    status = driver.reconnect()
    assert status.system_state == SystemState.READY and driver.connected
    count = len(samples)
    until(lambda: len(samples) > count + 3, "samples after the reconnect")
    assert events.kinds().count("lost") == 1 and "error" not in events.kinds()


def test_connect_to_nothing_fails_clearly(sim: SimulatedMedoc, mclock: SimulatedClock) -> None:
    sim.unplug()
    with pytest.raises(PortLost, match=f"MMS 127.0.0.1:{sim.port}: cannot connect"):
        make_driver(sim, mclock).connect()


def test_mms_closing_connections_is_transparent(sim: SimulatedMedoc, driver: MedocDriver,
                                                events: Events,
                                                samples: list[MedocSample]) -> None:
    before = sim.connections
    for _ in range(3):
        sim.drop_clients()
        assert driver.get_status().ok
    assert sim.connections >= before + 3
    count = len(samples)
    until(lambda: len(samples) > count + 3, "samples")
    assert not {"lost", "error"} & set(events.kinds())


def test_one_connection_per_command_mode(mclock: SimulatedClock, events: Events) -> None:
    with make_sim(mclock, close_after_response=True) as sim:
        driver = make_driver(sim, mclock)
        driver.on_status(events)
        samples: list[MedocSample] = []
        driver.subscribe(samples.append)
        driver.connect()
        try:
            run_to_running(driver, 61)
            driver.trigger()
            until(lambda: any(s.temperature > 38.5 for s in samples), "heating")
            assert sim.device.stimuli_started == 1
            assert sim.connections > 10
            assert not {"lost", "error", "warning"} & set(events.kinds())
        finally:
            driver.disconnect()


def test_stall_raises_device_silent_then_recovers(sim: SimulatedMedoc, driver: MedocDriver,
                                                  events: Events) -> None:
    sim.stall(1.0)
    with pytest.raises(DeviceSilent, match="no answer to GET_STATUS within 0.5 s"):
        driver.get_status()
    events.wait_for("error", "no answer")
    until(lambda: answers(driver), "answers after the stall")
    assert driver.connected


def test_stall_during_a_test_aborts_when_mms_answers_again(
        sim: SimulatedMedoc, driver: MedocDriver, events: Events) -> None:
    run_to_running(driver, 60)
    driver.trigger()
    sim.stall(1.5)
    message = events.wait_for("error", "temperatures are not being watched")
    assert "ABORT could not be sent" in message
    message = events.wait_for("warning", "MMS answers again")
    assert "test aborted" in message
    assert sim.device.test_state == TestState.IDLE


def test_garbage_is_reported_and_skipped(sim: SimulatedMedoc, driver: MedocDriver,
                                         events: Events) -> None:
    sim.inject(b"\xff" * 8)
    events.wait_for("warning", "unexpected bytes")
    until(lambda: answers(driver), "answers after the garbage")
    assert driver.connected and driver.garbage_bytes >= 8
    assert "lost" not in events.kinds()


def test_a_failing_subscriber_does_not_stop_the_stream(driver: MedocDriver,
                                                       samples: list[MedocSample]) -> None:
    driver.subscribe(lambda sample: 1 / 0)
    count = len(samples)
    until(lambda: len(samples) > count + 5, "samples despite a failing subscriber")

