"""The serial trigger driver against the simulated scanner over a real pty.

The scanner records when it handed each character to the pty, on the clock the driver
stamps arrivals with (20x real time), so timestamps are compared with the true send
times. Tolerances are generous (this is not a benchmark); every wait is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.errors import PortLost
from drivers.interfaces import TriggerSource
from drivers.trigger_box import SerialTriggerSource, probe_lines
from drivers.volumes import Volume, VolumeCounter
from qst_station.clock import Clock, LslClock, SimulatedClock
from sim.scanner import SimulatedScanner
from tests.helpers import wait_for

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

SPEED = 20.0
TR = 2.0  # clock seconds: 0.1 s real
ARRIVAL_TOL = 0.3  # clock seconds (15 ms real) between send and the driver's stamp
WAIT = 60.0  # clock seconds (3 s real) for any one condition


class Recorder:
    """Volumes (reader thread) and status reports (status thread) as they arrive."""

    def __init__(self) -> None:
        self.volumes: list[Volume] = []
        self.statuses: list[tuple[str, str]] = []
        self.hooks: dict[int, Callable[[], None]] = {}  # run right after volume N arrives

    def volume(self, volume: Volume) -> None:
        self.volumes.append(volume)
        hook = self.hooks.pop(volume.index, None)
        if hook is not None:
            hook()

    def status(self, kind: str, message: str) -> None:
        self.statuses.append((kind, message))

    def messages(self, kind: str) -> list[str]:
        return [m for k, m in list(self.statuses) if k == kind]


@pytest.fixture
def sim_clock() -> Clock:
    return SimulatedClock(speed=SPEED)


@contextmanager
def session(clock: Clock, counter: VolumeCounter, character: bytes = b"5",
            **scanner: object) -> Iterator[tuple[SimulatedScanner, SerialTriggerSource, Recorder]]:
    """A scanner, a connected source listening to it, and what the source delivered."""
    sim = SimulatedScanner(TR, clock=clock, character=character, **scanner)  # type: ignore[arg-type]
    source = SerialTriggerSource(sim.port, character=character, clock=clock, counter=counter)
    rec = Recorder()
    source.subscribe(rec.volume)
    source.on_status(rec.status)
    source.connect()
    sim.start()
    try:
        yield sim, source, rec
    finally:
        source.disconnect()
        sim.stop()
        source.drain_status()


def finish(sim: SimulatedScanner, source: SerialTriggerSource, rec: Recorder, clock: Clock,
           last: int) -> None:
    """Wait for the scanner's last volume and for the driver to have counted up to ``last``."""
    assert sim.wait_done(WAIT)
    assert wait_for(lambda: len(rec.volumes) >= last, clock, WAIT), rec.volumes
    source.drain_status()


def assert_arrivals(rec: Recorder, sim: SimulatedScanner, offset: int = 0) -> None:
    """Every received (not inferred) volume was stamped just after the scanner sent it."""
    sent = sim.send_times
    for v in rec.volumes:
        if not v.inferred:
            delay = v.timestamp - sent[v.index + offset]
            assert 0.0 <= delay < ARRIVAL_TOL, (v, delay)


# ---------------------------------------------------------------------- counting


def test_counts_and_timestamps_match_the_simulator(sim_clock: Clock) -> None:
    counter = VolumeCounter()  # TR estimated from the triggers
    with session(sim_clock, counter, volumes=12) as (sim, source, rec):
        source.subscribe(lambda v: 1 / 0)  # a broken subscriber hurts nobody else
        finish(sim, source, rec, sim_clock, 12)
        stats = source.stats
    assert [v.index for v in rec.volumes] == list(range(1, 13))
    assert not any(v.inferred or v.dummy for v in rec.volumes)
    assert_arrivals(rec, sim)
    assert (stats.count, stats.received, stats.missed, stats.extra, stats.ignored) == (
        12, 12, 0, 0, 0)
    assert stats.tr_s == pytest.approx(TR, abs=0.05)
    assert rec.messages("warning") == []
    assert len(rec.messages("connected")) == 1 and "low-latency mode" in rec.messages(
        "connected")[0]


def test_dropped_pulses_are_inferred_and_reported(sim_clock: Clock) -> None:
    with session(sim_clock, VolumeCounter(tr_s=TR, dummies=2), volumes=12,
                 drop={3, 7, 8}) as (sim, source, rec):
        finish(sim, source, rec, sim_clock, 12)
    assert [v.index for v in rec.volumes] == list(range(1, 13))
    assert {v.index for v in rec.volumes if v.inferred} == {3, 7, 8} == set(sim.dropped)
    for v in rec.volumes:
        if v.inferred:  # between its neighbours' arrivals: close to when it was due
            assert abs(v.timestamp - sim.scheduled[v.index]) < 0.25 * TR
    assert [v.index for v in rec.volumes if v.dummy] == [1, 2]
    assert source.counter.first_counted_volume_time == rec.volumes[2].timestamp
    assert_arrivals(rec, sim)
    warnings = rec.messages("warning")
    assert len(warnings) == 2
    assert "volume 3 inferred" in warnings[0] and "volumes 7-8 inferred" in warnings[1]
    assert source.stats.missed == 3 and source.stats.received == 9


