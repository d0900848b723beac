"""Wagner-style force gauge: wire format, exact unit conversion, driver vs simulator."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import algometer_wire as wire
from drivers.algometer import AlgometerDriver, PressureSample
from drivers.errors import DeviceSilent, WireError
from qst_station.clock import SimulatedClock
from sim.algometer import SimulatedAlgometer
from tests.helpers import wait_for


def test_commands_byte_exact() -> None:
    assert wire.encode_rate(0.5) == b"C.5\r"
    assert wire.encode_rate(10) == b"C10\r"
    assert wire.encode_rate(100) == b"C100\r"
    assert [wire.encode(c) for c in ("CA", "CX", "CB", "CE", "?")] == [
        b"CA\r", b"CX\r", b"CB\r", b"CE\r", b"?\r"]
    with pytest.raises(WireError):
        wire.encode_rate(7)
    with pytest.raises(WireError):
        wire.encode("CZ")


def test_reading_from_the_reference_and_exact_units() -> None:
    reading = wire.decode_reading(b"- 23.02 lbf")
    assert reading == wire.Reading(-23.02, "lbf")
    one_lbf = wire.Reading(1.0, "lbf")
    assert one_lbf.kpa() == pytest.approx(44.482216152605, rel=1e-12)  # on 1 cm²
    assert wire.Reading(1.0, "kgf").kpa() == pytest.approx(98.0665, rel=1e-12)
    assert wire.Reading(1.0, "N").kpa() == pytest.approx(10.0, rel=1e-12)
    assert wire.Reading(1.0, "N").kpa(probe_area_cm2=0.5) == pytest.approx(20.0)
    assert wire.encode_reading(wire.Reading(12.5, "N")) == b"+ 12.50 N\r\n"
    for bad in (b"23.02 lbf", b"+ 1.0 psi", b"+ abc N", b""):
        with pytest.raises(WireError):
            wire.decode_reading(bad)


@given(st.binary(max_size=200))
def test_garbage_never_crashes_the_splitter_or_decoder(data: bytes) -> None:
    for line in wire.LineSplitter().feed(data):
        assert len(line) <= wire.MAX_LINE + 1
        try:
            reading = wire.decode_reading(line)
        except WireError:
            continue
        assert math.isfinite(reading.value) and abs(reading.value) < 1e6
        assert reading.unit in wire.NEWTONS_PER_UNIT


def test_simulator_command_decoding() -> None:
    assert wire.decode_command(b"C.5") == ("rate", 0.5)
    assert wire.decode_command(b"C?") == ("?", None)
    assert wire.decode_command(b"CB") == ("CB", None)
    assert wire.decode_command(b"C7") is None
    assert wire.decode_command(b"XYZ") is None


def test_driver_streams_a_hand_ramp_in_kpa() -> None:
    clock = SimulatedClock(speed=5.0)
    with SimulatedAlgometer(clock, unit="lbf", seed=3) as sim:
        driver = AlgometerDriver(sim.port, clock=clock, rate_hz=20)
        samples: list[PressureSample] = []
        driver.subscribe(samples.append)
        driver.connect()
        try:
            assert sim.device.commands[:4] == ["CE", "rate", "CA", "CB"]
            assert sim.device.rate_hz == 20
            start = clock.now()
            sim.press(50.0)
            assert wait_for(lambda: clock.now() - start > 4.0, clock, 5.0)
            rising = [s for s in samples if s.timestamp > start + 0.5]
            assert len(rising) > 40
            slope = (rising[-1].kpa - rising[0].kpa) / (rising[-1].timestamp - rising[0].timestamp)
            assert slope == pytest.approx(50.0, rel=0.25)  # a hand is not a motor
            assert rising[-1].newtons == pytest.approx(rising[-1].kpa / 10.0, rel=1e-3)
            stamps = [s.timestamp for s in samples]
            assert stamps == sorted(stamps)
            sim.release()
            assert wait_for(lambda: abs(samples[-1].kpa) < 1.0, clock, 2.0)
            offset = driver.tare()
            assert abs(offset) < 1.0
        finally:
            driver.disconnect()
        assert wait_for(lambda: sim.device.commands[-1] == "CE", clock, 2.0)


def test_stream_is_rearmed_after_a_power_cycle() -> None:
    clock = SimulatedClock(speed=5.0)
    with SimulatedAlgometer(clock, seed=1) as sim:
        driver = AlgometerDriver(sim.port, clock=clock, rate_hz=10)
        warnings: list[str] = []
        driver.on_status(lambda kind, msg: warnings.append(msg) if kind == "warning" else None)
        samples: list[PressureSample] = []
        driver.subscribe(samples.append)
        driver.connect()
        try:
            sim.power_cycle()
            assert wait_for(lambda: driver.rearms >= 1, clock, 10.0)
            count = len(samples)
            assert wait_for(lambda: len(samples) > count + 5, clock, 3.0)
            assert wait_for(lambda: any("re-armed" in w for w in warnings), clock, 2.0)
        finally:
            driver.disconnect()


def test_a_silent_gauge_is_a_clear_error() -> None:
    clock = SimulatedClock(speed=5.0)
    with SimulatedAlgometer(clock) as sim:
        sim.pty.stall(5.0)
        driver = AlgometerDriver(sim.port, clock=clock, first_reading_timeout_s=0.3)
        with pytest.raises(DeviceSilent, match="no reading from the gauge"):
            driver.connect()
        assert not driver.connected


def test_bad_lines_are_reported_and_skipped() -> None:
    clock = SimulatedClock(speed=5.0)
    with SimulatedAlgometer(clock) as sim:
        driver = AlgometerDriver(sim.port, clock=clock)
        warnings: list[str] = []
        driver.on_status(lambda kind, msg: warnings.append(msg) if kind == "warning" else None)
        samples: list[PressureSample] = []
        driver.subscribe(samples.append)
        driver.connect()
        try:
            sim.pty.inject(b"+ 1.0 psi\r\n")
            count = len(samples)
            assert wait_for(lambda: driver.bad_lines == 1 and len(samples) > count, clock, 2.0)
            assert wait_for(lambda: any("not a gauge reading" in w for w in warnings), clock, 2.0)
        finally:
            driver.disconnect()
