"""Fault tests: the TCS II driver against the simulator on a real pty, with injected faults.

Covered: the cable pulled mid-stimulus (then plugged back in), garbage bytes on the line,
a stalled device (while idle and during a stimulation), a zone that stops following its
setpoint (firmware abort + error code), and replies that do not match what was asked.
Every wait is bounded; an exception escaping a driver thread fails the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers import tcs_wire as wire
from drivers.errors import DeviceFault, DeviceSilent, NotConnected
from drivers.tcs import TcsDriver
from drivers.transport import SerialTransport, Transport
from qst_station.clock import Clock
from sim.tcs import SimulatedTcs
from sim.tcs_device import HELP_LINES

# An exception that kills the reader or monitor thread is a crash, not a warning.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

WAIT_S = 3.0


class StatusLog:
    """Collects ``on_status`` callbacks as (clock time, kind, message); waits are bounded."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[float, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, message: str) -> None:
        with self._cond:
            self.events.append((self.clock.now(), kind, message))
            self._cond.notify_all()

    def kinds(self) -> list[str]:
        with self._cond:
            return [kind for _, kind, _ in self.events]

    def wait_for(
        self, kind: str, contains: str = "", timeout: float = WAIT_S, after: int = 0
    ) -> tuple[float, str]:
        """The first (time, message) of ``kind`` containing ``contains``, from index ``after``."""

        def find() -> tuple[float, str] | None:
            for when, k, message in self.events[after:]:
                if k == kind and contains in message:
                    return when, message
            return None

        with self._cond:
            self._cond.wait_for(lambda: find() is not None, timeout)
            found = find()
            assert found is not None, (
                f"no {kind!r} status containing {contains!r} within {timeout} s; "
                f"got {self.events!r}"
            )
            return found


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    """Poll ``condition`` every 5 ms for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.005)


def names_since(sim: SimulatedTcs, index: int) -> list[str]:
    """Names of the commands the simulated device decoded from ``index`` on."""
    return [cmd.name for cmd in sim.device.log[index:]]


class RecordingTransport:
    """A real serial transport that also records every write with its monotonic time."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.writes: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append((time.monotonic(), bytes(data)))
        self.inner.write(data)

    def read(self) -> bytes:
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def linked_sim(clock: Clock, tmp_path: Path) -> Iterator[SimulatedTcs]:
    """A simulator behind a stable symlink, so the port path survives a re-plug."""
    with SimulatedTcs(clock, link=tmp_path / "tcs", seed=3) as simulator:
        yield simulator


@pytest.fixture
def linked_driver(linked_sim: SimulatedTcs, clock: Clock) -> Iterator[TcsDriver]:
    tcs = TcsDriver(linked_sim.port, clock=clock, quiet_s=0.05)
    tcs.connect()
    yield tcs
    tcs.disconnect()


# ---------------------------------------------------------------------- cable pulled


def test_disconnect_mid_stimulus_reports_lost_then_reconnect_aborts_first(
    linked_sim: SimulatedTcs, linked_driver: TcsDriver, clock: Clock
) -> None:
    sim, tcs = linked_sim, linked_driver
    status = StatusLog(clock)
    tcs.on_status(status)
    tcs.configure(1, target=45.0, rise=10.0, ret=10.0, duration_ms=3000)
    tcs.enable_zones([1])
    tcs.start()
    wait_until(lambda: sim.device.zones[0].phase == "ramp", what="zone 1 ramping")
    assert tcs.stimulating

    sim.disconnect()
    _, message = status.wait_for("lost")
    assert tcs.port in message and "connection lost" in message
    assert not tcs.connected
    assert not tcs.stimulating
    assert tcs.last_error == message
    with pytest.raises(NotConnected, match="not connected"):
        tcs.temperatures()
    with pytest.raises(NotConnected):
        tcs.abort()
    assert status.kinds().count("lost") == 1
    assert "error" not in status.kinds()

    sim.reattach()
    before = len(sim.device.log)  # the device model (and its log) survives the re-plug
    seen = len(status.events)
    info = tcs.reconnect()
    assert tcs.connected
    assert info.identity == "TCS"
    status.wait_for("connected", after=seen)
    after = names_since(sim, before)
    # Only the identity query may precede the abort: nothing that changes the device does.
    changes = [name for name in after if name != "identify"]
    assert changes[0] == "abort", f"first commands after re-plug: {after[:3]}"
    assert "start" not in after
    # The interrupted stimulus is not resumed: zone 1 heads back to baseline.
    assert sim.device.zones[0].phase in ("return", "idle")
    assert len(tcs.temperatures().zones) == wire.ZONES


