"""Live heart rate: the current HR in large text, the RR tachogram and the HR trace.

Draws a :class:`qst_station.live_heart_rate.LiveHeartRate` (a recording subscriber): a 30 Hz
timer copies its snapshot and redraws while the panel is shown; nothing here waits on the
producer. ``python -m qst_station.gui.heart_rate_panel`` shows it on a simulated ECG that
goes out on LSL (this machine only) and comes back through an inlet, as in a real run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from qst_station.live_heart_rate import AVERAGE_BEATS, HeartRateSnapshot, LiveHeartRate

FRAME_MS = 33
WINDOW_S = 120.0  # the plots show this much before now
RR_COLOR = "#1f4e9a"
HR_COLOR = "#c62828"
AVERAGE_COLOR = "#7b1010"
LOST_COLOR = "#9e9e9e"


class HeartRatePanel(QWidget):
    """HR number, RR tachogram and HR trace of one :class:`LiveHeartRate`."""

    def __init__(self, source: LiveHeartRate, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.source, self.window_s = source, window_s
        self.last_snapshot: HeartRateSnapshot | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._build_readouts())
        plots = pg.GraphicsLayoutWidget()
        plots.setBackground("w")
        self.rr_plot = _time_plot(plots, "RR (ms)", "")
        plots.nextRow()
        self.hr_plot = _time_plot(plots, "HR (bpm)", "Time before now (s)")
        self.hr_plot.setXLink(self.rr_plot)
        self.rr_curve = self.rr_plot.plot([], [], pen=pg.mkPen(RR_COLOR, width=2), symbol="o",
                                          symbolSize=5, symbolBrush=RR_COLOR, symbolPen=None)
        self.hr_plot.addLegend(offset=(8, 4), labelTextColor="k", brush=(255, 255, 255, 200))
        self.hr_curve = self.hr_plot.plot([], [], pen=pg.mkPen(HR_COLOR, width=1),
                                          name="beat to beat")
        self.average_curve = self.hr_plot.plot([], [], pen=pg.mkPen(AVERAGE_COLOR, width=3),
                                               name=f"mean of {AVERAGE_BEATS} beats")
        layout.addWidget(plots, stretch=1)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)

    def _build_readouts(self) -> QWidget:
        side = QWidget()
        side.setFixedWidth(190)
        column = QVBoxLayout(side)
        column.setContentsMargins(0, 0, 6, 0)
        self.hr_label = _label("—", 64, bold=True)
        self.unit_label = _label("bpm", 18)
        self.rr_label = _label("RR — ms", 18)
        self.status_label = _label("", 14, bold=True)
        self.status_label.setWordWrap(True)
        self.source_label = _label("", 12, color="#555")
        self.source_label.setWordWrap(True)
        column.addStretch(1)
        for label in (self.hr_label, self.unit_label, self.rr_label, self.status_label):
            column.addWidget(label)
        column.addStretch(1)
        column.addWidget(self.source_label)
        return side

    def refresh(self) -> None:
        """Copy the newest snapshot and redraw (only while shown)."""
        if not self.isVisible():
            return
        snap = self.source.snapshot()
        self.last_snapshot = snap
        self._draw_readouts(snap)
        self._draw_plots(snap)

    def _draw_readouts(self, snap: HeartRateSnapshot) -> None:
        ok = snap.state == "ok" and snap.latest_bpm is not None
        color = HR_COLOR if ok else LOST_COLOR
        self.hr_label.setText(f"{snap.latest_bpm:.0f}" if ok else "—")
        self.hr_label.setStyleSheet(f"font-size:64px;font-weight:bold;color:{color};")
        rr = snap.latest_rr_s
        self.rr_label.setText("RR — ms" if rr is None else f"RR {rr * 1000:.0f} ms")
        if snap.state == "lost":
            quiet = ("no beat yet" if snap.seconds_since_beat is None
                     else f"no beat for {snap.seconds_since_beat:.0f} s")
            status, status_color = f"Signal lost\n{quiet}", HR_COLOR
        elif snap.state == "waiting":
            status, status_color = "Waiting for beats…", "#555"
        else:
            status, status_color = "", "#222"
        self.status_label.setText(status)
        self.status_label.setStyleSheet(f"font-size:14px;font-weight:bold;color:{status_color};")
        self.source_label.setText(snap.problem or snap.source or "No ECG or RR stream")

    def _draw_plots(self, snap: HeartRateSnapshot) -> None:
        now = snap.now if snap.now is not None else 0.0
        first = int(np.searchsorted(snap.beat_times, now - self.window_s - 1.0))
        x = snap.beat_times[first:] - now
        _show(self.rr_curve, x, snap.rr_s[first:] * 1000.0)
        _show(self.hr_curve, x, snap.hr_bpm[first:])
        _show(self.average_curve, x, snap.hr_avg_bpm[first:])
        self.rr_plot.setXRange(-self.window_s, 0.0, padding=0.01)


def _show(curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """Draw ``y`` over ``x`` with breaks at NaN (beats after a gap have no RR)."""
    if np.isfinite(y).any():
        curve.setData(x, y, connect="finite")
    else:
        curve.setData([], [])


def _time_plot(layout: pg.GraphicsLayoutWidget, left: str, bottom: str) -> pg.PlotItem:
    plot = layout.addPlot()
    plot.setLabel("left", left)
    if bottom:
        plot.setLabel("bottom", bottom)
    else:  # the plot below shares the time axis and labels it
        plot.getAxis("bottom").setStyle(showValues=False)
    for side in ("left", "bottom"):  # dark text whatever the global pyqtgraph options
        plot.getAxis(side).setPen("k")
        plot.getAxis(side).setTextPen("k")
    plot.getAxis("left").setWidth(48)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.enableAutoRange(axis="y")
    return plot


def _label(text: str, size: int, bold: bool = False, color: str = "#222") -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    weight = "font-weight:bold;" if bold else ""
    label.setStyleSheet(f"font-size:{size}px;{weight}color:{color};")
    return label


def main() -> int:
    """Show the panel on a simulated ECG sent over LSL and recorded back through an inlet."""
    import sys
    import uuid

    from PySide6.QtWidgets import QApplication

    from qst_station.clock import LslClock
    from qst_station.lsl_inlets import LslInletRecorder
    from qst_station.recording import Recording, SessionInfo
    from sim.ecg import EcgSimulator

    app = QApplication.instance() or QApplication(sys.argv)
    clock = LslClock()
    recording = Recording(clock)
    live = LiveHeartRate(clock=clock)
    recording.subscribe(live)
    with EcgSimulator(clock=clock, name=f"qst-hr-demo-ECG-{uuid.uuid4().hex[:8]}") as ecg:
        inlet = LslInletRecorder(recording, ecg.name, name="ecg")
        inlet.connect()
        recording.start(SessionInfo("SIM001", "demo"))
        panel = HeartRatePanel(live)
        panel.setWindowTitle("qst-station — heart rate (simulated ECG)")
        panel.resize(900, 420)
        panel.show()
        code = app.exec()
        inlet.disconnect()
        recording.stop("success")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
