"""Live heart rate from a recording's ECG or RR stream, against the simulator's true beats."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from qst_station import live_heart_rate
from qst_station.clock import SimulatedClock
from qst_station.gui.heart_rate_panel import AVERAGE_COLOR, RR_COLOR, HeartRatePanel
from qst_station.hrv import hrv_summary
from qst_station.live_heart_rate import (
    AVERAGE_BEATS,
    BACKLOG_S,
    LOOKBACK_S,
    SETTLE_S,
    STEP_S,
    LiveHeartRate,
)
from qst_station.lsl_inlets import LslInletRecorder
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
from sim.ecg import FIRST_BEAT_S, EcgSimulator, beat_times, ecg_waveform, rr_series
from tests.helpers import ManualClock

T0 = 5000.0  # program-clock time of the first ECG sample
IDLE_S = 60.0  # generous: wait_idle returns as soon as the worker has caught up



class SimulatedEcg:
    """The simulator's ECG and true beats for ``duration_s`` (no LSL), sample i at T0 + i/rate."""

    def __init__(self, rate_hz: float = 500.0, duration_s: float = 60.0, seed: int = 3,
                 mean_hr_bpm: float = 65.0) -> None:
        self.rate = rate_hz
        self.rr = rr_series(seed, duration_s - 2.0, mean_hr_bpm)
        self.beats = T0 + beat_times(self.rr, FIRST_BEAT_S)
        ecg = ecg_waveform(self.beats - T0, rate_hz, duration_s, seed)
        self.ecg = ecg.astype(np.float64)
        self.times = T0 + np.arange(ecg.size) / rate_hz

    def blocks(self, seed: int = 1, max_s: float = 0.3) -> Iterator[slice]:
        """Slices of random length (1 sample to ``max_s``), as LSL chunks come."""
        rng = np.random.default_rng(seed)
        i = 0
        while i < self.times.size:
            n = int(rng.integers(1, max(2, int(max_s * self.rate))))
            yield slice(i, i + n)
            i += n


def ecg_spec(rate_hz: float, name: str = "ecg", lsl_type: str = "ECG",
             channels: tuple[Channel, ...] = (Channel("ECG", "mV"),)) -> StreamSpec:
    return StreamSpec(name, channels, rate_hz, "sim", lsl_type=lsl_type)


def rr_spec(unit: str = "s") -> StreamSpec:
    return StreamSpec("rr", (Channel("RR", unit),), 0.0, "sim", dtype="float64", lsl_type="RR")


def started(live: LiveHeartRate, *specs: StreamSpec,
            clock: ManualClock | None = None) -> Recording:
    recording = Recording(clock or ManualClock(T0))
    recording.subscribe(live)
    for spec in specs:
        recording.add_stream(spec)
    recording.start(SessionInfo("P1", "v1"))
    return recording


def feed(recording: Recording, sim: SimulatedEcg, upto: float | None = None,
         name: str = "ecg", since: float | None = None, paced: bool = True) -> None:
    """Push the simulated ECG (from time ``since``, up to time ``upto``) in random blocks.

    ``paced``: each block is processed by the :class:`LiveHeartRate` subscribers before the
    next comes, as in a real-time run (pushing a minute of ECG at once would overflow the
    worker's queue of :data:`BACKLOG_S`, which then drops the oldest blocks).
    """
    followers = [s for s in recording._subscribers if isinstance(s, LiveHeartRate)]
    for block in sim.blocks():
        if upto is not None and sim.times[block.start] >= upto:
            return
        if since is not None and sim.times[block.start] < since:
            continue
        recording.push(name, sim.times[block], sim.ecg[block, None])
        for live in followers if paced else ():
            assert live.wait_idle(IDLE_S)


# ------------------------------------------------------------------ beats from an ECG