# ---------------------------------------------------------------------- garbage


def test_garbage_bytes_are_reported_counted_and_skipped(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    status = StatusLog(clock)
    driver.on_status(status)
    counted = driver.garbage_bytes

    sim.inject(b"\x00\xffzz")  # outside any CR frame
    _, first = status.wait_for("warning", contains=r"\x00\xffzz")
    assert driver.port in first and "unexpected bytes" in first
    sim.inject(b"\rXYZ\r")  # a whole frame nobody asked for
    status.wait_for("warning", contains="XYZ")
    assert driver.garbage_bytes - counted == 7
    assert "error" not in status.kinds() and "lost" not in status.kinds()

    temps = driver.temperatures()
    truth = [zone.temperature for zone in sim.device.zones]
    for got, want in zip(temps.zones, truth, strict=True):
        assert got == pytest.approx(want, abs=0.2)
    assert temps.neutral == pytest.approx(sim.device.neutral, abs=0.2)
    assert driver.connected


def test_a_stale_partial_frame_is_not_taken_for_the_next_reply(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    driver.set_streaming(idle=False, stimulation=False)  # no stream line closes it first
    status = StatusLog(clock)
    driver.on_status(status)
    sim.inject(b"\rXY")
    temps = driver.temperatures()
    assert temps.zones[0] == pytest.approx(sim.device.zones[0].temperature, abs=0.2)
    status.wait_for("warning", contains="XY")


# ---------------------------------------------------------------------- stalls


def test_stall_makes_a_query_fail_silent_then_the_driver_recovers(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    status = StatusLog(clock)
    driver.on_status(status)
    stalled_at = time.monotonic()
    sim.stall(1.0)
    with pytest.raises(DeviceSilent) as caught:
        driver.temperatures()
    assert sim.port in str(caught.value)
    assert "'E'" in str(caught.value)
    assert driver.connected

    time.sleep(max(0.0, stalled_at + 1.05 - time.monotonic()))
    temps = driver.temperatures()
    assert temps.zones[0] == pytest.approx(sim.device.zones[0].temperature, abs=0.2)
    assert driver.identify() == "TCS"
    # 1 s of silence while idle is below silence_s (3 s): no alarm.
    assert "error" not in status.kinds()


@pytest.fixture
def recorded(sim: SimulatedTcs, clock: Clock) -> Iterator[tuple[TcsDriver, RecordingTransport]]:
    """A driver (default silence_s = 3 s) whose serial writes are recorded."""
    made: list[RecordingTransport] = []

    def factory(port: str) -> Transport:
        made.append(RecordingTransport(SerialTransport(port)))
        return made[-1]

    tcs = TcsDriver(sim.port, clock=clock, quiet_s=0.05, transport_factory=factory)
    tcs.connect()
    yield tcs, made[-1]
    tcs.disconnect()


def stall_mid_stimulus(
    sim: SimulatedTcs, tcs: TcsDriver, status: StatusLog, seconds: float
) -> float:
    """40 °C on zone 1 for 3 s; stall the device once it ramps; returns the stall time."""
    tcs.on_status(status)
    tcs.configure(1, target=40.0, rise=10.0, ret=10.0, duration_ms=3000)
    tcs.enable_zones([1])
    tcs.start()
    wait_until(lambda: sim.device.zones[0].phase == "ramp", what="zone 1 ramping")
    stalled_at = time.monotonic()
    sim.stall(seconds)
    return stalled_at


def test_stall_during_stimulation_trips_the_silence_watchdog(
    sim: SimulatedTcs, recorded: tuple[TcsDriver, RecordingTransport], clock: Clock
) -> None:
    tcs, transport = recorded
    status = StatusLog(clock)
    stalled_at = stall_mid_stimulus(sim, tcs, status, 1.0)

    # During a stimulation the limit is min(silence_s, 0.5 s) = 0.5 s.
    _, message = status.wait_for("error", contains="silent")
    assert sim.port in message
    assert "abort could not be sent" not in message  # the write itself succeeded
    assert time.monotonic() - stalled_at >= 0.45  # not (much) before the silence limit
    aborts = [t for t, data in transport.writes if data == b"A" and t > stalled_at]
    assert aborts, "the watchdog did not try to abort"
    assert not tcs.stimulating
    time.sleep(max(0.0, stalled_at + 1.1 - time.monotonic()))
    assert status.kinds().count("error") == 1  # reported once, not every 10 ms
    assert tcs.temperatures().zones[0] > 30.0  # and the driver works again


def test_watchdog_abort_reaches_the_device_once_it_answers_again(
    sim: SimulatedTcs, recorded: tuple[TcsDriver, RecordingTransport], clock: Clock
) -> None:
    tcs, _ = recorded
    status = StatusLog(clock)
    stalled_at = stall_mid_stimulus(sim, tcs, status, 1.0)
    status.wait_for("error", contains="silent")
    time.sleep(max(0.0, stalled_at + 1.3 - time.monotonic()))  # stall over, stream back
    assert sim.device.zones[0].phase in ("return", "idle")


class LateStreamTcs:
    """A TCS II stand-in whose first 100 Hz line comes 30 ms after ``L`` (one period is
    10 ms, so a real device may well take this long); it never streams while idle."""

    def __init__(self) -> None:
        self._parser = wire.CommandParser()
        self._out = bytearray()
        self._lock = threading.Lock()
        self._next_line: float | None = None

    def write(self, data: bytes) -> None:
        for byte in data:
            cmd = self._parser.feed(byte)
            if cmd is None:
                continue
            with self._lock:
                if cmd.name == "identify":
                    self._out += wire.encode_identity()
                elif cmd.name == "help":
                    self._out += wire.encode_lines(HELP_LINES)
                elif cmd.name == "start":
                    self._next_line = time.monotonic() + 0.03
                elif cmd.name == "abort":
                    self._next_line = None

    def read(self) -> bytes:
        with self._lock:
            if self._next_line is not None and time.monotonic() >= self._next_line:
                self._out += wire.encode_stream_line([32.0] * 6)
                self._next_line += 0.01
            data, self._out = bytes(self._out), bytearray()
        if not data:
            time.sleep(0.002)
        return data

    def close(self) -> None:
        pass


def test_starting_long_after_the_last_idle_line_is_not_taken_for_silence(
    clock: Clock,
) -> None:
    tcs = TcsDriver("late-port", clock=clock, quiet_s=0.03, verify_before_start=False,
                    transport_factory=lambda port: LateStreamTcs())
    tcs.connect()
    try:
        status = StatusLog(clock)
        tcs.on_status(status)
        tcs.configure(1, target=40.0, rise=10.0, ret=10.0, duration_ms=1000)
        tcs.enable_zones([1])
        time.sleep(0.6)  # longer than the stimulation silence limit, shorter than silence_s
        tcs.start()
        time.sleep(0.2)
        assert tcs.stimulating
        assert "error" not in status.kinds(), status.events
    finally:
        tcs.disconnect()


# ---------------------------------------------------------------------- broken zone


def start_on_broken_zone_2(sim: SimulatedTcs, tcs: TcsDriver, clock: Clock) -> float:
    """Break zone 2, run 45 °C on it; returns the earliest time the stimulation can end."""
    sim.break_zone(2)
    tcs.configure(2, target=45.0, rise=20.0, ret=20.0, duration_ms=500)
    tcs.enable_zones([2])
    stim, base = tcs.stimulus(2), tcs.settings.baseline
    started = clock.now()
    tcs.start()
    return started + stim.duration_ms / 1000 + (stim.peak(base) - base) / stim.ret


def test_broken_zone_is_aborted_by_firmware_and_reported_after_the_stimulus(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    # Without the 100 Hz stream the silence watchdog stays out of the way: this is the
    # post-stimulation error check on its own (the next test has streaming on).
    driver.set_streaming(idle=True, stimulation=False)
    status = StatusLog(clock)
    driver.on_status(status)
    earliest_end = start_on_broken_zone_2(sim, driver, clock)

    # The firmware notices the zone not following, aborts and flags zone 2 only.
    wait_until(lambda: sim.device.error_codes[2] != 0, what="the firmware error code")
    assert sim.device.error_codes == [0, 0, 1, 0, 0, 0]
    assert sim.device.zones[1].phase in ("return", "idle")

    when, message = status.wait_for("error", timeout=WAIT_S)
    assert when >= earliest_end, "errors were checked before the stimulation had ended"
    assert driver.port in message and "zone 2 code 1" in message
    assert "zone 1" not in message and "neutral" not in message
    assert not driver.stimulating

    with pytest.raises(DeviceFault, match="zone 2") as caught:
        driver.check_errors()
    assert driver.port in str(caught.value)


def test_broken_zone_error_is_reported_with_streaming_on(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    status = StatusLog(clock)
    driver.on_status(status)
    start_on_broken_zone_2(sim, driver, clock)
    status.wait_for("error", contains="zone 2", timeout=2.5)  # the driver's end is ~1.2 s
    assert "silent" not in " ".join(m for _, k, m in status.events if k == "error")


def test_device_error_is_reported_even_if_the_wire_is_busy_when_the_stimulus_ends(
    sim: SimulatedTcs, clock: Clock
) -> None:
    tcs = TcsDriver(sim.port, clock=clock, quiet_s=0.5)  # P holds the wire >= 0.5 s
    tcs.connect()
    try:
        tcs.set_streaming(idle=True, stimulation=False)
        status = StatusLog(clock)
        tcs.on_status(status)
        earliest_end = start_on_broken_zone_2(sim, tcs, clock)
        wait_until(lambda: clock.now() >= earliest_end, what="the end of the stimulus")
        assert tcs.parameters()  # a query spanning the driver's end time (+0.2 s)
        status.wait_for("error", contains="zone 2", timeout=1.0)  # already past the end
    finally:
        tcs.disconnect()


# ---------------------------------------------------------------------- bad replies


class FakeTcs:
    """A TCS II stand-in at the byte level: answers the connect handshake like the
    simulator; ``K`` (buttons) gets the next scripted reply verbatim."""

    def __init__(self, button_replies: list[bytes]) -> None:
        self.button_replies = list(button_replies)
        self.received: list[str] = []
        self._parser = wire.CommandParser()
        self._out = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        for byte in data:
            cmd = self._parser.feed(byte)
            if cmd is None:
                continue
            self.received.append(cmd.name)
            with self._lock:
                self._out += self._answer(cmd.name)

    def _answer(self, name: str) -> bytes:
        if name == "identify":
            return wire.encode_identity()
        if name == "help":
            return wire.encode_lines(HELP_LINES)
        if name == "errors":
            return wire.encode_errors([0] * 6)
        if name == "buttons":
            return self.button_replies.pop(0)
        return b""

    def read(self) -> bytes:
        with self._lock:
            data, self._out = bytes(self._out), bytearray()
        if not data:
            time.sleep(0.002)
        return data

    def close(self) -> None:
        pass


def fake_driver(fake: FakeTcs, clock: Clock) -> TcsDriver:
    tcs = TcsDriver(
        "fake-port", clock=clock, quiet_s=0.03, reply_timeout_s=0.2,
        transport_factory=lambda port: fake,
    )
    tcs.connect()
    return tcs


def test_a_reply_that_does_not_match_is_a_device_fault(clock: Clock) -> None:
    fake = FakeTcs([b"\r2x\r", b"\r01"])
    tcs = fake_driver(fake, clock)
    try:
        with pytest.raises(DeviceFault) as caught:
            tcs.buttons()
        text = str(caught.value)
        assert "fake-port" in text and "unexpected reply to 'K'" in text and "2x" in text
        assert tcs.connected
        assert tcs.buttons() == wire.Buttons(False, True)  # the next, good reply is read
    finally:
        tcs.disconnect()
    assert fake.received[-1] == "abort"


def test_a_truncated_reply_is_a_device_fault_and_not_read_as_the_next_reply(
    clock: Clock,
) -> None:
    fake = FakeTcs([b"\r1", b"\r10"])  # one digit of two, then nothing; then a good one
    tcs = fake_driver(fake, clock)
    try:
        with pytest.raises(DeviceFault, match=r"fake-port: unexpected reply to 'K': b'1'"):
            tcs.buttons()
        assert tcs.buttons() == wire.Buttons(True, False)
    finally:
        tcs.disconnect()


def test_no_reply_at_all_is_device_silent(clock: Clock) -> None:
    fake = FakeTcs([b""])
    tcs = fake_driver(fake, clock)
    try:
        with pytest.raises(DeviceSilent, match=r"fake-port: no reply to 'K' within 0.2 s"):
            tcs.buttons()
        assert tcs.connected
        assert tcs.errors() == (0,) * 6
    finally:
        tcs.disconnect()
