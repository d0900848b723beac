"""The serial button box driver against the simulated box over a real pty.

The simulator records when it handed each character to the pty, on the clock the
driver stamps arrivals with (10x real time), so response timestamps are compared with
the true press times. Tolerances are generous (this is not a benchmark); every wait is
bounded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import drivers.interfaces as interfaces
from drivers.errors import PortLost
from drivers.responses import (
    Response,
    SerialButtonBox,
    decode,
    parse_map,
    probe_lines,
)
from qst_station.clock import Clock, LslClock, SimulatedClock
from sim.button_box import SimulatedButtonBox, serve_forever
from tests.helpers import wait_for

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

SPEED = 10.0
ARRIVAL_TOL = 0.3  # clock seconds (30 ms real) between send and the driver's stamp
WAIT = 30.0  # clock seconds (3 s real) for any one condition
RELEASES = {1: b"a", 2: b"b", 3: b"c", 4: b"d"}


class Recorder:
    """Responses (reader thread) and status reports (status thread) as they arrive."""

    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.statuses: list[tuple[str, str]] = []

    def response(self, response: Response) -> None:
        self.responses.append(response)

    def status(self, kind: str, message: str) -> None:
        self.statuses.append((kind, message))

    def messages(self, kind: str) -> list[str]:
        return [m for k, m in list(self.statuses) if k == kind]


@pytest.fixture
def sim_clock() -> Clock:
    return SimulatedClock(speed=SPEED)


@contextmanager
def session(clock: Clock, releases: bool = True, link: Path | None = None
            ) -> Iterator[tuple[SimulatedButtonBox, SerialButtonBox, Recorder]]:
    """A simulated box, a connected driver listening to it, and what the driver delivered."""
    sim = SimulatedButtonBox(clock, link, release_char_map=RELEASES if releases else None)
    release_map = {c: b for b, c in RELEASES.items()} if releases else None
    box = SerialButtonBox(sim.port, release_map=release_map, clock=clock)
    rec = Recorder()
    box.subscribe(rec.response)
    box.on_status(rec.status)
    box.connect()
    sim.start()
    try:
        yield sim, box, rec
    finally:
        box.disconnect()
        sim.stop()
        box.drain_status()


def assert_arrivals(rec: Recorder, sim: SimulatedButtonBox) -> None:
    """Responses match what was sent, in order, each stamped just after its send."""
    got = [(r.kind, int(r.value)) for r in rec.responses]
    assert got == [(s.kind, s.button) for s in sim.sent]
    for r, s in zip(rec.responses, sim.sent, strict=True):
        assert r.source == "buttonbox"
        delay = r.timestamp - s.time
        assert 0.0 <= delay < ARRIVAL_TOL, (r, s, delay)


# ---------------------------------------------------------------------- presses


def test_presses_and_releases_arrive_with_true_times(sim_clock: Clock) -> None:
    with session(sim_clock) as (sim, box, rec):
        box.subscribe(lambda r: 1 / 0)  # a broken subscriber hurts nobody else
        sim.respond_after(0.5, 2, hold_s=0.3)
        sim.respond_after(1.5, 4)
        sim.respond_after(2.5, None, hold_s=0.2, jitter_s=0.5)  # seeded random button
        sim.respond_after(4.0, 1)
        assert sim.wait_idle(WAIT)
        sim.press(3)
        sim.release(3)
        assert wait_for(lambda: len(rec.responses) >= 8, sim_clock, WAIT), rec.responses
        box.drain_status()
        stats = box.stats
    kinds = [r.kind for r in rec.responses]
    assert kinds.count("press") == 5 and kinds.count("release") == 3
    assert_arrivals(rec, sim)
    assert stats.total_presses == 5 and stats.ignored == 0
    assert stats.presses == {b: len(sim.press_times(b)) for b in sim.buttons
                             if sim.press_times(b)}
    assert rec.messages("warning") == []
    connected = rec.messages("connected")
    assert len(connected) == 1 and "115200 baud" in connected[0] and "releases" in connected[0]


def test_the_scripted_participant_is_seeded() -> None:
    class Frozen:
        speed = 1.0

        def now(self) -> float:
            return 0.0

        def sleep(self, seconds: float) -> None:  # pragma: no cover - unused
            pass

    def plan(seed: int) -> list[float]:
        sim = SimulatedButtonBox(Frozen(), seed=seed)
        try:
            return [sim.respond_after(1.0, None, jitter_s=1.0) + sim._plan[-1][3]
                    for _ in range(10)]
        finally:
            sim.stop()

    assert plan(3) == plan(3)
    assert plan(3) != plan(4)


# ---------------------------------------------------------------------- odd bytes


def test_unknown_bytes_are_reported_and_ignored(sim_clock: Clock) -> None:
    with session(sim_clock, releases=False) as (sim, box, rec):
        sim.press(1)
        assert wait_for(lambda: len(rec.responses) >= 1, sim_clock, WAIT)
        sim.inject(b"x\r\n9")
        assert wait_for(lambda: box.stats.ignored >= 4, sim_clock, WAIT)
        sim.press(2)
        assert wait_for(lambda: len(rec.responses) >= 2, sim_clock, WAIT)
        box.drain_status()
    assert_arrivals(rec, sim)
    assert box.stats.presses == {1: 1, 2: 1} and box.stats.ignored == 4
    warnings = rec.messages("warning")
    assert len(warnings) == 1
    assert "ignored 4 byte(s)" in warnings[0] and "b'x\\r\\n9'" in warnings[0]


# ---------------------------------------------------------------------- cable pulled


def test_lost_port_is_reported_and_reconnect_carries_on(
        sim_clock: Clock, tmp_path: Path) -> None:
    with session(sim_clock, link=tmp_path / "buttons") as (sim, box, rec):
        sim.press(1)
        assert wait_for(lambda: len(rec.responses) >= 1, sim_clock, WAIT)
        sim.disconnect()
        assert wait_for(lambda: rec.messages("lost"), sim_clock, WAIT)
        assert not box.connected
        sim.press(2)  # pressed while unplugged: lost
        sim.reattach()
        box.reconnect()
        sim.press(3)
        assert wait_for(lambda: len(rec.responses) >= 2, sim_clock, WAIT)
        box.drain_status()
    assert sim.unplugged and sim.unplugged[0][:2] == ("press", 2)
    assert [int(r.value) for r in rec.responses] == [1, 3]
    assert_arrivals(rec, sim)
    lost = rec.messages("lost")
    assert len(lost) == 1 and "connection lost" in lost[0] and str(tmp_path) in lost[0]
    assert len(rec.messages("connected")) == 2
    assert box.stats.presses == {1: 1, 3: 1}


def test_missing_port_and_bad_maps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PortLost, match="nowhere"):
        SerialButtonBox(str(tmp_path / "nowhere")).connect()
    with pytest.raises(ValueError, match="one byte"):
        SerialButtonBox("/dev/null", press_map={b"11": 1})
    with pytest.raises(ValueError, match="both"):
        SerialButtonBox("/dev/null", release_map={b"1": 1})
    with pytest.raises(ValueError, match="no release characters"):
        SimulatedButtonBox(LslClock()).release(1)
    box = SerialButtonBox("/dev/null", press_map={"y": 1, b"n": 2})
    assert box.press_map == {b"y": 1, b"n": 2} and not box.connected
    assert parse_map("1=1, 2=2,0x61=3") == {b"1": 1, b"2": 2, b"a": 3}
    with pytest.raises(ValueError):
        parse_map("12")


def test_is_a_response_source() -> None:
    protocol = getattr(interfaces, "ResponseSource", None)
    if protocol is None:
        pytest.skip("drivers.interfaces has no ResponseSource yet")
    assert isinstance(SerialButtonBox("/dev/null"), protocol)


# ---------------------------------------------------------------------- fuzz


maps = st.dictionaries(st.binary(min_size=1, max_size=1), st.integers(1, 8), max_size=6)


@given(st.binary(max_size=300), maps, maps)
def test_decoding_random_bytes_never_crashes_or_invents_buttons(
        data: bytes, press: dict[bytes, int], release: dict[bytes, int]) -> None:
    release = {k: v for k, v in release.items() if k not in press}
    events, other = decode(data, press, release)
    assert len(events) + len(other) == len(data)
    for kind, button in events:
        assert button in (press if kind == "press" else release).values()
    assert not any(other[i : i + 1] in press or other[i : i + 1] in release
                   for i in range(len(other)))


FUZZ_BOX = SerialButtonBox("/dev/null", release_map={c: b for b, c in RELEASES.items()})


@given(st.binary(max_size=300))
def test_the_reader_path_survives_random_bytes(data: bytes) -> None:
    got: list[Response] = []
    unsubscribe = FUZZ_BOX.subscribe(got.append)
    before = FUZZ_BOX.stats
    try:
        FUZZ_BOX._dispatch(1.0, data)  # everything the reader does after the read returns
    finally:
        unsubscribe()
    after = FUZZ_BOX.stats
    assert {r.value for r in got} <= {1.0, 2.0, 3.0, 4.0}
    assert all(r.kind in ("press", "release") and r.timestamp == 1.0 for r in got)
    assert len(got) + after.ignored - before.ignored == len(data)


# ---------------------------------------------------------------------- probe and CLI sim


def test_probe_lines_describe_the_presses_as_they_come() -> None:
    clock = LslClock()  # the probe runs in real time
    echoed: list[str] = []
    with SimulatedButtonBox(clock, release_char_map=RELEASES) as sim:
        sim.respond_after(0.3, 2, hold_s=0.05)
        sim.respond_after(0.4, 4)
        sim.respond_after(0.5, 2)
        noise = threading.Timer(0.35, sim.inject, [b"?"])  # after the probe has connected
        noise.start()
        lines = probe_lines(sim.port, release_map={"a": 1, "b": 2}, count=3, timeout_s=5.0,
                            echo=echoed.append)
        noise.join()
    assert echoed == lines
    assert lines[0].startswith("connected: button box on") and "115200 baud" in lines[0]
    presses = [line for line in lines if "pressed" in line]
    assert [p.split()[1] for p in presses] == ["2", "4", "2"]
    assert re.search(r"at \d+\.\d{3} s  \(\+0\.\d{3} s\)$", presses[1]), presses[1]
    assert any("released" in line and "held 0.0" in line for line in lines)
    assert any(line.startswith("warning:") and "b'?'" in line for line in lines)
    assert lines[-1].startswith("3 press(es) in") and "button 2 x2, button 4 x1" in lines[-1]


def test_probe_without_presses_says_so() -> None:
    sim = SimulatedButtonBox(LslClock())  # never started: nobody presses
    try:
        lines = probe_lines(sim.port, baudrate=9600, count=3, timeout_s=0.3)
    finally:
        sim.stop()
    assert lines[-1] == "no button press within 0.3 s (0 other byte(s))"
    assert "9600 baud" in lines[0]


def test_serve_forever_presses_periodically_on_the_link(tmp_path: Path) -> None:
    link = tmp_path / "buttons"
    stop = threading.Event()
    echoed: list[str] = []
    server = threading.Thread(target=serve_forever, kwargs=dict(
        link=str(link), speed=SPEED, echo=echoed.append, every_s=0.5, stop=stop))
    server.start()
    clock = SimulatedClock(speed=SPEED)
    try:
        assert wait_for(link.is_symlink, clock, WAIT)
        box = SerialButtonBox(str(link), clock=clock)
        got: list[Response] = []
        box.subscribe(got.append)
        with box:
            assert wait_for(lambda: len(got) >= 3, clock, WAIT)
    finally:
        stop.set()
        server.join(5.0)
    assert not server.is_alive()
    assert echoed[0].startswith(f"simulated button box on {link}")
    assert any(line.startswith("button ") and " press at " in line for line in echoed)
    assert echoed[-1].startswith("button box stopped:")
    assert all(r.value in (1, 2, 3, 4) for r in got)
