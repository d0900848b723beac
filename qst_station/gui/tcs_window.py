"""The TCS II window: connect, live temperatures, a per-zone stimulus form, Start and Stop.

Device I/O never runs on the GUI thread: commands go to a single worker thread, the
driver's reader thread fills a :class:`LiveBuffer`, and a 30 Hz timer redraws from it.
Stop (also Esc) aborts on its own thread so it never waits behind queued commands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from drivers.errors import DeviceError
from drivers.tcs import TemperatureSample
from qst_station.clock import Clock
from qst_station.live_buffer import LiveBuffer
from qst_station.manual_session import ManualSession
from qst_station.station import Thermode

CHANNELS = ("neutral", "zone 1", "zone 2", "zone 3", "zone 4", "zone 5")
COLORS = ("#888888", "#d62728", "#ff7f0e", "#2ca02c", "#1f77b4", "#9467bd")
WINDOW_S = 30.0
FRAME_MS = 33


class _Bridge(QObject):
    """Carries driver callbacks (other threads) onto the GUI thread."""

    status = Signal(str, str)
    done = Signal(str, str)  # (what, error message or "")


class ZoneRow:
    """One zone's stimulus fields."""

    def __init__(self, zone: int, grid: QGridLayout, limits_min: float, limits_max: float,
                 max_rate: float) -> None:
        self.zone = zone
        self.use = QCheckBox(f"Zone {zone}")
        self.use.setChecked(True)
        self.target = _spin(limits_min, limits_max, 40.0, 1, " °C")
        self.rise = _spin(0.1, max_rate, 10.0, 1, " °C/s")
        self.ret = _spin(0.1, max_rate, 10.0, 1, " °C/s")
        self.duration = QSpinBox()
        self.duration.setRange(10, 99999)
        self.duration.setSingleStep(100)
        self.duration.setValue(2000)
        self.duration.setSuffix(" ms")
        for col, widget in enumerate((self.use, self.target, self.rise, self.ret, self.duration)):
            grid.addWidget(widget, zone, col)