def test_jitter_and_random_drops_are_followed(sim_clock: Clock) -> None:
    with session(sim_clock, VolumeCounter(tr_s=TR), volumes=20, jitter_s=0.15,
                 drop_probability=0.2, seed=7) as (sim, source, rec):
        assert sim.wait_done(WAIT)
        first, last = sim.sent[0].index, sim.sent[-1].index
        finish(sim, source, rec, sim_clock, last - first + 1)
    assert sim.dropped, "the seed should drop some volumes"
    offset = first - 1  # the driver numbers from the first trigger it saw
    assert [v.index + offset for v in rec.volumes] == list(range(first, last + 1))
    inferred = {v.index + offset for v in rec.volumes if v.inferred}
    assert inferred == {i for i in sim.dropped if first < i < last}
    assert_arrivals(rec, sim, offset)  # arrivals follow the jittered send times
    assert source.stats.extra == 0


def test_the_schedule_is_seeded() -> None:
    class Frozen:
        speed = 1.0
        t = 0.0

        def now(self) -> float:
            return self.t

        def sleep(self, seconds: float) -> None:  # pragma: no cover - unused
            pass

    def run(seed: int) -> tuple[list[int], list[float]]:
        clock = Frozen()
        sim = SimulatedScanner(1.0, 30, clock=clock, jitter_s=0.2, drop_probability=0.3,
                               seed=seed)
        with sim:
            clock.t = 100.0
            assert sim.wait_done(5.0)
        return sim.dropped, [sim.scheduled[i] for i in range(1, 31)]

    assert run(3) == run(3)
    assert run(3) != run(4)


# ---------------------------------------------------------------------- odd bytes


def test_other_characters_are_ignored_and_extra_triggers_not_counted(sim_clock: Clock) -> None:
    with session(sim_clock, VolumeCounter(tr_s=TR), character=b"t", volumes=8) as (
            sim, source, rec):
        rec.hooks[3] = lambda: sim.inject(b"5x\r\n")  # right after volume 3 arrived
        rec.hooks[5] = lambda: sim.inject(b"t")  # a second trigger right after volume 5
        finish(sim, source, rec, sim_clock, 8)
    assert [v.index for v in rec.volumes] == list(range(1, 9))
    assert not any(v.inferred for v in rec.volumes)
    assert_arrivals(rec, sim)
    stats = source.stats
    assert (stats.count, stats.extra, stats.ignored) == (8, 1, 4)
    warnings = rec.messages("warning")
    assert len(warnings) == 2
    assert "ignored 4 byte(s)" in warnings[0] and "b'5x\\r\\n'" in warnings[0]
    assert "extra trigger" in warnings[1] and "after volume 5" in warnings[1]


# ---------------------------------------------------------------------- cable pulled


def test_lost_port_is_reported_and_reconnect_carries_on_counting(
        sim_clock: Clock, tmp_path: Path) -> None:
    with session(sim_clock, VolumeCounter(tr_s=TR), volumes=40,
                 link=tmp_path / "scanner") as (sim, source, rec):
        assert wait_for(lambda: len(rec.volumes) >= 4, sim_clock, WAIT)
        sim.disconnect()
        assert wait_for(lambda: rec.messages("lost"), sim_clock, WAIT)
        assert not source.connected
        before = len(rec.volumes)
        sim_clock.sleep(2.5 * TR)  # the scan goes on while unplugged
        sim.reattach()
        source.reconnect()
        assert wait_for(lambda: len(rec.volumes) >= before + 6, sim_clock, WAIT)
        source.drain_status()
    assert sim.unplugged, "volumes should have fallen due while unplugged"
    indices = [v.index for v in rec.volumes]
    assert indices == list(range(1, len(indices) + 1))
    inferred = {v.index for v in rec.volumes if v.inferred}
    assert set(sim.unplugged) <= inferred  # the gap is filled in, numbering intact
    assert_arrivals(rec, sim)
    lost = rec.messages("lost")
    assert len(lost) == 1 and "connection lost" in lost[0] and str(tmp_path) in lost[0]
    assert len(rec.messages("connected")) == 2
    first_gap = rf"volumes? {min(sim.unplugged)}\b"
    assert any(re.search(first_gap, w) for w in rec.messages("warning"))


def test_missing_port_and_bad_character_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PortLost, match="nowhere"):
        SerialTriggerSource(str(tmp_path / "nowhere")).connect()
    with pytest.raises(ValueError, match="one byte"):
        SerialTriggerSource("/dev/null", character=b"55")
    source = SerialTriggerSource("/dev/null")
    assert isinstance(source, TriggerSource) and not source.connected


# ---------------------------------------------------------------------- probe


def test_probe_lines_describe_the_triggers_as_they_come() -> None:
    clock = LslClock()  # the probe runs in real time
    echoed: list[str] = []
    with SimulatedScanner(0.1, 10, clock=clock, drop={6}, start_delay_s=0.3) as sim:
        lines = probe_lines(sim.port, "5", 57600, count=6, timeout_s=5.0, echo=echoed.append)
    assert echoed == lines
    volumes = [line for line in lines if line.startswith("volume")]
    assert len(volumes) == 7
    assert "missed, inferred" in volumes[5] and volumes[5].startswith("volume    6")
    assert any(line.startswith("warning:") and "volume 6 inferred" in line for line in lines)
    assert lines[-1].startswith("6 trigger(s) in") and "1 missed, 0 extra" in lines[-1]
    assert re.search(r"TR 0\.(09\d|10\d) s", lines[-1]), lines[-1]


def test_probe_without_triggers_says_so() -> None:
    sim = SimulatedScanner(1.0, 3)  # never started: a silent box
    try:
        lines = probe_lines(sim.port, b"5", 9600, count=3, timeout_s=0.3)
    finally:
        sim.stop()
    assert lines[-1] == "no trigger b'5' within 0.3 s (0 other byte(s))"
    assert lines[0].startswith("connected: trigger box on") and "9600 baud" in lines[0]
