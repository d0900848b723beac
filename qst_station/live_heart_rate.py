"""Live heart rate: a recording subscriber that finds beats as an ECG (or RR) stream arrives.

:class:`LiveHeartRate` follows one stream of the run: an ECG (lsl type ``ECG`` or a stream
named ``ecg``; the channel is chosen as in :func:`qst_station.hrv.hrv_summary`) or an RR
stream (lsl type ``RR``/``IBI`` or named ``rr``; one interval per beat, stamped at the beat
that ends it). ECG blocks go into a bounded look-back window (:data:`LOOKBACK_S`) on which
:func:`qst_station.hrv.detect_r_peaks` runs every :data:`STEP_S` of new signal; a peak is
final once it is :data:`SETTLE_S` behind the newest sample (the zero-phase filter and the
refractory period no longer reach it), so beats come about one second late and each only once.
Beat times, RR intervals and heart rates are kept for the newest :data:`CAPACITY_BEATS` beats;
the GUI reads them with :meth:`LiveHeartRate.snapshot` from any thread.

The recording calls its subscribers under one lock in the producers' threads (device readers,
trigger boxes, LSL inlets), so detection must not run there: ``on_samples`` only copies the
ECG column and queues it, and a worker thread of the subscriber (started when an ECG stream is
followed) runs the detection. ``stream_gap`` events and the final flush at ``on_stop`` go
through the same queue, so they apply in order with the samples. The queue holds at most
:data:`BACKLOG_S` of ECG: if the worker falls further behind, the oldest blocks are dropped
and detection restarts there as after a gap (counted in :attr:`LiveHeartRate.dropped_samples`).
:meth:`LiveHeartRate.wait_idle` waits until every queued block is processed (tests, the end
of a run); the worker ends after the flush at ``on_stop`` or on :meth:`LiveHeartRate.close`.
RR streams are cheap and handled in the producer's thread.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from qst_station.clock import Clock
from qst_station.hrv import MIN_RATE_HZ, REFRACTORY_S, _subsample_offsets, detect_r_peaks
from qst_station.live_buffer import LiveBuffer
from qst_station.recording import Event, SessionInfo, StreamSpec, Subscriber

LOOKBACK_S = 8.0  # ECG kept for detection: 4 of hrv's 2-s threshold blocks
STEP_S = 0.2  # detect after this much new ECG
SETTLE_S = 0.75  # a peak this far behind the newest sample is final
GAP_S = 0.5  # a jump in sample times this large restarts detection (no RR across it)
MAX_RR_S = 3.0  # a longer interval (20 bpm) is a missed beat or a gap: no RR
AVERAGE_BEATS = 8  # the averaged heart rate is 60 / mean of the newest RR intervals
LOST_AFTER_S = 4.0  # no beat for this long: signal lost
FLAT_CHECK_S = 0.1  # a peak needs the raw ECG to vary within this distance ...
FLAT_RELATIVE = 1e-6  # ... by more than this fraction of its magnitude (plus 1)
CAPACITY_BEATS = 2000  # about 30 min at 65 bpm
BACKLOG_S = 30.0  # ECG queued for the worker; beyond it the oldest blocks are dropped
ECG_TYPES = frozenset({"ECG", "EKG"})
RR_TYPES = frozenset({"RR", "RRI", "IBI"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeartRateSnapshot:
    """What the GUI draws: per beat (time order) and the current state."""

    beat_times: np.ndarray  # s, the stream's clock (the program clock for local LSL)
    rr_s: np.ndarray  # RR ending at each beat; NaN for the first beat of a segment
    hr_bpm: np.ndarray  # 60 / RR
    hr_avg_bpm: np.ndarray  # 60 / mean of the newest AVERAGE_BEATS RR
    state: str  # "waiting" (no beat yet), "ok" or "lost" (no beat for lost_after_s)
    latest_bpm: float | None  # averaged heart rate at the last beat; None unless "ok"
    latest_rr_s: float | None
    seconds_since_beat: float | None
    now: float | None  # the time the state refers to
    source: str  # e.g. "ECG stream 'ecg'"; "" while no stream is followed
    problem: str  # why a candidate stream cannot be followed, else ""



class LiveHeartRate(Subscriber):
    """Follows the run's ECG stream (preferred) or RR stream, or the stream named ``stream``.

    ``clock`` (the recording's) tells when the signal is lost even if no samples come; without
    it the newest processed sample time stands for now. The recording side only queues ECG
    (a copy of the block); detection, about a millisecond per :data:`STEP_S` of ECG at 500 Hz,
    runs in this subscriber's worker thread. Readers only copy under a short lock.
    """

    def __init__(self, stream: str | None = None, channel: str | None = None,
                 clock: Clock | None = None, lost_after_s: float = LOST_AFTER_S,
                 capacity_beats: int = CAPACITY_BEATS) -> None:
        self.stream, self.channel, self.clock = stream, channel, clock
        self.lost_after_s = lost_after_s
        self.spec: StreamSpec | None = None
        self.kind = ""  # "ecg" or "rr"
        self.problem = ""
        self.dropped_samples = 0  # ECG dropped because the worker fell behind
        self._column = 0
        self._rr_scale = 1.0  # to seconds
        self._finder: PeakFinder | None = None  # the worker's only
        self._beats = LiveBuffer(3, capacity_beats)  # (time, rr, hr, hr_avg); own lock
        self._lock = threading.Lock()  # guards what follows
        self._recent_rr: deque[float] = deque(maxlen=AVERAGE_BEATS)
        self._last_beat: float | None = None
        self._segment_start = True  # the next beat follows a gap: no RR
        self._since: float | None = None  # following since (run start or first sample)
        self._newest: float | None = None  # newest sample time (ECG: processed)
        # the worker's queue: ("samples", times, ecg), ("gap", dropped), ("flush",), ("stop",)
        self._work = threading.Condition()  # guards what follows
        self._queue: deque[tuple] = deque()
        self._queued_samples = 0
        self._backlog = 0  # samples the queue may hold (BACKLOG_S of ECG)
        self._unfinished = 0  # items queued or being processed
        self._closed = False  # nothing more is queued
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ recording side

    def on_stream(self, spec: StreamSpec) -> None:
        kind = _kind_of(spec, self.stream)
        upgrade = self.kind == "rr" and kind == "ecg" and self._last_beat is None
        if not kind or (self.spec is not None and not upgrade):
            return
        try:
            column = _column(spec, self.channel, "ECG" if kind == "ecg" else "RR")
            if kind == "ecg" and not spec.nominal_rate >= MIN_RATE_HZ:
                raise ValueError(f"needs >= {MIN_RATE_HZ:g} Hz, has {spec.nominal_rate:g} Hz")
        except ValueError as error:
            self.problem = f"{spec.name}: {error}"
            return
        with self._lock:
            self.spec, self.kind, self._column, self.problem = spec, kind, column, ""
            self._rr_scale = 0.001 if spec.channels[column].unit.lower() == "ms" else 1.0
            self._finder = PeakFinder(spec.nominal_rate) if kind == "ecg" else None
        if kind == "ecg":
            self._start_worker(spec.nominal_rate)

    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
        with self._lock:
            self._since = start_time

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        if spec is not self.spec:
            return
        if self._finder is not None:  # copies: the producer may reuse its arrays
            self._enqueue(("samples", np.array(timestamps, dtype=np.float64),
                           values[:, self._column].astype(np.float64)))
            return
        self._took(timestamps)
        column = values[:, self._column].astype(np.float64)
        for t, rr in zip(timestamps.tolist(), (column * self._rr_scale).tolist(), strict=True):
            self._add_beat(t, rr)

    def on_event(self, event: Event) -> None:
        if (event.kind == "stream_gap" and event.payload.get("state") == "lost"
                and self.spec is not None and event.payload.get("stream") == self.spec.name):
            if self._finder is not None:
                self._enqueue(("gap", False))
                return
            with self._lock:
                self._segment_start = True

    def on_stop(self, status: str, reason: str, stop_time: float) -> None:
        """Queue the final flush; the worker then ends (:meth:`wait_idle` waits for it)."""
        if self._finder is not None:
            self._enqueue(("flush",))
            self._enqueue(("stop",), last=True)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued block (and gap, flush) is processed; False on timeout."""
        with self._work:
            return self._work.wait_for(lambda: self._unfinished == 0, timeout_s)

    def close(self, timeout_s: float | None = 5.0) -> bool:
        """Stop the worker once it has processed what is queued (without the flush of
        ``on_stop``); True if it has ended within ``timeout_s``."""
        with self._work:
            worker = self._worker
            if worker is None:
                self._closed = True
                return True
        self._enqueue(("stop",), last=True)
        if worker is not threading.current_thread():
            worker.join(timeout_s)
        return not worker.is_alive()

    # ------------------------------------------------------------------ worker

    def _start_worker(self, rate_hz: float) -> None:
        with self._work:
            self._backlog = max(1, int(math.ceil(BACKLOG_S * rate_hz)))
            if self._worker is not None or self._closed:
                return
            self._worker = threading.Thread(target=self._run, name="live-heart-rate",
                                            daemon=True)
            self._worker.start()

    def _enqueue(self, item: tuple, last: bool = False) -> None:
        """Queue ``item`` for the worker (``last``: and nothing after it); if the samples
        queued exceed the backlog, drop the oldest items for one restart."""
        with self._work:
            if self._closed:
                return
            self._closed = last
            self._queue.append(item)
            self._unfinished += 1
            if item[0] == "samples":
                self._queued_samples += item[1].size
                if self._queued_samples > self._backlog:
                    self._drop_oldest()
            self._work.notify_all()

    def _drop_oldest(self) -> None:
        """Drop the oldest items until the backlog holds; detection restarts there (the
        worker logs it: nothing slow here, in the producer's thread)."""
        dropped = popped = 0
        while self._queued_samples > self._backlog and len(self._queue) > 1:
            item = self._queue.popleft()  # samples, or a gap that the restart stands for
            popped += 1
            self._unfinished -= 1
            if item[0] == "samples":
                self._queued_samples -= item[1].size
                dropped += item[1].size
        if not popped:
            return
        if self._queue[0][0] == "gap":
            self._queue[0] = ("gap", True)
        else:
            self._queue.appendleft(("gap", True))
            self._unfinished += 1
        self.dropped_samples += dropped

    def _run(self) -> None:
        while True:
            with self._work:
                self._work.wait_for(lambda: bool(self._queue))
                item = self._queue.popleft()
                if item[0] == "samples":
                    self._queued_samples -= item[1].size
            try:
                if item[0] != "stop":
                    self._process(item)
            except Exception:  # one bad block must not end the live display
                log.exception("live heart rate: %s failed", item[0])
                if self._finder is not None:
                    self._finder.restart()
            finally:
                with self._work:
                    self._unfinished -= 1
                    self._work.notify_all()
            if item[0] == "stop":
                return

    def _process(self, item: tuple) -> None:
        finder = self._finder
        assert finder is not None
        if item[0] == "samples":
            _, timestamps, column = item
            beats = finder.add(timestamps, column)
            self._took(timestamps)
        elif item[0] == "gap":
            if item[1]:
                log.warning("live heart rate: detection fell behind; ECG dropped (%d samples "
                            "so far), detection restarts", self.dropped_samples)
            beats = []
            with self._lock:
                self._segment_start = True
            finder.restart()
        else:  # flush
            beats = finder.flush()
        for t, after_gap in beats:
            self._add_beat(t, math.nan if after_gap else None)

    def _took(self, timestamps: np.ndarray) -> None:
        with self._lock:
            self._since = float(timestamps[0]) if self._since is None else self._since
            self._newest = float(timestamps[-1])

    # ------------------------------------------------------------------ GUI side

    def snapshot(self, now: float | None = None) -> HeartRateSnapshot:
        """Copies of the beat buffers and the state at ``now`` (default: the clock, else the
        newest sample); safe on any thread."""
        times, columns = self._beats.snapshot()
        with self._lock:
            last, since, newest = self._last_beat, self._since, self._newest
            spec, kind, problem = self.spec, self.kind, self.problem
        if now is None:
            now = self.clock.now() if self.clock is not None else newest
        reference = last if last is not None else since
        quiet = None if now is None or reference is None else now - reference
        state = ("lost" if quiet is not None and quiet > self.lost_after_s
                 else "ok" if last is not None else "waiting")
        latest_bpm = latest_rr = None
        if state == "ok":
            latest_bpm = _finite_or_none(columns[-1, 2])
            latest_rr = _finite_or_none(columns[-1, 0])
        source = f"{'ECG' if kind == 'ecg' else 'RR'} stream {spec.name!r}" if spec else ""
        since_beat = None if last is None or now is None else now - last
        return HeartRateSnapshot(times, columns[:, 0], columns[:, 1], columns[:, 2], state,
                                 latest_bpm, latest_rr, since_beat, now, source, problem)

    # ------------------------------------------------------------------ beats

    def _add_beat(self, time_s: float, rr_s: float | None) -> None:
        """A beat; ``rr_s`` as given (RR stream, NaN: none) or None: from the previous beat."""
        with self._lock:
            last = self._last_beat
            if last is not None and time_s <= last:
                return
            if rr_s is None:
                rr_s = math.nan if last is None or self._segment_start else time_s - last
            if 0.0 < rr_s <= MAX_RR_S:
                self._recent_rr.append(rr_s)
            else:
                rr_s = math.nan
                self._recent_rr.clear()
            mean = sum(self._recent_rr) / len(self._recent_rr) if self._recent_rr else math.nan
            self._last_beat, self._segment_start = time_s, False
            self._beats.append(time_s, (rr_s, 60.0 / rr_s, 60.0 / mean))


class PeakFinder:
    """Incremental R peaks of one ECG channel over a bounded look-back window.

    :meth:`add` and :meth:`flush` return ``(beat time, after_gap)`` pairs: ``after_gap`` is
    True for the first beat after a restart (a time jump, NaN samples, :meth:`restart`).
    """

    def __init__(self, rate_hz: float) -> None:
        self.rate = rate_hz
        self._capacity = int(math.ceil(LOOKBACK_S * rate_hz))
        self._settle = int(math.ceil(SETTLE_S * rate_hz))
        self._step = max(1, int(round(STEP_S * rate_hz)))
        self.restart(after_gap=False)

    @property
    def buffered(self) -> int:
        """ECG samples held (at most :data:`LOOKBACK_S` plus one block)."""
        return self._ecg.size

    def restart(self, after_gap: bool = True) -> None:
        """Forget the window (undecided peaks are lost); the next beat follows a gap."""
        self._times = np.zeros(0)
        self._ecg = np.zeros(0)
        self._decided = 0  # window index before which every peak is decided
        self._pending = 0  # samples since the last detection
        self._last_peak = -math.inf
        self._after_gap = after_gap

    def add(self, timestamps: np.ndarray, ecg: np.ndarray) -> list[tuple[float, bool]]:
        """Take a block of samples; the beats that became final."""
        finite = np.isfinite(ecg)
        if finite.all():
            return self._add_run(timestamps, ecg)
        beats: list[tuple[float, bool]] = []
        edges = np.flatnonzero(np.diff(np.concatenate(([0], finite.astype(np.int8), [0]))))
        if not finite[0]:
            beats += self._break()
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            beats += self._add_run(timestamps[a:b], ecg[a:b])
            if b < ecg.size:
                beats += self._break()
        return beats

    def flush(self) -> list[tuple[float, bool]]:
        """Decide every peak in the window (the stream ended or broke off)."""
        return self._detect(self._ecg.size)

    def _break(self) -> list[tuple[float, bool]]:
        beats = self.flush()
        self.restart()
        return beats

    def _add_run(self, timestamps: np.ndarray, ecg: np.ndarray) -> list[tuple[float, bool]]:
        beats: list[tuple[float, bool]] = []
        if self._times.size and not 0.0 < timestamps[0] - self._times[-1] <= GAP_S:
            beats = self._break()
        self._times = np.concatenate((self._times, timestamps))
        self._ecg = np.concatenate((self._ecg, ecg))
        self._pending += timestamps.size
        if self._pending >= self._step:
            beats += self._detect(self._ecg.size - self._settle)
        return beats

    def _detect(self, until: int) -> list[tuple[float, bool]]:
        self._pending = 0
        beats: list[tuple[float, bool]] = []
        if until > self._decided:
            peaks = detect_r_peaks(self._ecg, self.rate)
            new = peaks[(peaks >= self._decided) & (peaks < until)]
            new = new[[not self._flat_around(i) for i in new]]
            times = self._times[new] + _subsample_offsets(self._ecg, new) / self.rate
            for t in times.tolist():
                if t - self._last_peak >= REFRACTORY_S:
                    beats.append((t, self._after_gap))
                    self._last_peak, self._after_gap = t, False
            self._decided = until
        drop = self._ecg.size - self._capacity
        if drop > 0:
            self._times, self._ecg = self._times[drop:], self._ecg[drop:]
            self._decided = max(0, self._decided - drop)
        return beats

    def _flat_around(self, index: int) -> bool:
        """No signal within +-:data:`FLAT_CHECK_S` of ``index`` (e.g. a lead off or a saturated
        amplifier: the detector's threshold is relative, so rounding noise would pass it)."""
        reach = int(math.ceil(FLAT_CHECK_S * self.rate))
        around = self._ecg[max(0, index - reach):index + reach + 1]
        return float(np.ptp(around)) <= FLAT_RELATIVE * (1.0 + float(np.max(np.abs(around))))


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _kind_of(spec: StreamSpec, wanted: str | None) -> str:
    """"ecg", "rr" or "" for a stream; with ``wanted``, only that stream (ECG unless RR)."""
    if spec.name.endswith(".clock_offset") or (wanted is not None and spec.name != wanted):
        return ""
    name, lsl_type = spec.name.lower(), spec.lsl_type.upper()
    if lsl_type in RR_TYPES or name in ("rr", "rri", "ibi"):
        return "rr"
    if lsl_type in ECG_TYPES or name in ("ecg", "ekg") or wanted is not None:
        return "ecg"
    return ""


def _column(spec: StreamSpec, channel: str | None, label: str) -> int:
    """The heart channel: ``channel``, else the only one, else the one labelled ``label``."""
    labels = [c.label for c in spec.channels]
    if channel is not None:
        if channel not in labels:
            raise ValueError(f"no channel {channel!r} in {labels}")
        return labels.index(channel)
    if len(labels) == 1:
        return 0
    if label in labels:
        return labels.index(label)
    raise ValueError(f"say which channel holds the {label}: {labels}")
