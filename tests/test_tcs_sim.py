"""The TCS II driver against the simulator over a real pseudo-terminal."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.errors import DeviceError, LimitError
from drivers.tcs import TcsDriver, TemperatureSample
from drivers.thermal_safety import ThermalLimits
from drivers.transport import SerialTransport
from qst_station.clock import Clock, SimulatedClock
from sim.tcs import SimulatedTcs
from tests.helpers import wait_for


def test_stimulus_streams_and_returns(sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    samples: list[TemperatureSample] = []
    driver.subscribe(samples.append)
    driver.enable_zones([1, 3])
    driver.configure(1, target=40.0, rise=40.0, ret=40.0, duration_ms=400)
    driver.configure(3, target=25.0, rise=35.0, ret=35.0, duration_ms=400)
    start = clock.now()
    driver.start()
    assert wait_for(lambda: clock.now() - start > 0.8, clock, 2.0)
    during = [s for s in samples if start < s.timestamp < start + 0.45]
    assert len(during) >= 20  # 100 Hz during stimulation
    assert max(s.zones[0] for s in during) == pytest.approx(40.0, abs=0.2)
    assert min(s.zones[2] for s in during) == pytest.approx(25.0, abs=0.2)
    assert all(abs(s.zones[1] - 32.0) < 0.2 for s in during)  # zone 2 was not enabled
    stamps = [s.timestamp for s in samples]
    assert stamps == sorted(stamps)
    temps = driver.temperatures()
    assert temps.zones[0] == pytest.approx(32.0, abs=0.2)
    assert sim.device.idle


def test_abort_mid_plateau_returns_to_baseline(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.enable_zones([1, 2, 3, 4, 5])
    driver.configure(0, target=44.0, rise=100.0, ret=100.0, duration_ms=5000)
    driver.start()
    assert wait_for(lambda: driver.temperatures().zones[0] > 43.5, clock, 1.0)
    driver.abort()
    assert wait_for(lambda: sim.device.log[-1].name == "abort", clock, 0.5)
    assert wait_for(lambda: abs(driver.temperatures().zones[4] - 32.0) < 0.3, clock, 1.0)
    assert sim.device.idle


def test_buttons_and_battery(sim: SimulatedTcs, driver: TcsDriver) -> None:
    assert not driver.buttons().button1
    sim.press(True, False)
    assert driver.buttons().button1
    sim.press(True, True)
    temps, buttons = driver.temperatures_and_buttons()
    assert buttons.button2 and len(temps.zones) == 5
    assert driver.battery() == 87


def test_profile_runs_on_the_device(sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    samples: list[TemperatureSample] = []
    driver.subscribe(samples.append)
    driver.upload_profile([(0.2, 38.0), (0.2, 38.0), (0.2, 32.0)], zones=[2])
    zones, segments = driver.read_profile()
    assert zones == (False, True, False, False, False)
    assert segments == ((0.2, 38.0), (0.2, 38.0), (0.2, 32.0))
    start = clock.now()
    driver.start()
    assert wait_for(lambda: clock.now() - start > 0.9, clock, 2.0)
    peak = max(s.zones[1] for s in samples if s.timestamp > start)
    assert peak == pytest.approx(38.0, abs=0.3)
    assert sim.device.idle


def test_follow_mode_watchdog_stops_a_silent_program(
    sim: SimulatedTcs, clock: Clock
) -> None:
    limits = ThermalLimits(follow_heartbeat_s=0.3)
    driver = TcsDriver(sim.port, limits=limits, clock=clock, quiet_s=0.05)
    errors: list[str] = []
    driver.on_status(lambda kind, msg: errors.append(msg) if kind == "error" else None)
    driver.connect()
    try:
        driver.set_rise_rate(0, 100.0)
        driver.follow(36.0)
        assert wait_for(lambda: sim.device.zones[0].phase == "follow", clock, 0.5)
        driver.follow(37.0)  # setpoint updates feed the watchdog
        assert wait_for(lambda: sim.device.zones[0].temperature > 36.8, clock, 0.5)
        assert wait_for(lambda: bool(errors), clock, 2.0)
        assert "no setpoint update" in errors[0]
        assert not driver.following
        assert wait_for(lambda: sim.device.idle, clock, 1.0)
        with pytest.raises(LimitError, match="outside the configured limits"):
            driver.follow(55.0)
    finally:
        driver.disconnect()


def test_follow_mode_dose_watchdog_on_a_fast_clock() -> None:
    """52 °C may be held 8.3 s; the watchdog cuts follow mode there (10x clock)."""
    clock = SimulatedClock(speed=10.0)
    limits = ThermalLimits(max_celsius=55.0, follow_heartbeat_s=60.0)
    with SimulatedTcs(clock) as sim:
        driver = TcsDriver(sim.port, limits=limits, clock=clock, quiet_s=0.05)
        stopped = threading.Event()
        reasons: list[str] = []

        def on_status(kind: str, message: str) -> None:
            if kind == "error":
                reasons.append(message)
                stopped.set()

        driver.on_status(on_status)
        driver.connect()
        try:
            started = clock.now()
            driver.follow(52.0)
            assert stopped.wait(timeout=3.0)
            held = clock.now() - started
            assert "dose envelope used up at 52.0" in reasons[0]
            assert held == pytest.approx(limits.max_hold_s(52.0), abs=1.0)
            assert wait_for(lambda: sim.device.idle, clock, 5.0)
        finally:
            driver.disconnect()


def test_trigger_input_starts_the_stimulus(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.enable_zones([1])
    driver.configure(1, target=36.0, rise=50.0, ret=50.0, duration_ms=200)
    sim.external_trigger()
    assert sim.device.idle  # trigger input disabled: counted only
    driver.set_trigger_input(True)
    assert wait_for(lambda: sim.device.settings.trigger_input, clock, 0.5)
    sim.external_trigger()
    assert not sim.device.idle
    assert sim.device.triggers_received == 2
    driver.set_trigger_input(False)


def test_fine_resolution_and_stream_control(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.set_fine_resolution()
    temps = driver.temperatures()
    assert temps.zones[0] == pytest.approx(32.0, abs=0.1)
    samples: list[TemperatureSample] = []
    driver.subscribe(samples.append)
    driver.set_streaming(idle=False, stimulation=False)
    clock.sleep(0.05)
    samples.clear()
    driver.enable_zones([1])
    driver.configure(1, target=34.0, rise=20.0, ret=20.0, duration_ms=200)
    driver.start()
    clock.sleep(0.3)
    assert samples == []
    driver.set_streaming(idle=True, stimulation=True)
    with pytest.raises(LimitError, match="running or returning"):
        driver.start()
    assert wait_for(lambda: not driver.busy, clock, 2.0)
    driver.start()
    assert wait_for(lambda: len(samples) > 5, clock, 1.0)
    assert any(abs(round(s.zones[0] * 10) - s.zones[0] * 10) > 1e-6 for s in samples)


def test_device_limits_its_own_dose(sim: SimulatedTcs, clock: Clock) -> None:
    """The firmware caps the plateau (12 s at 50 °C) even if a program asks for more."""
    device = sim.device
    from drivers import tcs_wire as wire

    now = clock.now()
    for raw in (b"S10000", b"C1500", b"V19999", wire.encode("duration", 1, 60000), b"L"):
        device.receive(raw, now)
    assert device.zones[0].end_at - now == pytest.approx(12.0 + 18.0 / 999.9, abs=0.01)
    device.receive(b"A", now)


@pytest.fixture
def strict_sim_process(tmp_path: Path) -> Iterator[str]:
    """``qst-station sim tcs --strict-spacing`` in its own process, as from a terminal."""
    link = tmp_path / "tcs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qst_station.cli", "sim", "tcs", "--strict-spacing",
         "--link", str(link)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert "simulated TCS II on" in proc.stdout.readline()
        yield str(link)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


class BurstTransport(SerialTransport):
    """A naive driver's port: each command written at once, no spacing."""

    def write(self, data: bytes) -> None:
        self._serial.write(data)


def _zone2_target(driver: TcsDriver) -> str:
    return next(line for line in driver.parameters() if line.startswith("2 ")).split()[1]


def test_character_spacing_matters_to_a_strict_device(
    strict_sim_process: str, clock: Clock
) -> None:
    # 10 ms rather than the minimal 1 ms: the simulator judges arrival times, and a busy
    # CI machine may deschedule it for a few ms
    spaced = TcsDriver(strict_sim_process, clock=clock, quiet_s=0.05, char_delay_s=0.010)
    spaced.connect()
    try:
        spaced.enable_zones([2])
        spaced.configure(2, target=41.5, rise=12.5, ret=7.5, duration_ms=1500)
        assert _zone2_target(spaced) == "C415"
    finally:
        spaced.disconnect()
    hasty = TcsDriver(strict_sim_process, clock=clock, quiet_s=0.05,
                      transport_factory=BurstTransport)
    with pytest.raises(DeviceError):
        hasty.connect()
        hasty.configure(2, target=44.0, rise=12.5, ret=7.5, duration_ms=1500)
        if _zone2_target(hasty) != "C440":
            raise DeviceError("setting lost on the wire")
    hasty.disconnect()
