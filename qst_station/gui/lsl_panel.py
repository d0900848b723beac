"""LSL panel: available streams, which are recorded, their rates and clock offsets.

A :class:`StreamFinder` thread (never the GUI thread) calls ``pylsl.resolve_streams`` every
few seconds and keeps the newest list; the panel's timer copies it and updates the table.
Streams that vanish stay listed as *gone*. The "record" box only calls ``on_choice(name,
record)``: the console adds or removes the :class:`~qst_station.lsl_inlets.LslInletRecorder`
for the next run. For the run given with :meth:`LslPanel.set_recording`, recorded streams
show their measured rate (sample counts of the recording), their latest clock offset (the
``<name>.clock_offset`` stream in :class:`~qst_station.live_buffer.LiveBuffers`) and gaps
(``stream_gap`` events from an :class:`~qst_station.event_feed.EventFeed`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from qst_station.event_feed import EventFeed
from qst_station.live_buffer import LiveBuffers
from qst_station.lsl_inlets import OFFSET_SUFFIX
from qst_station.lsl_setup import pylsl_module
from qst_station.recording import Recording

FRAME_MS = 250
RATE_WINDOW_S = 5.0  # the measured rate spans about this much
STALE_S = 2.0  # a regular stream without samples this long shows 0 Hz
MISSES_TO_GONE = 2  # looks without a stream before it is shown as gone
OWN_PREFIX = "qst-station/"  # source_id of qst-station's own outlets (not to be recorded)
COLUMNS = ("Record", "Stream", "Type", "Ch", "Nominal", "Source id", "Host",
           "Measured", "Clock offset", "State")
GREEN, RED, GREY = "#2e7d32", "#c62828", "#9e9e9e"


@dataclass(frozen=True)
class LslStream:
    """What a resolved stream says about itself (plain data, safe across threads)."""

    name: str
    type: str
    channels: int
    rate_hz: float  # 0 = irregular
    source_id: str
    host: str

    @classmethod
    def of(cls, info: Any) -> LslStream:
        return cls(info.name(), info.type(), info.channel_count(), info.nominal_srate(),
                   info.source_id(), info.hostname())


class StreamFinder:
    """A thread resolving the streams this LSL scope sees every ``interval_s``."""

    def __init__(self, interval_s: float = 3.0, wait_s: float = 1.0) -> None:
        self.interval_s, self.wait_s = interval_s, wait_s
        self._lock = threading.Lock()
        self._found: tuple[int, tuple[LslStream, ...], str] = (0, (), "")
        self._stop = threading.Event()
        self._pylsl = pylsl_module()
        self._thread = threading.Thread(target=self._run, name="lsl-finder", daemon=True)
        self._thread.start()

    def latest(self) -> tuple[int, tuple[LslStream, ...], str]:
        """(looks so far, streams of the newest look, error of the newest look or "")."""
        with self._lock:
            return self._found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.wait_s + 2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = tuple(LslStream.of(i) for i in self._pylsl.resolve_streams(self.wait_s))
                error = ""
            except Exception as exc:  # noqa: BLE001 - shown in the panel, keep looking
                found, error = (), f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._found = (self._found[0] + 1, found, error)
            self._stop.wait(self.interval_s)


@dataclass
class _Recorded:
    """A stream the current run records (``name`` in the recording)."""

    name: str
    numeric: bool
    regular: bool  # has a nominal rate: silence means no samples
    counts: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))  # (t, n)
    gap: str = ""  # the reason while lost
    last_count: int = 0
    changed_at: float = 0.0  # panel clock when the count last grew


@dataclass(frozen=True)
class StreamRow:
    """One table row as shown (for tests and the console)."""

    stream: LslStream
    present: bool
    record: bool
    recorded_as: str | None
    measured: str
    offset: str
    state: str


class LslPanel(QWidget):
    """Table of the LSL streams in scope, with a "record" box each and recording figures."""

    def __init__(self, on_choice: Callable[[str, bool], None] | None = None, *,
                 chosen: Iterable[str] = (), interval_s: float = 3.0, wait_s: float = 1.0,
                 discover: bool = True, now: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.on_choice = on_choice
        self.chosen: set[str] = set(chosen)
        self._now = now
        self._streams: list[LslStream] = []  # row order
        self._present: list[bool] = []
        self._misses: list[int] = []
        self._boxes: list[QCheckBox] = []
        self._looks = 0  # looks shown
        self._finder_looks = 0
        self._error = ""
        self._recording: Recording | None = None
        self._live: LiveBuffers | None = None
        self._feed: EventFeed | None = None
        self._cursor = 0
        self._recorded: dict[tuple[str, str], _Recorded] = {}  # (LSL name, host) -> run stream
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.status_label = QLabel("Looking for LSL streams…")
        self.status_label.setStyleSheet("font-size:14px;color:#333;")
        layout.addWidget(self.status_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setStyleSheet("font-size:14px;")
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Source id"), QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table)
        self.finder = StreamFinder(interval_s, wait_s) if discover else None
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)

    # -- inputs ---------------------------------------------------------------------------
    def set_chosen(self, names: Iterable[str]) -> None:
        """Tick the boxes of ``names`` (e.g. the configured inlets) without calling back."""
        self.chosen = set(names)
        for stream, box in zip(self._streams, self._boxes, strict=True):
            box.setChecked(stream.name in self.chosen)

    def set_recording(self, recording: Recording | None, live: LiveBuffers | None = None,
                      feed: EventFeed | None = None) -> None:
        """The run whose LSL streams to show (its ``<name>.clock_offset`` streams say which)."""
        self._recording, self._live, self._feed = recording, live, feed
        self._cursor, self._recorded = 0, {}
        self.refresh()

    def show_found(self, streams: Sequence[LslStream]) -> None:
        """One look's result: new streams are added, missing ones counted towards gone."""
        self._looks += 1
        keys = {(s.name, s.source_id, s.host) for s in streams}
        for i, known in enumerate(self._streams):
            seen = (known.name, known.source_id, known.host) in keys
            self._misses[i] = 0 if seen else self._misses[i] + 1
            self._present[i] = seen or (self._present[i] and self._misses[i] < MISSES_TO_GONE)
        for stream in streams:
            if not any(self._same(stream, k) for k in self._streams):
                self._add_row(stream, present=True)
            else:  # a placeholder from the recording learns its source id
                i = next(i for i, k in enumerate(self._streams) if self._same(stream, k))
                if not self._streams[i].source_id:
                    self._streams[i], self._present[i], self._misses[i] = stream, True, 0

    @staticmethod
    def _same(a: LslStream, b: LslStream) -> bool:
        return a.name == b.name and a.host == b.host and (
            a.source_id == b.source_id or not a.source_id or not b.source_id)

    # -- reading ----------------------------------------------------------------------------
    def rows(self) -> list[StreamRow]:
        out = []
        for i, stream in enumerate(self._streams):
            cells = [self.table.item(i, COLUMNS.index(c)) for c in
                     ("Measured", "Clock offset", "State")]
            run = self._recorded.get((stream.name, stream.host))
            out.append(StreamRow(stream, self._present[i], self._boxes[i].isChecked(),
                                 run.name if run else None, *(c.text() for c in cells)))
        return out

    def row(self, name: str) -> StreamRow | None:
        """The first row of the stream called ``name``."""
        return next((r for r in self.rows() if r.stream.name == name), None)

    def checkbox(self, name: str) -> QCheckBox:
        return next(b for s, b in zip(self._streams, self._boxes, strict=True) if s.name == name)

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take the finder's newest look and the run's figures; update the table."""
        if self.finder is not None:
            looks, found, error = self.finder.latest()
            if looks != self._finder_looks:
                self._finder_looks, self._error = looks, error
                if not error:
                    self.show_found(found)
        self._learn_recorded()
        self._read_gaps()
        now = self._now()
        for i, stream in enumerate(self._streams):
            self._draw_row(i, stream, now)
        gone = self._present.count(False)
        text = (f"{len(self._streams) - gone} stream(s) available" if self._looks
                else "Looking for LSL streams…")
        if gone:
            text += f", {gone} gone"
        if self._recorded:
            text += f" · {len(self._recorded)} recorded in this run"
        failed = f" · look failed: {self._error}" if self._error else ""
        self.status_label.setText(f"LSL: {text}{failed}")

    def _learn_recorded(self) -> None:
        recording = self._recording
        if recording is None:
            return
        for name, spec in list(recording.streams.items()):
            if not name.endswith(OFFSET_SUFFIX) or not spec.source.startswith("lsl:"):
                continue
            lsl_name, _, host = spec.source[4:].rpartition("@")
            if (lsl_name, host) in self._recorded:
                continue
            base = name[:-len(OFFSET_SUFFIX)]
            data = recording.streams.get(base)
            self._recorded[(lsl_name, host)] = _Recorded(
                base, data is not None, data is not None and data.nominal_rate > 0,
                changed_at=self._now())
            if not any(s.name == lsl_name and s.host == host for s in self._streams):
                placeholder = LslStream(lsl_name, data.lsl_type if data else "Markers",
                                        data.width if data else 1,
                                        data.nominal_rate if data else 0.0, "", host)
                self._add_row(placeholder, present=False)

    def _read_gaps(self) -> None:
        if self._feed is None:
            return
        events, self._cursor = self._feed.since(self._cursor)
        by_name = {r.name: r for r in self._recorded.values()}
        for event in events:
            run = by_name.get(str(event.payload.get("stream")))
            if event.kind == "stream_gap" and run is not None:
                lost = event.payload.get("state") == "lost"
                run.gap = str(event.payload.get("reason") or "lost") if lost else ""

    def _measured(self, run: _Recorded, now: float) -> str:
        """Samples per second over the last few seconds: per second of the samples' own
        timestamps when LiveBuffers has the stream (exact), else of the panel's clock."""
        recording = self._recording
        if recording is None or not run.numeric:
            return "—"
        count, live = recording.counts.get(run.name, 0), recording.state == "recording"
        if count != run.last_count:
            run.last_count, run.changed_at = count, now
        if live and (run.gap or (run.regular and now - run.changed_at > STALE_S)):
            return "0 Hz"
        buffer = self._live.buffers.get(run.name) if self._live else None
        latest = buffer.latest() if buffer is not None else None
        when = now if buffer is None else None if latest is None else float(latest[0])
        if live and when is not None:
            run.counts.append((when, count))
        while len(run.counts) > 2 and run.counts[-1][0] - run.counts[1][0] >= RATE_WINDOW_S:
            run.counts.popleft()
        if len(run.counts) < 2 or run.counts[-1][0] - run.counts[0][0] < 1.0:
            return "…"
        (t0, c0), (t1, c1) = run.counts[0], run.counts[-1]
        rate = (c1 - c0) / (t1 - t0)
        return f"{rate:.0f} Hz" if rate >= 50 else f"{rate:.2f} Hz"

    def _offset(self, run: _Recorded) -> str:
        buffer = self._live.buffers.get(run.name + OFFSET_SUFFIX) if self._live else None
        latest = buffer.latest() if buffer is not None else None
        return "—" if latest is None else f"{latest[1] * 1000:+.3f} ms"

    def _draw_row(self, i: int, stream: LslStream, now: float) -> None:
        run = self._recorded.get((stream.name, stream.host))
        present = self._present[i]
        measured = offset = ""
        if run is not None:
            measured, offset = self._measured(run, now), self._offset(run)
            live = self._recording is not None and self._recording.state == "recording"
            if run.gap:
                state, color = f"gap: {run.gap}", RED
            elif not present and self._looks:
                state, color = "gone (recorded)", RED
            else:
                state, color = ("recording" if live else "recorded"), GREEN
        elif not present:
            state, color = ("gone" if self._looks else "not seen yet"), GREY
        elif stream.source_id.startswith(OWN_PREFIX):
            state, color = "qst-station's own", GREY
        else:
            state, color = "available", "#222"
        texts = (stream.name, stream.type, str(stream.channels),
                 "irregular" if stream.rate_hz <= 0 else f"{stream.rate_hz:g} Hz",
                 stream.source_id or "—", stream.host, measured, offset, state)
        for column, text in enumerate(texts, start=1):
            item = self.table.item(i, column)
            if item.text() != text:
                item.setText(text)
                item.setToolTip(text)
            item.setForeground(QColor(GREY if not present else "#222"))
            if column in (1, len(COLUMNS) - 1):
                font = item.font()
                font.setItalic(not present)
                font.setBold(column == 1 or color == RED)
                item.setFont(font)
        self.table.item(i, len(COLUMNS) - 1).setForeground(QColor(color))

    def _add_row(self, stream: LslStream, present: bool) -> None:
        i = len(self._streams)
        self._streams.append(stream)
        self._present.append(present)
        self._misses.append(0 if present else MISSES_TO_GONE)
        self.table.insertRow(i)
        box = QCheckBox("record")
        box.setChecked(stream.name in self.chosen)
        own = stream.source_id.startswith(OWN_PREFIX)
        box.setEnabled(not own)
        box.setToolTip("qst-station's own stream: recorded directly, not through LSL" if own
                       else "Record this stream in the next run")
        box.clicked.connect(lambda checked, name=stream.name: self._choose(name, checked))
        self._boxes.append(box)
        self.table.setCellWidget(i, 0, box)
        for column in range(1, len(COLUMNS)):
            item = QTableWidgetItem("")
            item.setTextAlignment(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft)
            self.table.setItem(i, column, item)

    def _choose(self, name: str, record: bool) -> None:
        if record:
            self.chosen.add(name)
        else:
            self.chosen.discard(name)
        for stream, box in zip(self._streams, self._boxes, strict=True):
            if stream.name == name:
                box.setChecked(record)
        if self.on_choice is not None:
            self.on_choice(name, record)

    def close(self) -> bool:
        """Stop the finder thread and the timer, then close the widget."""
        self._timer.stop()
        if self.finder is not None:
            self.finder.close()
        return super().close()