def _spin(low: float, high: float, value: float, decimals: int, suffix: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setValue(min(max(value, low), high))
    box.setSuffix(suffix)
    box.setSingleStep(0.5)
    return box


class TcsWindow(QMainWindow):
    """Main window for one TCS II (real or simulated)."""

    def __init__(self, thermode: Thermode, clock: Clock) -> None:
        super().__init__()
        self.thermode = thermode
        self.driver = thermode.driver
        self.clock = clock
        self.buffer = LiveBuffer(len(CHANNELS))
        self.session = ManualSession(self.driver, clock, thermode.description)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcs-commands")
        self._pending: list[Future[None]] = []
        self._stop_requested = threading.Event()
        self.devices: QWidget | None = None
        self._bridge = _Bridge()
        self._bridge.status.connect(self._on_status)
        self._bridge.done.connect(self._on_done)
        self.driver.subscribe(self._on_sample)
        self.driver.on_status(lambda kind, msg: self._bridge.status.emit(kind, msg))
        self.setWindowTitle(f"qst-station — {thermode.description}")
        self.resize(1200, 720)
        self._build()
        self._set_state("disconnected", "Not connected")
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.emergency_stop,
                  context=Qt.ShortcutContext.ApplicationShortcut)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        root = QWidget()
        layout = QVBoxLayout(root)
        layout.addLayout(self._build_top_bar())
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "background:#fde2e1;color:#8a1c1c;border:1px solid #e0a0a0;padding:6px;")
        self.banner.hide()
        layout.addWidget(self.banner)
        body = QHBoxLayout()
        body.addLayout(self._build_plot_area(), stretch=3)
        body.addWidget(self._build_form(), stretch=2)
        layout.addLayout(body, stretch=1)
        self.setCentralWidget(root)
        self.statusBar().showMessage("Ready")

    def _build_top_bar(self) -> QHBoxLayout:
        bar = QHBoxLayout()
        self.device_label = QLabel(self.thermode.description)
        self.device_label.setStyleSheet("font-weight:bold;")
        self.state_label = QLabel()
        self.connect_button = QPushButton("Connect")
        self.connect_button.clicked.connect(self.connect_device)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_device)
        self.stop_button = QPushButton("STOP  (Esc)")
        self.stop_button.setMinimumSize(180, 48)
        self.stop_button.setStyleSheet(
            "QPushButton{background:#c62828;color:white;font-weight:bold;font-size:18px;"
            "border-radius:6px;} QPushButton:pressed{background:#8e0000;}")
        self.stop_button.setToolTip("Abort every stimulation now; the probe returns to baseline")
        self.stop_button.clicked.connect(self.emergency_stop)
        for widget in (self.device_label, self.state_label):
            bar.addWidget(widget)
        bar.addStretch(1)
        self.participant_edit = QLineEdit()
        self.participant_edit.setPlaceholderText("participant code")
        self.participant_edit.setMaximumWidth(140)
        self.visit_edit = QLineEdit()
        self.visit_edit.setPlaceholderText("visit")
        self.visit_edit.setMaximumWidth(90)
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record temperatures, stimuli and STOPs into a session file "
                                      "(sessions/) and publish them on LSL")
        self.record_button.toggled.connect(self.toggle_recording)
        for widget in (self.participant_edit, self.visit_edit, self.record_button):
            bar.addWidget(widget)
        self.devices_button = QPushButton("Other devices…")
        self.devices_button.setToolTip("Algometer, cuff, Medoc and scanner triggers (simulated)")
        self.devices_button.clicked.connect(self.show_devices)
        for widget in (self.devices_button, self.connect_button, self.disconnect_button,
                       self.stop_button):
            bar.addWidget(widget)
        return bar

    def toggle_recording(self, on: bool) -> None:
        """Start or stop recording this thermode into a session file."""
        if not on:
            path = self.session.stop()
            if path is not None:
                self.statusBar().showMessage(f"Recorded {path}", 10000)
            self.record_button.setText("● Record")
            return
        try:
            path = self.session.start(self.participant_edit.text(), self.visit_edit.text())
        except (ValueError, RuntimeError, OSError) as exc:
            self._show_error(f"record: {exc}")
            self.record_button.blockSignals(True)
            self.record_button.setChecked(False)
            self.record_button.blockSignals(False)
            return
        self.record_button.setText("■ Recording")
        self.statusBar().showMessage(f"Recording to {path}")

    def show_devices(self) -> None:
        """Open (or raise) the window with the other bench devices."""
        if self.devices is None:
            from qst_station.gui.devices_window import DevicesWindow

            self.devices = DevicesWindow(self.clock)
        self.devices.show()
        self.devices.raise_()

    def _build_plot_area(self) -> QVBoxLayout:
        column = QVBoxLayout()
        readouts = QHBoxLayout()
        self.readouts: list[QLabel] = []
        for name, color in zip(CHANNELS, COLORS, strict=True):
            label = QLabel(f"{name}\n—")
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet(f"color:{color};font-size:15px;font-weight:bold;")
            readouts.addWidget(label)
            self.readouts.append(label)
        column.addLayout(readouts)
        pg.setConfigOptions(antialias=True, background="w", foreground="k")
        self.plot = pg.PlotWidget()
        self.plot.setLabel("left", "Temperature", units="°C")
        self.plot.setLabel("bottom", "Time before now", units="s")
        self.plot.setXRange(-WINDOW_S, 0, padding=0)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(10, 10))
        limits = self.driver.limits
        self.plot.addLine(y=limits.max_celsius, pen=pg.mkPen("#c62828", style=Qt.PenStyle.DashLine))
        self.plot.getPlotItem().setClipToView(True)
        self.curves = [
            self.plot.plot([], [], name=name, pen=pg.mkPen(color, width=2))
            for name, color in zip(CHANNELS, COLORS, strict=True)
        ]
        column.addWidget(self.plot, stretch=1)
        return column

    def _build_form(self) -> QGroupBox:
        limits = self.driver.limits
        box = QGroupBox("Stimulus")
        outer = QVBoxLayout(box)
        base_row = QHBoxLayout()
        base_row.addWidget(QLabel("Baseline"))
        self.baseline = _spin(20.0, 44.0, self.driver.baseline, 1, " °C")
        base_row.addWidget(self.baseline)
        base_row.addStretch(1)
        outer.addLayout(base_row)
        grid = QGridLayout()
        for col, title in enumerate(("", "Target", "Rise", "Return", "Duration")):
            grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        self.rows = [
            ZoneRow(z, grid, limits.min_celsius, limits.max_celsius, limits.max_rate)
            for z in range(1, 6)
        ]
        outer.addLayout(grid)
        hint = QLabel(
            f"Limits: {limits.min_celsius:g}–{limits.max_celsius:g} °C, rates up to "
            f"{limits.max_rate:g} °C/s; time at heat is capped by the dose envelope, ramps "
            f"and return included (e.g. {limits.max_hold_s(46.5):.0f} s at 46.5 °C, "
            f"{limits.max_hold_s(min(50.0, limits.max_celsius)):.0f} s at "
            f"{min(50.0, limits.max_celsius):g} °C). Duration covers ramp + plateau.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color:#555;")
        outer.addWidget(hint)
        self.start_button = QPushButton("Start stimulation")
        self.start_button.setMinimumHeight(40)
        self.start_button.setStyleSheet("font-weight:bold;font-size:15px;")
        self.start_button.clicked.connect(self.start_stimulation)
        outer.addWidget(self.start_button)
        outer.addStretch(1)
        return box

    # ------------------------------------------------------------------ actions

    def _submit(self, what: str, work: Callable[[], object]) -> None:
        def run() -> None:
            try:
                work()
            except DeviceError as exc:
                self._bridge.done.emit(what, str(exc))
            except Exception as exc:  # noqa: BLE001 - shown to the operator, never swallowed
                self._bridge.done.emit(what, f"{type(exc).__name__}: {exc}")
            else:
                self._bridge.done.emit(what, "")

        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._executor.submit(run))

    def connect_device(self) -> None:
        self._set_state("busy", "Connecting…")
        if self.driver.connected:
            self._submit("connect", self.driver.reconnect)
        else:
            self._submit("connect", self.driver.connect)

    def disconnect_device(self) -> None:
        self._submit("disconnect", self.driver.disconnect)

    def start_stimulation(self) -> None:
        rows = [r for r in self.rows if r.use.isChecked()]
        if not rows:
            self._show_error("Select at least one zone")
            return
        baseline = self.baseline.value()
        plan = [(r.zone, r.target.value(), r.rise.value(), r.ret.value(), r.duration.value())
                for r in rows]

        stop = self._stop_requested
        stop.clear()
        generation = self.driver.generation  # a STOP after this click cancels the start

        def step(call: Callable[[], None]) -> None:
            if stop.is_set():
                raise DeviceError("start cancelled by STOP")
            call()

        def work() -> None:
            driver = self.driver
            if abs(driver.settings.baseline - baseline) > 1e-6:
                step(lambda: driver.set_baseline(baseline))
            step(lambda: driver.enable_zones([zone for zone, *_ in plan]))
            for zone, target, rise, ret, duration in plan:
                step(lambda z=zone, t=target, r=rise, q=ret, d=duration: driver.configure(
                    z, target=t, rise=r, ret=q, duration_ms=d))
            step(lambda: driver.start(generation=generation))

        self.banner.hide()
        self.session.event("stimulus_onset", {
            "device": "thermode", "baseline_c": baseline, "zones": [z for z, *_ in plan],
            "target": max(t for _, t, *_ in plan), "unit": "degC",
            "plan": [{"zone": z, "target_c": t, "rise_c_s": r, "return_c_s": q,
                      "duration_ms": d} for z, t, r, q, d in plan]})
        self._submit("start", work)

    def emergency_stop(self) -> None:
        """Abort now, on a thread of its own; queued and running command jobs stop.

        Every device in the other-devices window is stopped too.
        """
        self._stop_requested.set()
        self.session.event("device", {"device": "thermode", "state": "emergency-stop",
                                      "message": "STOP pressed"})
        if self.devices is not None:
            self.devices.stop_all()
        for future in self._pending:
            future.cancel()
        self.statusBar().showMessage("STOP: aborting…")

        def abort() -> None:
            try:
                self.driver.abort()
            except DeviceError as exc:
                self._bridge.done.emit("stop", str(exc))
            else:
                self._bridge.done.emit("stop", "")

        threading.Thread(target=abort, name="tcs-stop", daemon=True).start()

    # ------------------------------------------------------------------ callbacks

    def _on_sample(self, sample: TemperatureSample) -> None:
        self.buffer.append(sample.timestamp, sample.all)

    def _on_status(self, kind: str, message: str) -> None:
        if kind == "connected":
            self._set_state("connected", message)
        elif kind == "disconnected":
            self._set_state("disconnected", message)
        elif kind == "lost":
            self._set_state("lost", message)
            self._show_error(message)
        elif kind == "error":
            self._show_error(message)
        else:
            self.statusBar().showMessage(message, 5000)

    def _on_done(self, what: str, error: str) -> None:
        if error:
            self._show_error(f"{what}: {error}")
            if what == "connect":
                self._set_state("disconnected", "Not connected")
        elif what == "start":
            self.statusBar().showMessage("Stimulation started", 5000)
        elif what == "stop":
            self.statusBar().showMessage("Stopped: device returning to baseline", 8000)

    def _show_error(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message)

    def _set_state(self, state: str, message: str) -> None:
        self.state = state
        colors = {"connected": "#2e7d32", "busy": "#f9a825", "lost": "#c62828"}
        text = {"connected": "Connected", "busy": "Working…", "lost": "Connection lost"}
        self.state_label.setText(f"  ● {text.get(state, 'Disconnected')}")
        self.state_label.setStyleSheet(f"color:{colors.get(state, '#777')};font-weight:bold;")
        connected = state == "connected"
        self.connect_button.setEnabled(state in ("disconnected", "lost"))
        self.connect_button.setText("Reconnect" if state == "lost" else "Connect")
        self.disconnect_button.setEnabled(connected)
        self.start_button.setEnabled(connected)
        self.statusBar().showMessage(message)

    # ------------------------------------------------------------------ drawing

    def refresh(self) -> None:
        """Redraw from the live buffer (called at ~30 Hz); while recording, from the
        recording's own live buffer (the plot is then one of its subscribers)."""
        live = self.session.live if self.session.active else None
        source = live.buffers.get("thermode") if live is not None else None
        times, values = (source or self.buffer).snapshot()
        if not len(times):
            return
        now = self.clock.now()
        keep = times >= now - WINDOW_S - 1.0
        x = times[keep] - now
        for i, curve in enumerate(self.curves):
            curve.setData(x, values[keep, i])
        self.start_button.setEnabled(self.state == "connected" and not self.driver.busy)
        latest = values[-1]
        for label, name, value in zip(self.readouts, CHANNELS, latest, strict=True):
            label.setText(f"{name}\n{value:.1f} °C")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._timer.stop()
        self.session.stop()
        for future in self._pending:
            future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.devices is not None:
            self.devices.close()
        self.thermode.close()
        super().closeEvent(event)


def big_font(size: int) -> QFont:
    font = QFont()
    font.setPointSize(size)
    return font