@pytest.mark.parametrize("rate_hz", [250.0, 500.0, 1000.0])
def test_every_true_beat_is_found_with_its_rr_within_2_ms(rate_hz: float) -> None:
    sim = SimulatedEcg(rate_hz, duration_s=90.0)
    live = LiveHeartRate(capacity_beats=500)
    recording = started(live, ecg_spec(rate_hz))
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    snap = live.snapshot()
    assert snap.beat_times.size == sim.beats.size  # none missed, none extra
    assert np.max(np.abs(snap.beat_times - sim.beats)) < 0.002
    assert np.isnan(snap.rr_s[0])
    assert np.max(np.abs(snap.rr_s[1:] - sim.rr)) < 0.002
    assert np.allclose(snap.hr_bpm[1:], 60.0 / snap.rr_s[1:])
    true_average = 60.0 / np.convolve(sim.rr, np.ones(AVERAGE_BEATS) / AVERAGE_BEATS, "valid")
    assert np.max(np.abs(snap.hr_avg_bpm[AVERAGE_BEATS:] - true_average)) < 0.2
    assert snap.source == "ECG stream 'ecg'" and snap.problem == ""


def test_live_beats_equal_the_offline_detector_on_the_whole_recording() -> None:
    sim = SimulatedEcg(500.0, duration_s=60.0, seed=8)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    offline = hrv_summary((sim.times, sim.ecg))["beat_times_s"]
    assert np.allclose(live.snapshot().beat_times, offline, rtol=0.0, atol=1e-6)


