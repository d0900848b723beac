"""The driver's guards: busy and follow-mode rules, watchdogs, STOP generations,
settings verification, over-temperature, one-shot trigger input, robust threads."""

from __future__ import annotations

import threading

import pytest

from drivers import tcs_wire as wire
from drivers.errors import DeviceError, DeviceFault, LimitError
from drivers.tcs import TcsDriver, TemperatureSample
from drivers.thermal_safety import ThermalLimits
from qst_station.clock import Clock
from sim.tcs import SimulatedTcs
from tests.helpers import wait_for


def errors_of(driver: TcsDriver) -> list[str]:
    found: list[str] = []
    driver.on_status(lambda kind, msg: found.append(msg) if kind == "error" else None)
    return found


def test_no_restart_or_reprogramming_while_a_stimulus_runs(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.enable_zones([1])
    driver.configure(1, target=40.0, rise=20.0, ret=20.0, duration_ms=600)
    driver.start()
    assert driver.busy
    with pytest.raises(LimitError, match="running or returning"):
        driver.start()
    with pytest.raises(LimitError, match="running or returning"):
        driver.set_target(1, 45.0)
    with pytest.raises(LimitError, match="running or returning"):
        driver.follow(40.0)
    assert wait_for(lambda: [c.name for c in sim.device.log].count("start") == 1, clock, 1.0)
    driver.abort()
    assert driver.busy  # still returning to baseline
    assert wait_for(lambda: not driver.busy, clock, 2.0)
    driver.set_target(1, 41.0)


def test_follow_mode_refuses_zone_changes_and_watches_every_followed_zone(
    sim: SimulatedTcs, clock: Clock
) -> None:
    limits = ThermalLimits(follow_heartbeat_s=30.0)
    driver = TcsDriver(sim.port, limits=limits, clock=clock, quiet_s=0.05)
    errors = errors_of(driver)
    driver.connect()
    try:
        driver.enable_zones([1, 2])
        driver.follow(40.0)
        with pytest.raises(LimitError, match="not allowed in follow mode"):
            driver.enable_zones([2])
        with pytest.raises(LimitError, match="not allowed in follow mode"):
            driver.start()
        driver.set_target(1, 50.0)  # a setpoint change on one followed zone
        # 12 s allowed at 50 °C (return included): the watchdog must act on zone 1
        assert wait_for(lambda: bool(errors), clock, 15.0)
        assert "dose envelope used up at 50.0" in errors[0]
        assert not driver.following
    finally:
        driver.disconnect()


def test_follow_dose_carries_over_without_rest(sim: SimulatedTcs, clock: Clock) -> None:
    limits = ThermalLimits(max_celsius=55.0, follow_heartbeat_s=30.0,
                           envelope=((44.0, 3600.0), (50.0, 1.0), (60.0, 0.5)))
    driver = TcsDriver(sim.port, limits=limits, clock=clock, quiet_s=0.05)
    errors = errors_of(driver)
    driver.connect()
    try:
        driver.set_rise_rate(0, 100.0)
        driver.set_return_rate(0, 100.0)
        assert limits.max_hold_s(49.0) == pytest.approx(3.9, abs=0.1)
        for _ in range(3):
            driver.follow(49.0)
            clock.sleep(1.0)
            driver.abort()
            assert wait_for(lambda: not driver.busy, clock, 2.0)
        assert not errors
        driver.follow(49.0)  # less than 1 s of the 3.9 s is left
        assert wait_for(lambda: bool(errors), clock, 1.5)
        assert "dose envelope used up" in errors[0]
    finally:
        driver.disconnect()


def test_follow_refuses_a_setpoint_with_no_allowance(sim: SimulatedTcs, clock: Clock) -> None:
    limits = ThermalLimits(envelope=((44.0, 3600.0), (46.0, 60.0), (46.1, 1e-9)),
                           max_celsius=50.0)
    driver = TcsDriver(sim.port, limits=limits, clock=clock, quiet_s=0.05)
    driver.connect()
    try:
        with pytest.raises(LimitError, match="allows no time"):
            driver.follow(47.0)
    finally:
        driver.disconnect()


def test_a_stop_between_click_and_start_cancels_the_start(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.enable_zones([1])
    driver.configure(1, target=36.0, rise=20.0, ret=20.0, duration_ms=300)
    generation = driver.generation
    driver.abort()
    assert wait_for(lambda: not driver.busy, clock, 2.0)
    with pytest.raises(DeviceError, match="STOP was requested"):
        driver.start(generation=generation)
    assert "start" not in [c.name for c in sim.device.log]


def test_abort_does_not_wait_for_a_pending_reply(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    sim.stall(0.8)
    query_done = threading.Event()

    def query() -> None:
        with pytest.raises(DeviceError):
            driver.temperatures()
        query_done.set()

    thread = threading.Thread(target=query)
    thread.start()
    clock.sleep(0.05)
    driver.abort()
    assert not query_done.is_set()  # abort returned while the query still waited
    thread.join(timeout=3.0)
    assert query_done.is_set()


def test_subscriber_errors_do_not_stop_the_driver(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    good: list[TemperatureSample] = []

    def bad_sample(sample: TemperatureSample) -> None:
        raise RuntimeError("subscriber bug")

    def bad_status(kind: str, message: str) -> None:
        raise RuntimeError("status bug")

    driver.subscribe(bad_sample)
    driver.subscribe(good.append)
    driver.on_status(bad_status)
    errors = errors_of(driver)
    driver.enable_zones([1])
    driver.configure(1, target=35.0, rise=30.0, ret=30.0, duration_ms=200)
    driver.start()
    assert wait_for(lambda: len(good) > 10, clock, 2.0)
    sim.stall(1.2)  # the monitor still guards: silence is reported
    assert wait_for(lambda: bool(errors), clock, 3.0)
    clock.sleep(1.3)  # the stall is over
    assert driver.temperatures().zones[0] > 30.0


def test_settings_are_verified_before_start(sim: SimulatedTcs, driver: TcsDriver) -> None:
    driver.enable_zones([1])
    driver.configure(1, target=40.0, rise=20.0, ret=20.0, duration_ms=500)
    # a character lost on the wire: the device kept another duration
    sim.device.receive(wire.encode("duration", 1, 99999), 0.0)
    with pytest.raises(DeviceFault, match="zone 1 duration 99999 ms"):
        driver.start()
    assert "start" not in [c.name for c in sim.device.log]


def test_over_temperature_in_the_stream_aborts(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    errors = errors_of(driver)
    before = len(sim.device.log)
    sim.inject(wire.encode_stream_line([32.0, 55.0, 32.0, 32.0, 32.0, 32.0]))
    assert wait_for(lambda: bool(errors), clock, 1.0)
    assert "measured 55.0 °C is outside the limits 0-50" in errors[0]
    assert wait_for(lambda: "abort" in [c.name for c in sim.device.log[before:]], clock, 1.0)


def test_trigger_input_starts_once_per_arming(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.enable_zones([1])
    driver.configure(1, target=35.0, rise=50.0, ret=50.0, duration_ms=200)
    driver.set_trigger_input(True)
    assert wait_for(lambda: sim.device.settings.trigger_input, clock, 0.5)
    sim.external_trigger()
    assert wait_for(lambda: not sim.device.settings.trigger_input, clock, 1.0)  # disarmed
    assert driver.busy
    assert wait_for(lambda: sim.device.idle and not driver.busy, clock, 3.0)
    sim.external_trigger()  # a later scanner pulse
    assert sim.device.idle


def test_abort_disarms_the_trigger_input(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    """STOP while armed: a later scanner pulse must not start the programmed stimulus."""
    driver.enable_zones([1])
    driver.configure(1, target=35.0, rise=50.0, ret=50.0, duration_ms=200)
    driver.set_trigger_input(True)
    assert wait_for(lambda: sim.device.settings.trigger_input, clock, 0.5)
    driver.abort()
    assert wait_for(lambda: not sim.device.settings.trigger_input, clock, 1.0)
    assert not driver._settings.trigger_input  # the driver knows it is off
    sim.external_trigger()  # the scanner goes on
    assert not wait_for(lambda: not sim.device.idle, clock, 0.3)


def test_limits_rounding_never_rounds_up() -> None:
    limits = ThermalLimits(max_celsius=49.95)
    sim_clock = None
    with SimulatedTcs() as sim:
        driver = TcsDriver(sim.port, limits=limits, clock=sim_clock, quiet_s=0.05)
        driver.connect()
        try:
            assert driver.settings.max_temperature == 49.9
        finally:
            driver.disconnect()
    with pytest.raises(LimitError, match="cannot be held indefinitely"):
        TcsDriver("unused", baseline=43.95)  # would be sent as 44.0 °C


def test_a_bug_in_the_monitor_aborts_and_the_monitor_keeps_guarding(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors = errors_of(driver)
    calls = {"n": 0}
    original = driver._watch_stimulation

    def flaky(now: float) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ZeroDivisionError("bug")
        original(now)

    monkeypatch.setattr(driver, "_watch_stimulation", flaky)
    before = len(sim.device.log)
    assert wait_for(lambda: bool(errors), clock, 1.0)
    assert "internal error in the safety monitor" in errors[0]
    assert wait_for(lambda: "abort" in [c.name for c in sim.device.log[before:]], clock, 1.0)
    assert wait_for(lambda: calls["n"] > 10, clock, 1.0)  # still running


def test_too_cold_in_the_stream_aborts(
    sim: SimulatedTcs, clock: Clock
) -> None:
    driver = TcsDriver(sim.port, limits=ThermalLimits(min_celsius=10.0), clock=clock,
                       quiet_s=0.05)
    errors = errors_of(driver)
    driver.connect()
    try:
        sim.inject(wire.encode_stream_line([32.0, 32.0, 32.0, 8.5, 32.0, 32.0]))
        assert wait_for(lambda: bool(errors), clock, 1.0)
        assert "measured 8.5 °C is outside the limits 10-50" in errors[0]
    finally:
        driver.disconnect()


def test_tcs_is_a_thermal_stimulator_with_explicit_capabilities(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    from drivers.interfaces import CapabilityError, ThermalStimulator

    assert isinstance(driver, ThermalStimulator)
    caps = driver.capabilities
    caps.require(min_celsius=0.0, max_celsius=50.0, rise_rate=100.0, ramp_and_hold=True,
                 follow=True)
    with pytest.raises(CapabilityError, match=r"60 °C \(device maximum 50 °C\)"):
        caps.require(max_celsius=60.0, what="a 60 °C protocol")
    driver.prepare_ramp_and_hold(40.0, rise=20.0, ret=20.0, hold_s=0.5, zones=(2, 4))
    stim = driver.stimulus(2)
    assert stim.target == 40.0 and stim.plateau_s(driver.baseline) == pytest.approx(0.5)
    assert driver.settings.enabled == (False, True, False, True, False)
    driver.start()
    assert wait_for(lambda: sim.device.zones[3].temperature > 39.5, clock, 2.0)
