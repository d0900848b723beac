"""A window with one tab per other bench device (simulated here): connect, watch, act.

Each tab opens its device in a simulator (the embedded default; real ports come from the
station configuration in a later issue), connects on a worker thread, plots the device's
stream from a bounded buffer at 30 Hz and offers a few actions. STOP in the main window
stops every device here too.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from drivers.errors import DeviceError
from qst_station.clock import Clock
from qst_station.gui.ppt_panel import PptPanel
from qst_station.live_buffer import LiveBuffer

COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#555555")
WINDOW_S = 30.0


@dataclass
class DeviceSpec:
    """How to open one simulated device and what to show and offer for it."""

    title: str
    channels: tuple[str, ...]
    unit: str
    open: Callable[[Clock], tuple[Any, Any]]  # -> (driver, started simulator)
    values: Callable[[Any], tuple[float, ...]] = lambda sample: tuple(sample.all)
    actions: list[tuple[str, Callable[[Any, Any], object]]] = field(default_factory=list)
    stop: Callable[[Any], object] = lambda driver: driver.abort()
    view: Callable[[Clock], PptPanel] | None = None  # replaces the rolling plot; fed samples


class _Bridge(QObject):
    status = Signal(str, str)


class DevicePanel(QWidget):
    """One device: connect/disconnect, state, live plot, actions."""

    def __init__(self, spec: DeviceSpec, clock: Clock, executor: ThreadPoolExecutor) -> None:
        super().__init__()
        self.spec, self.clock, self._executor = spec, clock, executor
        self.driver: Any = None
        self.simulator: Any = None
        self.buffer = LiveBuffer(len(spec.channels))
        self._bridge = _Bridge()
        self._bridge.status.connect(self._show)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.kind = "disconnected"  # connection state: disconnected/busy/connected/lost
        self.state = QLabel("Not connected")
        self.connect_button = QPushButton("Connect (simulated)")
        self.connect_button.clicked.connect(self.connect_device)
        self.disconnect_button = QPushButton("Disconnect")
        self.disconnect_button.clicked.connect(self.disconnect_device)
        self.disconnect_button.setEnabled(False)
        bar.addWidget(self.state, stretch=1)
        bar.addWidget(self.connect_button)
        bar.addWidget(self.disconnect_button)
        layout.addLayout(bar)
        actions = QHBoxLayout()
        self.action_buttons: list[QPushButton] = []
        for label, action in spec.actions:
            button = QPushButton(label)
            button.setEnabled(False)
            button.clicked.connect(lambda _=False, a=action, n=label: self._run(n, a))
            actions.addWidget(button)
            self.action_buttons.append(button)
        actions.addStretch(1)
        layout.addLayout(actions)
        self.view = spec.view(clock) if spec.view is not None else None
        self.curves: list[pg.PlotDataItem] = []
        layout.addWidget(self.view if self.view is not None else self._build_plot(), stretch=1)

    def _build_plot(self) -> pg.PlotWidget:
        self.plot = pg.PlotWidget()
        self.plot.setLabel("left", self.spec.unit)
        self.plot.setLabel("bottom", "Time before now", units="s")
        self.plot.setXRange(-WINDOW_S, 0, padding=0)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(10, 10))
        self.curves = [self.plot.plot([], [], name=name, pen=pg.mkPen(color, width=2))
                       for name, color in zip(self.spec.channels, COLORS, strict=False)]
        return self.plot

    def connect_device(self) -> None:
        self.connect_button.setEnabled(False)
        self._show("busy", "Connecting…")

        def work() -> None:
            self.driver, self.simulator = self.spec.open(self.clock)
            self.driver.subscribe(self._on_sample)
            self.driver.on_status(lambda kind, msg: self._bridge.status.emit(kind, msg))
            try:
                self.driver.connect()
            except Exception:
                self._close()
                raise
            self._bridge.status.emit("connected", f"{self.spec.title}: connected (simulated)")

        self._submit("connect", work)

    def disconnect_device(self) -> None:
        self._submit("disconnect", self._close)

    def stop(self) -> None:
        """STOP: on its own thread, never behind queued work."""
        if self.driver is not None:
            threading.Thread(target=self._stop_now, daemon=True).start()

    def _stop_now(self) -> None:
        with contextlib.suppress(DeviceError):
            self.spec.stop(self.driver)

    def _run(self, name: str, action: Callable[[Any, Any], object]) -> None:
        self._submit(name, lambda: action(self.driver, self.simulator))

    def _submit(self, what: str, work: Callable[[], object]) -> None:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - shown to the operator
                self._bridge.status.emit("error", f"{what}: {exc}")

        self._executor.submit(run)

    def _close(self) -> None:
        driver, simulator, self.driver, self.simulator = self.driver, self.simulator, None, None
        if driver is not None:
            driver.disconnect()
        if simulator is not None:
            simulator.stop()
        self._bridge.status.emit("disconnected", "Not connected")

    def _on_sample(self, sample: Any) -> None:
        self.buffer.append(sample.timestamp, self.spec.values(sample))
        if self.view is not None:
            self.view.feed(sample)  # thread-safe: the view drains it on the GUI thread

    def _show(self, kind: str, message: str) -> None:
        if kind in ("connected", "disconnected", "lost", "busy"):
            self.kind = kind
        elif kind == "error" and self.kind == "busy" and self.driver is None:
            self.kind = "disconnected"  # the connection attempt failed
        connected = self.kind == "connected"
        self.connect_button.setEnabled(self.kind in ("disconnected", "lost"))
        self.disconnect_button.setEnabled(connected or self.kind == "lost")
        for button in self.action_buttons:
            button.setEnabled(connected)
        color = {"error": "#c62828", "lost": "#c62828", "warning": "#b26a00"}.get(kind, "#222")
        self.state.setStyleSheet(f"color:{color};font-weight:bold;")
        self.state.setText(message)

    def refresh(self) -> None:
        if not self.curves:
            return  # a view of its own (PptPanel) redraws on its own timer
        times, values = self.buffer.snapshot()
        if not len(times):
            return
        now = self.clock.now()
        keep = times >= now - WINDOW_S - 1.0
        for i, curve in enumerate(self.curves):
            curve.setData(times[keep] - now, values[keep, i])

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._close()


class DevicesWindow(QWidget):
    """Tabs for the algometer, cuff, Medoc and scanner trigger box."""

    def __init__(self, clock: Clock, specs: list[DeviceSpec] | None = None) -> None:
        super().__init__()
        self.setWindowTitle("qst-station — other devices (simulated)")
        self.resize(900, 560)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="devices")
        self.tabs = QTabWidget()
        self.panels = [DevicePanel(spec, clock, self._executor)
                       for spec in (specs if specs is not None else default_specs())]
        for panel in self.panels:
            self.tabs.addTab(panel, panel.spec.title)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(33)

    def refresh(self) -> None:
        self.panels[self.tabs.currentIndex()].refresh()

    def stop_all(self) -> None:
        for panel in self.panels:
            panel.stop()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._timer.stop()
        for panel in self.panels:
            panel.shutdown()
        self._executor.shutdown(wait=True, cancel_futures=True)
        super().closeEvent(event)


def default_specs() -> list[DeviceSpec]:
    from drivers.algometer import AlgometerDriver
    from drivers.cuff import CuffDriver
    from drivers.cuff_program import Inc
    from drivers.medoc import MedocDriver
    from drivers.trigger_box import SerialTriggerSource
    from drivers.volumes import VolumeCounter
    from sim.algometer import SimulatedAlgometer
    from sim.cuff import SimulatedCuff
    from sim.medoc_server import SimulatedMedoc
    from sim.scanner import SimulatedScanner

    def algometer(clock: Clock) -> tuple[Any, Any]:
        simulator = SimulatedAlgometer(clock).start()
        return AlgometerDriver(simulator.port, clock=clock), simulator

    def cuff(clock: Clock) -> tuple[Any, Any]:
        simulator = SimulatedCuff(clock).start()
        return CuffDriver(simulator.port, clock=clock), simulator

    def medoc(clock: Clock) -> tuple[Any, Any]:
        simulator = SimulatedMedoc(clock).start()
        return MedocDriver("127.0.0.1", simulator.port, clock=clock), simulator

    def scanner(clock: Clock) -> tuple[Any, Any]:
        simulator = SimulatedScanner(tr_s=2.0, clock=clock)
        driver = SerialTriggerSource(simulator.port, clock=clock, counter=VolumeCounter(2.0))
        return _StartsScanner(driver, simulator), simulator

    def cuff_ramp(driver: Any, simulator: Any) -> None:
        driver.program(1, [Inc(1.0, 100.0)])
        driver.start()

    def medoc_run(driver: Any, simulator: Any) -> None:
        driver.select_program(2)
        driver.start()
        driver.trigger()

    return [
        DeviceSpec("Algometer", ("pressure",), "kPa", algometer,
                   actions=[("Examiner presses (50 kPa/s)", lambda d, s: s.press(50.0)),
                            ("Release", lambda d, s: s.release()),
                            ("Zero", lambda d, s: d.tare())],
                   stop=lambda d: None, view=PptPanel),
        DeviceSpec("Cuff (OCP/1)", ("outlet 1", "target 1", "outlet 2", "target 2", "VAS cm"),
                   "kPa / cm", cuff, values=lambda s: tuple(s.all[:5]),
                   actions=[("Ramp 1 kPa/s to VAS max", cuff_ramp),
                            ("Stop", lambda d, s: d.stop())],
                   stop=lambda d: d.stop()),
        DeviceSpec("Medoc TSA-II", ("temperature",), "°C", medoc,
                   actions=[("Run program 2 (44 °C)", medoc_run),
                            ("Abort", lambda d, s: d.abort())]),
        DeviceSpec("Scanner triggers", ("volume",), "volume", scanner,
                   values=lambda v: (float(v.index),), stop=lambda d: None),
    ]


class _StartsScanner:
    """The trigger source, with the simulated scanner starting once it listens."""

    def __init__(self, source: Any, scanner: Any) -> None:
        self._source, self._scanner = source, scanner

    def connect(self) -> None:
        self._source.connect()
        self._scanner.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)