def test_beats_are_final_once_reported_and_come_within_a_second() -> None:
    sim = SimulatedEcg(500.0, duration_s=40.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    reported = np.zeros(0)
    largest_block_s = 0.3
    for block in sim.blocks(seed=5, max_s=largest_block_s):
        recording.push("ecg", sim.times[block], sim.ecg[block, None])
        assert live.wait_idle(IDLE_S)
        beats = live.snapshot().beat_times
        assert np.array_equal(beats[:reported.size], reported)  # never revised
        newest = sim.times[min(block.stop, sim.times.size) - 1]
        assert np.all(beats <= newest)  # causal
        due = sim.beats[sim.beats < newest - SETTLE_S - STEP_S - largest_block_s]
        assert beats.size >= due.size  # every beat is out within about a second
        reported = beats
    assert live._finder is not None
    assert live._finder.buffered <= (LOOKBACK_S + STEP_S + largest_block_s) * 500.0


def test_the_beat_buffer_keeps_the_newest_beats() -> None:
    sim = SimulatedEcg(250.0, duration_s=60.0)
    live = LiveHeartRate(capacity_beats=20)
    recording = started(live, ecg_spec(250.0))
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    snap = live.snapshot()
    assert snap.beat_times.size == 20
    assert np.allclose(snap.beat_times, sim.beats[-20:], atol=0.002)


# ------------------------------------------------------------------ RR streams


@pytest.mark.parametrize(("unit", "scale"), [("s", 1.0), ("ms", 1000.0)])
def test_an_rr_stream_gives_the_beats_and_intervals_as_sent(unit: str, scale: float) -> None:
    sim = SimulatedEcg(duration_s=60.0)
    live = LiveHeartRate()
    recording = started(live, rr_spec(unit))
    for t, rr in zip(sim.beats[1:], sim.rr, strict=True):  # one sample per beat, as sim/ecg
        recording.push("rr", [t], [[rr * scale]])
    snap = live.snapshot()
    assert np.array_equal(snap.beat_times, sim.beats[1:])
    assert np.allclose(snap.rr_s, sim.rr) and np.allclose(snap.hr_bpm, 60.0 / sim.rr)
    assert snap.state == "ok" and snap.latest_bpm == pytest.approx(
        60.0 / sim.rr[-AVERAGE_BEATS:].mean())
    assert snap.source == "RR stream 'rr'"
    recording.stop("success")


def test_an_ecg_stream_is_preferred_to_an_rr_stream() -> None:
    live = LiveHeartRate()
    started(live, rr_spec(), ecg_spec(500.0, name="chest"),
            StreamSpec("thermode", (Channel("zone1", "C"),), 100.0, "tcs"))
    assert live.kind == "ecg" and live.spec is not None and live.spec.name == "chest"


def test_which_stream_and_channel_is_followed() -> None:
    two = (Channel("resp", "V"), Channel("ECG", "mV"))
    live = LiveHeartRate()
    started(live, StreamSpec("physio", two, 500.0, "amp", lsl_type="ECG"))
    assert live.kind == "ecg" and live._column == 1

    live = LiveHeartRate()
    started(live, ecg_spec(500.0, channels=(Channel("a", "mV"), Channel("b", "mV"))))
    assert live.spec is None and "say which channel" in live.problem
    assert live.snapshot().problem == live.problem

    live = LiveHeartRate()
    started(live, ecg_spec(50.0))
    assert live.spec is None and "needs >= 100 Hz" in live.problem

    live = LiveHeartRate(stream="amp2", channel="b")
    started(live, ecg_spec(500.0), ecg_spec(500.0, name="amp2", lsl_type="EEG",
                                             channels=(Channel("a", "mV"), Channel("b", "mV"))))
    assert live.spec is not None and live.spec.name == "amp2" and live._column == 1

    live = LiveHeartRate()
    started(live, StreamSpec("thermode", (Channel("zone1", "C"),), 100.0, "tcs"))
    assert live.spec is None and live.snapshot().source == ""


# ------------------------------------------------------------------ signal lost, gaps


def test_signal_lost_after_a_few_seconds_without_a_beat_and_back() -> None:
    clock = ManualClock(T0)
    sim = SimulatedEcg(500.0, duration_s=60.0)
    live = LiveHeartRate(clock=clock, lost_after_s=4.0)
    recording = started(live, ecg_spec(500.0), clock=clock)
    assert live.snapshot().state == "waiting"
    clock.t = T0 + 4.5
    assert live.snapshot().state == "lost"  # started, and nothing came
    feed(recording, sim, upto=T0 + 20.0)
    assert live.wait_idle(IDLE_S)
    clock.t = T0 + 20.0
    snap = live.snapshot()
    assert snap.state == "ok" and snap.latest_bpm is not None and 50 < snap.latest_bpm < 80
    assert snap.latest_rr_s is not None and snap.seconds_since_beat is not None
    clock.t = snap.beat_times[-1] + 4.1
    lost = live.snapshot()
    assert lost.state == "lost" and lost.latest_bpm is None and lost.latest_rr_s is None
    assert lost.beat_times.size == snap.beat_times.size  # the history stays
    # the stream comes back after a 15-s gap: no RR spans it
    feed(recording, sim, since=T0 + 35.0)
    assert live.wait_idle(IDLE_S)
    clock.t = T0 + 60.0
    back = live.snapshot()
    assert back.state == "ok"
    after = back.beat_times > T0 + 35.0
    first_after = int(np.argmax(after))
    assert np.isnan(back.rr_s[first_after]) and np.all(np.isfinite(back.rr_s[first_after + 1:]))
    true_after = sim.beats[sim.beats > T0 + 35.0]
    assert np.allclose(back.beat_times[after], true_after[:after.sum()], atol=0.002)
    assert after.sum() >= true_after.size - 2  # the last second waits for the stop


def test_a_flat_line_gives_no_beats_and_the_signal_is_lost() -> None:
    clock = ManualClock(T0)
    sim = SimulatedEcg(500.0, duration_s=30.0)
    sim.ecg[sim.times >= T0 + 10.0] = -1.2  # lead off: the amplifier sits at a constant
    live = LiveHeartRate(clock=clock)
    recording = started(live, ecg_spec(500.0), clock=clock)
    feed(recording, sim)
    assert live.wait_idle(IDLE_S)
    clock.t = T0 + 30.0
    snap = live.snapshot()
    assert snap.state == "lost" and snap.beat_times[-1] < T0 + 10.0
    assert snap.beat_times.size == np.count_nonzero(sim.beats < T0 + 9.9)
    recording.stop("success")


def test_nan_samples_and_gap_events_break_the_rr_series() -> None:
    sim = SimulatedEcg(500.0, duration_s=40.0)
    dropout = (sim.times >= T0 + 12.0) & (sim.times < T0 + 12.3)
    sim.ecg[dropout] = np.nan
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    feed(recording, sim, upto=T0 + 25.0)
    recording.event("stream_gap", {"stream": "ecg", "state": "lost"})
    recording.event("stream_gap", {"stream": "ecg", "state": "back"})
    feed(recording, sim, since=T0 + 25.0)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    snap = live.snapshot()
    breaks = snap.beat_times[np.isnan(snap.rr_s)]
    assert breaks.size == 3  # the first beat, after the dropout, after the gap event
    assert T0 + 12.3 < breaks[1] < T0 + 14.0 and T0 + 25.0 < breaks[2] < T0 + 27.0
    found = np.abs(sim.beats[:, None] - snap.beat_times[None, :]).min(axis=1) < 0.002
    missed = sim.beats[~found]
    assert np.all(((missed > T0 + 11.0) & (missed < T0 + 13.0))
                  | ((missed > T0 + 24.0) & (missed < T0 + 25.0)))  # only at the breaks
    assert missed.size <= 3 and snap.beat_times.size + missed.size == sim.beats.size


def test_snapshots_are_consistent_while_beats_arrive() -> None:
    sim = SimulatedEcg(250.0, duration_s=30.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(250.0))
    done = threading.Event()
    problems: list[str] = []

    def read() -> None:
        while not done.is_set():
            snap = live.snapshot()
            sizes = {a.size for a in (snap.beat_times, snap.rr_s, snap.hr_bpm, snap.hr_avg_bpm)}
            if len(sizes) != 1 or np.any(np.diff(snap.beat_times) <= 0):
                problems.append(f"inconsistent snapshot {sizes}")
            time.sleep(0.0005)

    reader = threading.Thread(target=read)
    reader.start()
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    done.set()
    reader.join()
    assert not problems
    assert live.snapshot().beat_times.size == sim.beats.size


# ------------------------------------------------------------------ off the producer's thread


class BlockedDetector:
    """Stands in for ``detect_r_peaks``: notes the calling thread and, until released,
    waits (with a long safety timeout, so a synchronous caller fails instead of hanging)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, blocked: bool = True) -> None:
        self.real = live_heart_rate.detect_r_peaks
        self.threads: set[int] = set()
        self.entered = threading.Event()
        self.released = threading.Event()
        if not blocked:
            self.released.set()
        monkeypatch.setattr(live_heart_rate, "detect_r_peaks", self)

    def __call__(self, ecg: np.ndarray, rate_hz: float) -> np.ndarray:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.released.wait(30.0)
        return self.real(ecg, rate_hz)


def test_detection_runs_in_the_worker_not_in_the_producers_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    detector = BlockedDetector(monkeypatch, blocked=False)
    sim = SimulatedEcg(500.0, duration_s=20.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    assert detector.threads and threading.get_ident() not in detector.threads
    assert live._worker is not None and detector.threads == {live._worker.ident}
    assert np.allclose(live.snapshot().beat_times, sim.beats, atol=0.002)
    live._worker.join(IDLE_S)
    assert not live._worker.is_alive()  # on_stop flushed and ended it


def test_samples_are_taken_while_the_worker_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    detector = BlockedDetector(monkeypatch)
    sim = SimulatedEcg(500.0, duration_s=20.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    for block in sim.blocks():
        times = sim.times[block].copy()
        recording.push("ecg", times, sim.ecg[block, None])  # returns: detection is queued
        times[:] = 0.0  # the producer reuses its buffer: the queued block is a copy
        if sim.times[block.start] > T0 + 2.0:
            assert detector.entered.wait(IDLE_S)  # the worker sits in detection ...
    assert threading.get_ident() not in detector.threads
    assert not live.wait_idle(0.05)  # ... so the blocks wait in the queue
    assert live.snapshot().beat_times.size == 0
    recording.stop("success")  # returns too: the flush is queued behind the samples
    detector.released.set()
    assert live.wait_idle(IDLE_S)
    snap = live.snapshot()
    assert snap.beat_times.size == sim.beats.size and live.dropped_samples == 0
    assert np.max(np.abs(snap.beat_times - sim.beats)) < 0.002


def test_a_worker_far_behind_drops_the_oldest_blocks_and_restarts(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    detector = BlockedDetector(monkeypatch)
    rate, pushed_s = 500.0, BACKLOG_S + 20.0
    sim = SimulatedEcg(rate, duration_s=pushed_s + 20.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(rate))
    feed(recording, sim, upto=T0 + 2.0, paced=False)
    assert detector.entered.wait(IDLE_S)  # the worker is stuck from about the first second
    feed(recording, sim, since=T0 + 2.0, upto=T0 + pushed_s, paced=False)
    assert live._queued_samples <= BACKLOG_S * rate  # bounded
    assert live.dropped_samples > 0
    kept_from = min(item[1][0] for item in live._queue if item[0] == "samples")
    assert T0 + pushed_s - BACKLOG_S - 0.5 < kept_from < T0 + pushed_s - BACKLOG_S + 0.5
    detector.released.set()
    feed(recording, sim, since=T0 + pushed_s)
    recording.stop("success")
    assert live.wait_idle(IDLE_S)
    snap = live.snapshot()
    after = snap.beat_times > kept_from
    first_after = int(np.argmax(after))
    assert after.any() and np.isnan(snap.rr_s[first_after])  # no RR across the drop
    assert np.all(np.isfinite(snap.rr_s[first_after + 1:]))
    true_after = sim.beats[sim.beats > kept_from + 1.0]
    found = snap.beat_times[snap.beat_times > kept_from + 1.0]
    assert found.size == true_after.size and np.max(np.abs(found - true_after)) < 0.002
    assert not np.any((snap.beat_times > T0 + 2.0) & (snap.beat_times < kept_from))
    assert caplog.text.count("detection fell behind") == 1  # logged once, by the worker


def test_close_ends_the_worker_and_nothing_more_is_taken() -> None:
    sim = SimulatedEcg(500.0, duration_s=20.0)
    live = LiveHeartRate()
    recording = started(live, ecg_spec(500.0))
    feed(recording, sim, upto=T0 + 10.0)
    assert live.close(IDLE_S)
    assert live._worker is not None and not live._worker.is_alive()
    beats = live.snapshot().beat_times
    assert beats.size > 0 and np.all(beats < T0 + 10.0)  # what was queued was processed
    feed(recording, sim)
    recording.stop("success")
    assert live.wait_idle(IDLE_S) and np.array_equal(live.snapshot().beat_times, beats)
    rr_only = LiveHeartRate()
    started(rr_only, rr_spec())
    assert rr_only._worker is None and rr_only.close() and rr_only.wait_idle(0.0)


# ------------------------------------------------------------------ the real LSL path


def test_the_simulated_ecg_over_lsl_gives_its_true_beats() -> None:
    clock = SimulatedClock(speed=20.0)
    name = f"qst-test-hr-ECG-{uuid.uuid4().hex[:8]}"
    recording = Recording(clock)
    from_ecg, from_rr = LiveHeartRate(clock=clock), LiveHeartRate(stream="rr", clock=clock)
    recording.subscribe(from_ecg)
    recording.subscribe(from_rr)
    sim = EcgSimulator(500.0, seed=4, clock=clock, name=name, duration_s=20.0)
    try:
        ecg_inlet = LslInletRecorder(recording, name, name="ecg")
        rr_inlet = LslInletRecorder(recording, sim.rr_name, name="rr")
        ecg_inlet.connect()
        rr_inlet.connect()
        assert sim.wait_for_consumers(10.0)
        recording.start(SessionInfo("P1", "v1"))
        sim.start()
        assert sim.wait_done(timeout=120.0)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and recording.counts["ecg"] < sim.pushed:
            time.sleep(0.05)
        ecg_inlet.disconnect()
        rr_inlet.disconnect()
        recording.stop("success")
        assert from_ecg.wait_idle(IDLE_S)
    finally:
        sim.close()
    truth = np.array([b.time for b in sim.beats])
    beats = from_ecg.snapshot().beat_times
    assert recording.counts["ecg"] == sim.pushed
    assert beats.size == truth.size and np.max(np.abs(beats - truth)) < 0.002
    rr = from_rr.snapshot()
    assert rr.source == "RR stream 'rr'"
    assert np.allclose(rr.beat_times, truth[1:]) and np.allclose(rr.rr_s, np.diff(truth))


# ------------------------------------------------------------------ the panel


def _has_color(image: object, color: str, region: tuple[int, int, int, int]) -> bool:
    """Whether ``image`` (QImage) has a pixel close to ``color`` inside ``region``."""
    target = QColor(color)
    x0, y0, x1, y1 = region
    for y in range(y0, y1, 2):
        for x in range(x0, x1, 2):
            pixel = image.pixelColor(x, y)  # type: ignore[attr-defined]
            if (abs(pixel.red() - target.red()) + abs(pixel.green() - target.green())
                    + abs(pixel.blue() - target.blue())) < 40:
                return True
    return False


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_the_panel_shows_the_heart_rate_and_tachogram(qtbot: QtBot, tmp_path: Path) -> None:
    clock = ManualClock(T0)
    sim = SimulatedEcg(500.0, duration_s=90.0, mean_hr_bpm=72.0)
    live = LiveHeartRate(clock=clock)
    recording = started(live, ecg_spec(500.0), clock=clock)
    panel = HeartRatePanel(live)
    qtbot.addWidget(panel)
    panel.resize(900, 420)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.waitUntil(lambda: panel.last_snapshot is not None, timeout=5000)
    assert panel.hr_label.text() == "—"
    assert panel.status_label.text() == "Waiting for beats…"
    feed(recording, sim, upto=T0 + 2.0)  # one beat out: no RR yet
    assert live.wait_idle(IDLE_S)
    clock.t = T0 + 2.0
    qtbot.waitUntil(lambda: panel.last_snapshot is not None
                    and panel.last_snapshot.beat_times.size == 1, timeout=5000)
    assert panel.hr_label.text() == "—" and panel.rr_label.text() == "RR — ms"
    feed(recording, sim, upto=T0 + 85.0)
    assert live.wait_idle(IDLE_S)
    clock.t = T0 + 85.0
    qtbot.waitUntil(lambda: panel.last_snapshot is not None
                    and panel.last_snapshot.now == clock.t, timeout=5000)
    snap = live.snapshot()
    assert snap.latest_bpm is not None
    assert panel.hr_label.text() == f"{snap.latest_bpm:.0f}"
    assert 60 <= int(panel.hr_label.text()) <= 85
    assert panel.status_label.text() == "" and "ECG stream 'ecg'" in panel.source_label.text()
    image = panel.grab().toImage()
    panel.grab().save(str(tmp_path / "heart_rate_panel.png"))
    assert (tmp_path / "heart_rate_panel.png").stat().st_size > 0
    plots = (200, 0, image.width(), image.height())
    assert _has_color(image, RR_COLOR, plots) and _has_color(image, AVERAGE_COLOR, plots)

    clock.t = T0 + 95.0  # nothing for 10 s
    qtbot.waitUntil(lambda: panel.status_label.text().startswith("Signal lost"), timeout=5000)
    assert panel.hr_label.text() == "—" and "no beat for" in panel.status_label.text()
    recording.stop("success")