def sample_for_screenshot() -> LslPanel:
    """A populated panel without LSL: one stream recorded, one in a gap, one gone."""
    import numpy as np

    from qst_station.clock import SimulatedClock
    from qst_station.recording import Channel, SessionInfo, StreamSpec

    panel = LslPanel(lambda name, record: None, chosen={"BrainAmp-ECG", "Polar-H10-RR"},
                     discover=False, now=lambda: 0.0)  # a still clock: the figures stay
    host = "scanner-pc"
    panel.show_found([
        LslStream("BrainAmp-ECG", "ECG", 1, 500.0, "brainamp-12345", host),
        LslStream("Polar-H10-RR", "RR", 1, 0.0, "polar-h10-A1B2", host),
        LslStream("PsychoPy-markers", "Markers", 1, 0.0, "psychopy-run1", "stim-pc"),
        LslStream("EyeLink-gaze", "Gaze", 3, 1000.0, "eyelink-1000", "eye-pc"),
        LslStream("qst-station-markers", "Markers", 1, 0.0,
                  "qst-station/bench-2@scanner-pc/qst-station-markers", host),
    ])
    panel.show_found([s for s in panel._streams if s.name != "EyeLink-gaze"])
    panel.show_found([s for s in panel._streams if s.name != "EyeLink-gaze"])
    recording = Recording(SimulatedClock())
    live, feed = LiveBuffers(), EventFeed()
    recording.subscribe(live)
    recording.subscribe(feed)
    for name, lsl, kind, rate in (("ecg", "BrainAmp-ECG", "ECG", 500.0),
                                  ("rr", "Polar-H10-RR", "RR", 0.0)):
        source = f"lsl:{lsl}@{host}"
        recording.add_stream(StreamSpec(name, (Channel(kind, "mV"),), rate, source,
                                        lsl_type=kind))
        recording.add_stream(StreamSpec(name + OFFSET_SUFFIX, (Channel("offset", "s"),), 0.0,
                                        source, dtype="float64", lsl_type="ClockOffset"))
    recording.start(SessionInfo("SIM001", "demo"))
    for name, offset in (("ecg", 0.000021), ("rr", -0.000143)):
        recording.push(name + OFFSET_SUFFIX, [1.0], np.array([[offset]]))
    panel.set_recording(recording, live, feed)
    ecg_times, rr_times = np.arange(4991) / 499.0, np.arange(10) * 1.1
    for part in (slice(0, 1), slice(1, None)):  # two looks: a measured rate
        recording.push("ecg", ecg_times[part], np.zeros((len(ecg_times[part]), 1)))
        recording.push("rr", rr_times[part], np.full((len(rr_times[part]), 1), 1.1))
        panel.refresh()
    recording.event("stream_gap", {"stream": "rr", "state": "lost",
                                   "reason": "the outlet went away"})
    panel.refresh()
    panel.resize(1100, 240)
    return panel
