"""Byte-exact TCS II driver tests: every (write, reply) pair from the reference, in order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from drivers.errors import DeviceFault, LimitError
from drivers.tcs import TcsDriver
from drivers.thermal_safety import ThermalLimits
from sim.tcs_device import HELP_LINES
from tests.scripted import ScriptedTransport

OTHER_ZONES = b"".join(b"\r%d C320 V0100 R0100 D00100" % z for z in range(2, 6))
HELP = b"".join(b"\r" + line.encode() for line in HELP_LINES)
CONNECT = [
    (b"A", b""),
    (b"?", b"\rTCS"),
    (b"A", b""),
    (b"Osd", b""),
    (b"C0320", b""),
    (b"N320", b""),
    (b"V00100", b""),
    (b"R00100", b""),
    (b"D000100", b""),
    (b"S00000", b""),
    (b"Ue00000", b""),
    (b"Om600", b""),
    (b"Oa", b""),
    (b"Ob", b""),
    (b"H", HELP),
]


@pytest.fixture
def script() -> ScriptedTransport:
    return ScriptedTransport(CONNECT)


@pytest.fixture
def tcs(script: ScriptedTransport) -> Iterator[TcsDriver]:
    driver = TcsDriver(
        "scripted",
        limits=ThermalLimits(max_celsius=60.0),
        quiet_s=0.02,
        transport_factory=lambda port: script,
    )
    driver.connect()
    yield driver
    script.expect([(b"A", b"")])
    driver.disconnect()
    script.assert_done()


def test_connect_identifies_and_programs_a_safe_state(tcs: TcsDriver) -> None:
    assert tcs.info is not None
    assert tcs.info.firmware == "2.4-sim"
    assert tcs.info.probe_id == "SIM-0001"
    assert tcs.info.probe_type == "T03 5 zones"
    assert tcs.settings.max_temperature == 60.0


def test_stimulation_settings(tcs: TcsDriver, script: ScriptedTransport) -> None:
    script.expect([
        (b"N315", b""),
        (b"S10101", b""),
        (b"V10500", b""),  # the manual's example: zone 1 rate 50.0 °C/s, every digit sent
        (b"R20025", b""),
        (b"C3455", b""),  # 45.5 °C, no float formatting leaks ("455.0")
        (b"D400500", b""),
        (b"T007050", b""),
        (b"Ot14550", b""),
        (b"Ov105000", b""),
        (b"Om500", b""),
    ])
    tcs.set_baseline(31.5)
    tcs.enable_zones([1, 3, 5])
    tcs.set_rise_rate(1, 50.0)
    tcs.set_return_rate(2, 2.5)
    tcs.set_target(3, 45.5)
    tcs.set_duration(4, 500)
    tcs.set_trigger(7, 50)
    tcs.set_target_fine(1, 45.5)
    tcs.set_rise_rate_fine(1, 50.0)
    tcs.set_max_temperature(50.0)


def test_manual_example_300ms_to_60c(tcs: TcsDriver, script: ScriptedTransport) -> None:
    """300 ms to 60 °C at 300 °C/s = 100 ms rise + 200 ms hold (duration excludes return)."""
    script.expect([
        (b"S10000", b""),
        (b"C1600", b""),
        (b"V13000", b""),
        (b"R13000", b""),
        (b"D100300", b""),
        (b"P", b"\rN320\rS10000\r1 C600 V3000 R3000 D00300" + OTHER_ZONES + b"\rOm600"),
        (b"L", b""),
        (b"A", b""),
    ])
    tcs.enable_zones([1])
    tcs.configure(1, target=60.0, rise=300.0, ret=300.0, duration_ms=300)
    assert tcs.stimulus(1).plateau_s(32.0) == pytest.approx(0.2067, abs=1e-3)
    tcs.start()
    tcs.abort()


def test_queries(tcs: TcsDriver, script: ScriptedTransport) -> None:
    script.expect([
        (b"E", b"\r320+320+321+319+320+320"),
        (b"K", b"\r00"),
        (b"K", b"\r10"),
        (b"K", b"\r01"),
        (b"K", b"\r11"),
        (b"B", b"\r087"),
        (b"Q", b"\r000000"),
        (b"G", b"\rN318"),
        (b"Xr", b"\r143005261126"),
        (b"Og", b"\r320+320+321+319+320+32010"),
        (b"P", b"\rN320\rS00000"),
    ])
    temps = tcs.temperatures()
    assert temps.neutral == 32.0
    assert temps.zones == (32.0, 32.1, 31.9, 32.0, 32.0)
    states = [tcs.buttons() for _ in range(4)]
    assert [(b.button1, b.button2) for b in states] == [
        (False, False), (True, False), (False, True), (True, True)]
    assert tcs.battery() == 87
    assert tcs.errors() == (0, 0, 0, 0, 0, 0)
    assert tcs.calibrate_neutral() == 31.8
    assert tcs.clock_time() == datetime(2026, 11, 26, 14, 30, 5)
    temps2, buttons = tcs.temperatures_and_buttons()
    assert temps2.zones[1] == 32.1 and buttons.button1 and not buttons.button2
    assert tcs.parameters() == ["N320", "S00000"]


def test_device_commands(tcs: TcsDriver, script: ScriptedTransport) -> None:
    script.expect([
        (b"Oe", b""),
        (b"E", b"\r3205+3201+3210+3190+3200+3200"),
        (b"Ose", b""),
        (b"Osd", b""),
        (b"F", b""),
        (b"Oa", b""),
        (b"Oo", b""),
        (b"Of2", b""),
        (b"Z100440", b""),
    ])
    tcs.set_fine_resolution()
    assert tcs.temperatures().all == (32.05, 32.01, 32.1, 31.9, 32.0, 32.0)
    tcs.set_trigger_input(True)
    tcs.set_trigger_input(False)
    tcs.set_streaming(idle=True, stimulation=False)
    with pytest.raises(LimitError, match="needs the 100 Hz stream"):
        tcs.set_trigger_input(True)
    tcs.send_trigger()
    tcs.set_mri_filter(2)
    tcs.beep(100, 440)


def test_profile_upload_and_readback(tcs: TcsDriver, script: ScriptedTransport) -> None:
    script.expect([
        (b"Uw10000003100400050400100320", b""),
        (b"Ue10000", b""),
        (b"Ur", b"\r10000003100400050400100320"),
        (b"Ue00000", b""),
    ])
    tcs.upload_profile([(1.0, 40.0), (0.5, 40.0), (1.0, 32.0)], zones=[1])
    zones, segments = tcs.read_profile()
    assert zones == (True, False, False, False, False)
    assert segments == ((1.0, 40.0), (0.5, 40.0), (1.0, 32.0))
    tcs.disable_profile()


def test_follow_mode_and_reset(tcs: TcsDriver, script: ScriptedTransport) -> None:
    script.expect([
        (b"S11111", b""),
        (b"D000010", b""),
        (b"C0380", b""),
        (b"Od", b""),
        (b"C0385", b""),
        (b"A", b""),
        (b"Oc", b""),
        *CONNECT[2:-1],
    ])
    tcs.follow(38.0)
    assert tcs.following
    tcs.follow(38.5)
    tcs.abort()
    assert not tcs.following
    tcs.reset()


def test_identity_check_refuses_other_devices() -> None:
    script = ScriptedTransport([(b"A", b""), (b"?", b"\rXYZ")])
    driver = TcsDriver("scripted", quiet_s=0.02, transport_factory=lambda port: script)
    with pytest.raises(DeviceFault, match="unexpected reply"):
        driver.connect()
    assert not driver.connected


def test_limit_refusal_writes_nothing(tcs: TcsDriver, script: ScriptedTransport) -> None:
    used = script.used
    with pytest.raises(LimitError, match="dose envelope"):
        tcs.configure(1, target=50.0, rise=10.0, ret=10.0, duration_ms=60000)
    with pytest.raises(LimitError, match="device range"):
        tcs.set_target(1, 70.0)
    with pytest.raises(LimitError, match="not a finite number"):
        tcs.set_target(1, float("nan"))
    with pytest.raises(LimitError, match="rise rate"):
        tcs.set_rise_rate(1, 400.0)
    assert script.used == used
