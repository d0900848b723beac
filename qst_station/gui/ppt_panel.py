"""Examiner feedback for the pressure pain threshold (PPT) with a handheld algometer.

Shows the live pressure against the target ramp (with its tolerance band), large readouts
of the pressure and of the application rate ("too fast" / "too slow" / "on target"), and
the thresholds captured so far. The logic lives in :mod:`qst_station.ppt_feedback`; this
widget only renders it.

Threads: :meth:`PptPanel.feed` is called on the driver's reader thread and only appends
to a lock-protected bounded inbox; a 30 Hz timer drains it on the GUI thread (the
``LiveBuffer`` pattern). Responses reach the GUI thread through a Qt signal (the status
bridge pattern of the device windows).
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drivers.interfaces import ResponseSource
from drivers.responses import Response
from qst_station.clock import Clock
from qst_station.ppt_feedback import Capture, Pace, PptSettings, PptTracker, Trial

FRAME_MS = 33
MIN_SPAN_S = 8.0  # the time axis shows at least this much of a trial
CAPTURE_KINDS = frozenset({"press", "yes", "no"})  # not releases, not VAS moves
PACE_COLORS = {Pace.ON_TARGET: "#2e7d32", Pace.TOO_FAST: "#c62828",
               Pace.TOO_SLOW: "#b26a00", Pace.UNKNOWN: "#9e9e9e"}
PRESSURE_COLOR = "#1f4e9a"
TARGET_COLOR = "#2e7d32"
CAPTURE_COLOR = "#c62828"


class PressureLike(Protocol):
    """What :meth:`PptPanel.feed` needs of a sample (e.g. ``drivers.algometer.PressureSample``)."""

    @property
    def timestamp(self) -> float: ...

    @property
    def kpa(self) -> float: ...


class _Inbox:
    """Bounded, thread-safe FIFO of (timestamp, kPa): any thread appends, the GUI drains."""

    def __init__(self, capacity: int = 20000) -> None:
        self._items: deque[tuple[float, float]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def append(self, t: float, kpa: float) -> None:
        with self._lock:
            self._items.append((t, kpa))

    def drain(self) -> list[tuple[float, float]]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items


class _Bridge(QObject):
    response = Signal(object)


class PptPanel(QWidget):
    """Live pressure vs the target ramp; captures the PPT at the participant's response."""

    def __init__(self, clock: Clock, settings: PptSettings | None = None,
                 responses: ResponseSource | None = None,
                 capture_kinds: Iterable[str] = CAPTURE_KINDS) -> None:
        super().__init__()
        self.clock = clock
        self.tracker = PptTracker(settings)
        self.capture_kinds = frozenset(capture_kinds)
        self._inbox = _Inbox()
        self._bridge = _Bridge()
        self._bridge.response.connect(self._on_response)
        self._unsubscribe: Callable[[], None] | None = None
        self._notice = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_plot(), stretch=1)
        layout.addWidget(self._build_side())
        QShortcut(QKeySequence(Qt.Key.Key_Space), self, activated=self.capture,
                  context=Qt.ShortcutContext.WindowShortcut)
        self.set_response_source(responses)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)
        self._redraw()

    # ------------------------------------------------------------------ layout

    def _build_plot(self) -> pg.PlotWidget:
        self.plot = pg.PlotWidget(background="w")
        self.plot.setLabel("left", "Pressure (kPa)")
        self.plot.setLabel("bottom", "Time since the trial began (s)")
        for side in ("left", "bottom"):  # dark text whatever the global pyqtgraph options
            self.plot.getAxis(side).setPen("k")
            self.plot.getAxis(side).setTextPen("k")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.legend = self.plot.addLegend(offset=(10, 10), labelTextColor="k")
        edge = pg.mkPen(46, 125, 50, 90, width=1)
        low, high = pg.PlotCurveItem([], [], pen=edge), pg.PlotCurveItem([], [], pen=edge)
        self.band_edges = (low, high)
        self.band = pg.FillBetweenItem(low, high, brush=pg.mkBrush(46, 125, 50, 45))
        for item in (low, high, self.band):
            self.plot.addItem(item)
        self.target_curve = self.plot.plot(
            [], [], pen=pg.mkPen(TARGET_COLOR, width=2, style=Qt.PenStyle.DashLine),
            name=self._target_text())
        self.pressure_curve = self.plot.plot(
            [], [], pen=pg.mkPen(PRESSURE_COLOR, width=3), name="pressure")
        self.capture_marker = pg.ScatterPlotItem(
            size=14, brush=pg.mkBrush(CAPTURE_COLOR), pen=pg.mkPen("w", width=1.5))
        self.plot.addItem(self.capture_marker)
        self.capture_text = pg.TextItem(color=CAPTURE_COLOR, anchor=(1.0, 1.0))
        self.capture_text.setFont(_font(13, bold=True))
        self.plot.addItem(self.capture_text)
        return self.plot

    def _build_side(self) -> QWidget:
        side = QWidget()
        side.setFixedWidth(250)
        column = QVBoxLayout(side)
        column.setContentsMargins(6, 0, 0, 0)
        self.pressure_label = _label("— kPa", 34, bold=True, color=PRESSURE_COLOR)
        self.rate_label = _label("— kPa/s", 20, bold=True)
        self.pace_label = _label(Pace.UNKNOWN.label, 17, bold=True)
        self.pace_label.setMinimumHeight(34)
        self.status_label = _label("", 12)
        self.status_label.setWordWrap(True)
        self.status_label.setMinimumHeight(36)
        for widget in (self.pressure_label, self.rate_label, self.pace_label,
                       self.status_label):
            column.addWidget(widget)
        column.addLayout(self._build_rate_row())
        column.addLayout(self._build_buttons())
        column.addWidget(_label("Captured PPT", 12, bold=True, center=False))
        self.captures_list = QListWidget()
        self.captures_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        column.addWidget(self.captures_list, stretch=1)
        self.mean_label = _label("", 12, bold=True, center=False)
        column.addWidget(self.mean_label)
        return side

    def _build_rate_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Target ramp"))
        self.rate_spin = QDoubleSpinBox()
        self.rate_spin.setRange(5.0, 500.0)
        self.rate_spin.setDecimals(0)
        self.rate_spin.setSingleStep(5.0)
        self.rate_spin.setSuffix(" kPa/s")
        self.rate_spin.setValue(self.tracker.settings.rate_kpa_s)
        self.rate_spin.valueChanged.connect(self.set_target_rate)
        row.addWidget(self.rate_spin, stretch=1)
        return row

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.new_trial_button = QPushButton("New trial")
        self.new_trial_button.clicked.connect(self.new_trial)
        self.capture_button = QPushButton("Capture (Space)")
        self.capture_button.setMinimumHeight(40)
        self.capture_button.setStyleSheet("font-weight:bold;font-size:14px;")
        self.capture_button.setToolTip("Capture the PPT now (examiner fallback for the "
                                       "participant's button)")
        self.capture_button.clicked.connect(lambda: self.capture())
        for button in (self.new_trial_button, self.capture_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Space always means Capture
            row.addWidget(button)
        return row

    # ------------------------------------------------------------------ inputs

    def feed(self, sample: PressureLike) -> None:
        """A pressure sample (``timestamp``, ``kpa``); safe on any thread."""
        self._inbox.append(sample.timestamp, sample.kpa)

    def set_response_source(self, source: ResponseSource | None) -> None:
        """Capture at every press from ``source`` (None: Capture button / Space only).

        Call with None before dropping the panel, so the source stops calling it.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if source is not None:
            self._unsubscribe = source.subscribe(self._on_source_thread)

    def _on_source_thread(self, response: Response) -> None:
        if response.kind in self.capture_kinds:
            self._bridge.response.emit(response)  # queued to the GUI thread

    def _on_response(self, response: Response) -> None:
        self.capture(response.timestamp, response.source)

    def set_target_rate(self, rate_kpa_s: float) -> None:
        """Target ramp in kPa/s (whole numbers, as the spin box shows)."""
        self.tracker.set_target_rate(rate_kpa_s)
        if self.rate_spin.value() != rate_kpa_s:
            self.rate_spin.setValue(rate_kpa_s)
        label = self.legend.getLabel(self.target_curve)
        if label is not None:
            label.setText(self._target_text())
        self._redraw()

    def new_trial(self) -> Trial:
        """Start a trial now (from rest it begins when the pressure rises)."""
        self._drain()
        self._notice = ""
        trial = self.tracker.new_trial()
        self._redraw()
        return trial

    def capture(self, timestamp: float | None = None, source: str = "examiner"
                ) -> Capture | None:
        """Capture the PPT at ``timestamp`` (default: now on the program clock)."""
        self._drain()
        when = self.clock.now() if timestamp is None else timestamp
        result = self.tracker.capture(when, source)
        if result is None:
            self._notice = f"Nothing to capture ({source})"
        else:
            self._notice = ""
            self._add_capture_row(result)
        self._redraw()
        return result

    # ------------------------------------------------------------------ drawing

    def refresh(self) -> None:
        """Take the new samples; redraw when shown."""
        if self._drain() and self.isVisible():
            self._redraw()

    def _drain(self) -> int:
        samples = self._inbox.drain()
        trial = self.tracker.trial
        for t, kpa in samples:
            self.tracker.add(t, kpa)
        if self.tracker.trial is not trial:
            self._notice = ""
        return len(samples)

    def _redraw(self) -> None:
        self._draw_plot(self.tracker.trial)
        self._draw_readouts()

    def _draw_plot(self, trial: Trial | None) -> None:
        if trial is None:
            for item in (*self.band_edges, self.target_curve, self.pressure_curve):
                item.setData([], [])
            self.plot.setRange(xRange=(0, MIN_SPAN_S), yRange=(0, 500), padding=0)
            return
        x = np.asarray(trial.times) - trial.t0
        y = np.asarray(trial.kpa)
        span = max(MIN_SPAN_S, float(x[-1]) + 1.0)
        ends = np.array([0.0, span])
        tolerance = self.tracker.settings.tolerance
        self.target_curve.setData(ends, trial.target(ends))
        for edge, sign in zip(self.band_edges, (-1, 1), strict=True):
            edge.setData(ends, trial.p0 + trial.target_kpa_s * (1 + sign * tolerance) * ends)
        self.pressure_curve.setData(x, y)
        top = max(100.0, float(y.max()) * 1.1, float(trial.target(span)) * (1 + tolerance))
        self.plot.setRange(xRange=(0, span), yRange=(0, top), padding=0)
        self._draw_capture(trial.capture)

    def _draw_capture(self, capture: Capture | None) -> None:
        if capture is None:
            self.capture_marker.setData([], [])
            self.capture_text.setText("")
            return
        self.capture_marker.setData([capture.elapsed_s], [capture.kpa])
        self.capture_text.setText(f"PPT {capture.kpa:.0f} kPa ")
        self.capture_text.setPos(capture.elapsed_s, capture.kpa)

    def _draw_readouts(self) -> None:
        latest = self.tracker.latest
        self.pressure_label.setText("— kPa" if latest is None else f"{latest[1]:.0f} kPa")
        rate = self.tracker.current_rate()
        self.rate_label.setText("— kPa/s" if rate is None else f"{rate:.0f} kPa/s")
        pace = self.tracker.pace()
        self.pace_label.setText(pace.label)
        self.pace_label.setStyleSheet(
            f"background:{PACE_COLORS[pace]};color:white;border-radius:5px;"
            f"font-size:17px;font-weight:bold;")
        self.status_label.setText(self._status_text())

    def _status_text(self) -> str:
        trial, onset = self.tracker.trial, self.tracker.settings.onset_kpa
        notice = f"\n{self._notice}" if self._notice else ""
        if trial is None:
            return f"A trial starts when the pressure passes {onset:g} kPa{notice}"
        head = f"Trial {trial.number}: "
        if trial.capture is not None:
            c = trial.capture
            return f"{head}PPT {c.kpa:.0f} kPa at {c.elapsed_s:.1f} s ({c.source}){notice}"
        if not trial.started:
            return f"{head}waiting for the pressure to pass {onset:g} kPa{notice}"
        if not trial.open:
            return f"{head}released, nothing captured{notice}"
        return f"{head}{trial.elapsed_s:.1f} s, waiting for the button{notice}"

    def _add_capture_row(self, capture: Capture) -> None:
        rate = "rate ?" if capture.mean_rate_kpa_s is None \
            else f"{capture.mean_rate_kpa_s:.0f} kPa/s"
        flag = f"  ⚠ {capture.pace.label}" if capture.flagged else ""
        item = QListWidgetItem(f"#{capture.trial}  {capture.kpa:.0f} kPa  @ {rate}{flag}")
        item.setForeground(QColor(PACE_COLORS[capture.pace] if capture.flagged else "#222"))
        self.captures_list.addItem(item)
        self.captures_list.scrollToBottom()
        values = [c.kpa for c in self.tracker.captures]
        flagged = sum(c.flagged for c in self.tracker.captures)
        note = f", {flagged} flagged" if flagged else ""
        self.mean_label.setText(
            f"Mean {statistics.fmean(values):.0f} kPa (n = {len(values)}{note})")

    def _target_text(self) -> str:
        s = self.tracker.settings
        return f"target {s.rate_kpa_s:g} kPa/s ± {s.tolerance * 100:g} %"


def _font(size: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setPixelSize(size)
    font.setBold(bold)
    return font


def _label(text: str, size: int, bold: bool = False, color: str = "#222",
           center: bool = True) -> QLabel:
    label = QLabel(text)
    if center:
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    weight = "font-weight:bold;" if bold else ""
    label.setStyleSheet(f"font-size:{size}px;{weight}color:{color};")
    return label
