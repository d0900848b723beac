"""Devices panel: the station's devices, their limits and status, ports, connection tests.

Without a run it lists the station configuration's devices (or, with no configuration, the
simulated devices protocol runs use). :meth:`DevicesPanel.attach` shows a run's own devices
once its station is built (``live_run.session.station.devices``) and follows their ``device``
events (connected, lost, error, warning) from ``live_run.feed``. Everything slow - listing
serial ports, testing a connection - runs on a worker thread; a timer picks up the results,
so the GUI thread never waits on a device.

The console keeps no device open between runs: "Test connection" opens a configured TCS II
with its driver, reads its identity and firmware and closes it again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from serial.tools import list_ports

from qst_station.clock import Clock, LslClock
from qst_station.config import ENV_VAR, LslInletConfig, StationConfig, TcsConfig
from qst_station.device_config import (
    AlgometerConfig,
    ButtonBoxConfig,
    CuffConfig,
    LslTriggerConfig,
    MedocConfig,
    TriggerBoxConfig,
)

FRAME_MS = 150
COLUMNS = ("Device", "Kind", "Port / address", "Limits", "Status", "Details")
PORT_COLUMNS = ("Port", "Description", "Manufacturer", "VID:PID", "Serial no.", "Used by")
STATUS_COL, DETAILS_COL = 4, 5
KINDS = {"tcs2": "TCS II thermode", "medoc": "Medoc TSA-II / Pathway",
         "wagner-fdix": "Algometer (Wagner FDIX)", "ocp1-cuff": "Cuff (OCP/1)",
         "trigger-box": "Scanner trigger box", "lsl-markers": "Scanner triggers (LSL)",
         "button-box": "Button box", "lsl-inlet": "LSL stream", "examiner": "Examiner",
         "rating-scale": "Rating scale"}
RUN_NAMES = {"tcs2": "thermode", "wagner-fdix": "algometer", "ocp1-cuff": "cuff",
             "trigger-box": "scanner", "lsl-inlet": "ecg", "examiner": "examiner"}
COLOURS = {"connected": "#2e7d32", "simulated": "#1565c0", "lost": "#ef6c00",
           "error": "#c62828"}
NOT_CONNECTED, SIMULATED, CONNECTING = "not connected", "simulated", "connecting…"


@dataclass
class DeviceRow:
    """One line of the table."""

    name: str
    kind: str  # driver name, e.g. "tcs2"
    address: str
    limits: str = ""
    status: str = NOT_CONNECTED
    details: str = ""
    tip: str = ""  # the limits in full
    config: Any = None  # the configuration entry (None for a run's devices)

    @property
    def testable(self) -> bool:
        return isinstance(self.config, TcsConfig)


@dataclass(frozen=True)
class PortInfo:
    """One serial port as ``comports()`` describes it."""

    device: str
    description: str
    vid_pid: str
    serial_number: str
    manufacturer: str

    @classmethod
    def of(cls, port: Any) -> PortInfo:
        vid, pid = getattr(port, "vid", None), getattr(port, "pid", None)
        return cls(port.device, _text(getattr(port, "description", "")),
                   f"{vid:04X}:{pid:04X}" if vid is not None and pid is not None else "",
                   _text(getattr(port, "serial_number", "")),
                   _text(getattr(port, "manufacturer", "")))


def _text(value: object) -> str:
    return "" if value in (None, "n/a") else str(value)


def one_line(error: BaseException) -> str:
    """An exception as one line (its type when it says nothing)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


# -------------------------------------------------------------------- what the table shows

def uses_simulated_default(config: StationConfig) -> bool:
    """True when no configuration file names the devices (the embedded default)."""
    return not config.devices or config.source.startswith("embedded default")


def thermal_limits(min_c: float, max_c: float, rate: str, hold_s: float | None = None
                   ) -> str:
    text = f"{min_c:g}–{max_c:g} °C · {rate}"
    if hold_s is not None and math.isfinite(hold_s):
        text += f" · hold ≤{hold_s:g} s at {max_c:g} °C"
    return text


def describe(name: str, device: Any) -> DeviceRow:
    """A configuration entry as a table row (status: simulated or not connected)."""
    address, limits, tip = getattr(device, "port", ""), "", ""
    if isinstance(device, TcsConfig):
        lim = device.limits.to_limits()
        limits = thermal_limits(lim.min_celsius, lim.max_celsius, f"≤{lim.max_rate:g} °C/s",
                                lim.max_hold_s(lim.max_celsius))
        tip = (f"baseline {device.baseline:g} °C; follow heartbeat {lim.follow_heartbeat_s:g} s"
               "; dose envelope " + ", ".join(f"{t:g} °C ≤{s:g} s" for t, s in lim.envelope))
    elif isinstance(device, MedocConfig):
        address = f"{device.host}:{device.port}"
        programs = ", ".join(map(str, device.allowed_programs or [])) or "any"
        limits = f"{device.min_celsius:g}–{device.max_celsius:g} °C · programs {programs}"
        tip = f"thermode {device.thermode}"
    elif isinstance(device, CuffConfig):
        limits = f"≤{device.max_kpa:g} kPa · stop by {device.stop_mode}"
    elif isinstance(device, AlgometerConfig):
        limits = f"probe {device.probe_area_cm2:g} cm² · {device.rate_hz} Hz"
    elif isinstance(device, TriggerBoxConfig):
        tr = f"TR {device.tr_s:g} s" if device.tr_s else "TR estimated"
        limits = f"trigger {device.character!r} · {tr} · {device.dummies} dummies"
    elif isinstance(device, LslTriggerConfig):
        address = f"LSL {device.stream}"
        limits = f"match {device.match!r}" if device.match else "every marker"
    elif isinstance(device, ButtonBoxConfig):
        limits = "keys " + " ".join(f"{k}→{v}" for k, v in device.press_map.items())
    elif isinstance(device, LslInletConfig):
        address = f"LSL {device.stream}" if device.stream else f"LSL {device.prop}={device.value}"
        limits = f"gap after {device.lost_after_s:g} s silent"
    simulated = bool(getattr(device, "simulated", False))
    if simulated:
        address = "built-in simulator"
    return DeviceRow(name, device.driver, str(address), limits,
                     SIMULATED if simulated else NOT_CONNECTED, tip=tip, config=device)


def config_rows(config: StationConfig) -> list[DeviceRow]:
    return [describe(name, device) for name, device in config.devices.items()]


def simulated_rows() -> list[DeviceRow]:
    """The simulated devices protocol runs build for their roles."""
    defaults = {"thermode": TcsConfig(), "cuff": CuffConfig(driver="ocp1-cuff"),
                "algometer": AlgometerConfig(driver="wagner-fdix"),
                "buttons": ButtonBoxConfig(driver="button-box"),
                "scanner": TriggerBoxConfig(driver="trigger-box", tr_s=2.0)}
    rows = [describe(name, device) for name, device in defaults.items()]
    rows.append(DeviceRow("ecg", "lsl-inlet", "LSL stream on this machine",
                          "simulated ECG, 500 Hz", SIMULATED))
    for row in rows:
        row.address = "simulator on a pseudo-terminal" if row.kind != "lsl-inlet" else row.address
        row.details = "built when a protocol needs it"
        row.config = None
    return rows


def run_rows(station: Any) -> list[DeviceRow]:
    """A run's devices (``station.devices``), with limits from its capabilities."""
    capabilities: dict[str, Any] = dict(getattr(station, "capabilities", {}) or {})
    drivers: dict[str, Any] = dict(getattr(station, "drivers", {}) or {})
    rows = []
    for entry in list(getattr(station, "devices", []) or []):
        kind = str(entry.get("kind", "?"))
        name = RUN_NAMES.get(kind, kind)
        address = entry.get("port") or (f"LSL {entry['stream']}" if "stream" in entry else "")
        details = " ".join(p for p in (entry.get("identity", ""),
                                       entry.get("firmware", "")) if p)
        connected = getattr(drivers.get(name), "connected", False) is True
        rows.append(DeviceRow(name, kind, str(address),
                              capability_text(capabilities.get(name), drivers.get(name)),
                              "connected" if connected else SIMULATED, details))
    button_sim = getattr(station, "button_sim", None)
    if button_sim is not None:
        rows.append(DeviceRow("buttons", "button-box", str(button_sim.port), "", SIMULATED))
    if getattr(station, "scale", None) is not None:
        rows.append(DeviceRow("rating", "rating-scale", "participant screen", "0–100",
                              SIMULATED))
    return rows


def capability_text(caps: Any, driver: Any = None) -> str:
    """Limits as a run's capabilities (and the driver's dose envelope) state them."""
    if caps is None:
        return ""
    if hasattr(caps, "max_celsius"):
        limits = getattr(driver, "limits", None)
        hold = limits.max_hold_s(caps.max_celsius) if hasattr(limits, "max_hold_s") else None
        rate = f"rise ≤{caps.max_rise_rate:g}, return ≤{caps.max_return_rate:g} °C/s"
        return thermal_limits(caps.min_celsius, caps.max_celsius, rate, hold)
    if hasattr(caps, "max_kpa"):
        text = f"≤{caps.max_kpa:g} kPa"
        if getattr(caps, "outlets", ()):
            text += " · outlets " + ", ".join(map(str, caps.outlets))
        if getattr(caps, "max_rate_kpa_s", None):
            text += f" · ≤{caps.max_rate_kpa_s:g} kPa/s"
        return text
    return ""


def apply_event(row: DeviceRow, state: str, message: str) -> None:
    """A ``device`` event's state and message on ``row``."""
    if state == "connected":
        row.status, row.details = "connected", message
    elif state == "disconnected":
        row.status, row.details = NOT_CONNECTED, message
    elif state == "lost":
        row.status, row.details = "lost", message
    elif state == "error":
        row.status, row.details = f"error: {message}", message
    else:  # warning, stopped...: the status stays
        row.details = f"{state}: {message}"


# -------------------------------------------------------------------- worker-thread work

def list_serial_ports() -> list[PortInfo]:
    """The serial ports of this computer (may take a while: run it off the GUI thread)."""
    return sorted((PortInfo.of(p) for p in list_ports.comports()), key=lambda p: p.device)


def probe_thermode(config: StationConfig, name: str, clock: Clock) -> str:
    """Open the TCS II entry ``name`` with its driver, identify it, close it; one line."""
    from qst_station.station import open_thermode

    only = config.model_copy(update={"devices": {name: config.devices[name]}})
    thermode = open_thermode(only, clock)
    try:
        info = thermode.driver.connect()
    finally:
        thermode.close()
    return (f"{info.identity}, firmware {info.firmware}, probe {info.probe_id} "
            f"({info.probe_type}); disconnected again")


# -------------------------------------------------------------------- the widget

class DevicesPanel(QWidget):
    """Configured (or simulated) devices, their status, ports and connection tests."""

    def __init__(self, config: StationConfig, clock: Clock | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config, self.clock = config, clock or LslClock()
        self.simulated_default = uses_simulated_default(config)
        self.rows: list[DeviceRow] = []
        self.ports: list[PortInfo] = []
        self.live_run: Any = None
        self.tcs_window: QWidget | None = None
        self.devices_window: QWidget | None = None
        self._cursor = 0
        self._run_devices = -1  # how many run devices the table shows (-1: none yet)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="devices-panel")
        self._ports_job: Future[list[PortInfo]] | None = None
        self._tests: dict[str, Future[str]] = {}
        self._build()
        self.show_config()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)

    # ---------------------------------------------------------------- layout
    def _build(self) -> None:
        self.config_label = QLabel(self._config_text())
        self.config_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.config_label.setWordWrap(True)
        self.mode_label = QLabel()
        self.mode_label.setWordWrap(True)
        self.table = _table(COLUMNS)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.horizontalHeader().setSectionResizeMode(
            STATUS_COL, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(STATUS_COL, 250)  # long errors: elided, full in the tooltip
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(lambda: self.test_connection())
        self.ports_button = QPushButton("Find ports")
        self.ports_button.clicked.connect(lambda: self.find_ports())
        self.tcs_button = QPushButton("Manual TCS II control…")
        self.tcs_button.clicked.connect(self.open_manual_tcs)
        self.other_button = QPushButton("Other devices…")
        self.other_button.clicked.connect(self.open_other_devices)
        buttons = QHBoxLayout()
        for button in (self.test_button, self.ports_button, self.tcs_button, self.other_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.ports_label = QLabel("Serial ports on this computer (put the port of a device "
                                  "into the configuration file):")
        self.ports_table = _table(PORT_COLUMNS)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        note = QLabel("The console keeps no device open between runs: Test connection opens "
                      "the device, reads its identity and firmware, and closes it again.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #616161")
        layout = QVBoxLayout(self)
        for widget in (self.config_label, self.mode_label, self.table):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        for widget in (self.message, self.ports_label, self.ports_table, note):
            layout.addWidget(widget)
        layout.setStretch(2, 3)
        self.ports_label.hide()
        self.ports_table.hide()

    def _config_text(self) -> str:
        if self.config.source.startswith("embedded default"):
            return (f"Configuration: none (simulated devices). Name a file with --config FILE "
                    f"or ${ENV_VAR}; check it with `qst-station config check FILE`.")
        path = Path(self.config.source)
        shown = path.resolve() if path.exists() else path
        return f"Configuration: {shown}"

    # ---------------------------------------------------------------- views
    def show_config(self) -> None:
        """The configuration's devices (or the simulated ones when none are configured)."""
        if self.simulated_default:
            self.mode_label.setText(
                "<b>No devices configured: protocol runs use simulated devices</b> (TCS II, "
                "cuff, algometer, button box, scanner, ECG), each built when a protocol needs "
                "it:")
            self.rows = simulated_rows()
        else:
            self.mode_label.setText(f"<b>Configured devices</b> ({len(self.config.devices)})")
            self.rows = config_rows(self.config)
        self._fill()

    def attach(self, live_run: Any) -> None:
        """Follow ``live_run``: its devices once built, their status from its event feed."""
        self.live_run, self._cursor, self._run_devices = live_run, 0, -1
        self.mode_label.setText("<b>This run's devices</b> (simulated): being built…")
        self.rows = []
        self._fill()
        self.refresh()

    def detach(self) -> None:
        """Back to the configuration's devices."""
        self.live_run = None
        self.show_config()

    def row(self, name: str) -> DeviceRow | None:
        return next((r for r in self.rows if r.name == name), None)

    def status(self, name: str) -> str:
        row = self.row(name)
        return row.status if row is not None else ""

    # ---------------------------------------------------------------- timer
    def refresh(self) -> None:
        """Pick up finished worker results and the attached run's devices and events."""
        changed = self._collect_tests()
        if self._ports_job is not None and self._ports_job.done():
            self._ports_done(self._ports_job)
        if self.live_run is not None:
            changed |= self._follow_run()
        if self.tcs_window is not None and not self.tcs_window.isVisible():
            self.tcs_window = None
            self._update_buttons()
        if changed:
            self._fill()

    def _follow_run(self) -> bool:
        run = self.live_run
        station = getattr(getattr(run, "session", None), "station", None)
        devices = getattr(station, "devices", None)
        changed = False
        if devices is not None and len(devices) != self._run_devices:
            old = {r.name: r for r in self.rows}
            self.rows = run_rows(station)
            for row in self.rows:  # keep what events said before the station was visible
                if row.name in old and old[row.name].status != SIMULATED:
                    row.status, row.details = old[row.name].status, old[row.name].details
            self._run_devices = len(devices)
            changed = True
        feed = getattr(run, "feed", None)
        if feed is not None:
            events, self._cursor = feed.since(self._cursor)
            for event in events:
                if event.kind != "device":
                    continue
                name = str(event.payload.get("device", "?"))
                row = self.row(name)
                if row is None:
                    row = DeviceRow(name, "", "", status=SIMULATED)
                    self.rows.append(row)
                apply_event(row, str(event.payload.get("state", "")),
                            str(event.payload.get("message", "")))
                changed = True
            if feed.state.state == "stopped":
                text = f"<b>This run's devices</b>: the run ended ({feed.state.status}); " \
                       "its devices are closed"
                changed |= self._closed()
            elif self._run_devices >= 0:
                text = "<b>This run's devices</b> (simulated)"
            else:
                text = "<b>This run's devices</b> (simulated): being built…"
            if text != self.mode_label.text():
                self.mode_label.setText(text)
        return changed

    def _closed(self) -> bool:
        """The run ended: its devices are closed (errors and losses stay shown)."""
        closed = [r for r in self.rows if r.status in ("connected", SIMULATED)]
        for row in closed:
            row.status = NOT_CONNECTED
        return bool(closed)

    # ---------------------------------------------------------------- ports
    def find_ports(self) -> Future[list[PortInfo]]:
        """List the serial ports on a worker thread; the table fills in when it is done."""
        if self._ports_job is None or self._ports_job.done():
            self._ports_job = self._executor.submit(list_serial_ports)
            self.ports_button.setEnabled(False)
            self.ports_button.setText("Finding ports…")
        return self._ports_job

    def _ports_done(self, job: Future[list[PortInfo]]) -> None:
        self._ports_job = None
        self.ports_button.setEnabled(True)
        self.ports_button.setText("Find ports")
        try:
            self.show_ports(job.result())
        except Exception as error:  # noqa: BLE001 - shown to the operator
            self.message.setText(f"Cannot list the serial ports: {one_line(error)}")

    def show_ports(self, ports: Iterable[PortInfo]) -> None:
        """Fill the ports table; name configured ports this computer does not have."""
        self.ports = list(ports)
        users: dict[str, list[str]] = {}
        for name, device in self.config.devices.items():
            port = getattr(device, "port", None)
            if isinstance(port, str) and not getattr(device, "simulated", False):
                users.setdefault(os.path.realpath(port), []).append(name)
        self.ports_table.setRowCount(len(self.ports))
        found = set()
        for i, port in enumerate(self.ports):
            used = users.get(os.path.realpath(port.device), [])
            found.add(os.path.realpath(port.device))
            values = (port.device, port.description, port.manufacturer, port.vid_pid,
                      port.serial_number, ", ".join(used))
            for column, value in enumerate(values):
                self.ports_table.setItem(i, column, QTableWidgetItem(value))
        missing = [f"{', '.join(names)} ({path})" for path, names in users.items()
                   if path not in found]
        text = f"{len(self.ports)} serial port(s) found."
        if missing:
            text += " Configured but not on this computer: " + "; ".join(missing) + "."
        self.message.setText(text)
        self.ports_label.show()
        self.ports_table.show()
        _fit_height(self.ports_table, max_rows=8)

    # ---------------------------------------------------------------- connection test
    def test_connection(self, name: str | None = None) -> Future[str] | None:
        """Open the configured TCS II ``name`` (default: the selected or only one) on a
        worker thread, show its identity or the error, close it again."""
        row = self.row(name) if name else self._chosen_thermode()
        if row is None or not row.testable or self.live_run is not None:
            return None
        if row.name in self._tests or self.tcs_window is not None:
            return self._tests.get(row.name)
        job = self._executor.submit(probe_thermode, self.config, row.name, self.clock)
        self._tests[row.name] = job
        row.status, row.details = CONNECTING, ""
        self.message.setText(f"Testing {row.name} on {row.address}…")
        self._fill()
        return job

    def _chosen_thermode(self) -> DeviceRow | None:
        selected = self.table.currentRow()
        if 0 <= selected < len(self.rows) and self.rows[selected].testable:
            return self.rows[selected]
        testable = [r for r in self.rows if r.testable]
        return testable[0] if len(testable) == 1 else None

    def _collect_tests(self) -> bool:
        done = [name for name, job in self._tests.items() if job.done()]
        for name in done:
            job = self._tests.pop(name)
            row = self.row(name)
            if row is None:
                continue
            idle = SIMULATED if getattr(row.config, "simulated", False) else NOT_CONNECTED
            try:
                row.status, row.details = idle, f"test OK {time.strftime('%H:%M:%S')}: " \
                                                 f"{job.result()}"
                self.message.setText(f"{name}: {row.details}")
            except Exception as error:  # noqa: BLE001 - the device's one-line error
                row.status, row.details = f"error: {one_line(error)}", ""
                self.message.setText(f"{name}: {one_line(error)}")
        if done:
            self._update_buttons()
        return bool(done)

    # ---------------------------------------------------------------- other windows
    def open_manual_tcs(self) -> QWidget | None:
        """The TCS II window on the configured (or simulated) thermode."""
        if self.tcs_window is not None:
            self.tcs_window.raise_()
            return self.tcs_window
        if self.live_run is not None or self._tests:
            self.message.setText("Manual TCS II control opens between runs and tests")
            return None
        from qst_station.gui.app import build_window

        try:
            self.tcs_window = build_window(self.config, self.clock)
        except Exception as error:  # noqa: BLE001 - e.g. no TCS II configured
            self.message.setText(f"Cannot open the TCS II window: {one_line(error)}")
            return None
        self.tcs_window.show()
        self._update_buttons()
        return self.tcs_window

    def open_other_devices(self) -> QWidget:
        """The "Other devices" window (algometer, cuff, Medoc, trigger box; simulated)."""
        if self.devices_window is None or not self.devices_window.isVisible():
            from qst_station.gui.devices_window import DevicesWindow

            self.devices_window = DevicesWindow(self.clock)
        self.devices_window.show()
        self.devices_window.raise_()
        return self.devices_window

    # ---------------------------------------------------------------- drawing
    def _fill(self) -> None:
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            values = (row.name, KINDS.get(row.kind, row.kind), row.address, row.limits,
                      row.status, row.details)
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if column == 3 and row.tip:
                    item.setToolTip(row.tip)
                if column == STATUS_COL:
                    item.setToolTip(value)
                    colour = COLOURS.get(row.status.split(":")[0], "#616161")
                    item.setForeground(QColor(colour))
                if column == DETAILS_COL and value:
                    item.setToolTip(value)
                self.table.setItem(i, column, item)
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = self.live_run is None
        chosen = self._chosen_thermode() if idle else None
        self.test_button.setEnabled(chosen is not None and chosen.name not in self._tests
                                    and self.tcs_window is None)
        has_tcs = any(isinstance(d, TcsConfig) for d in self.config.devices.values())
        self.tcs_button.setEnabled(idle and not self._tests and has_tcs)

    def close(self) -> bool:
        """Stop the timer and the workers (a running test still closes its device)."""
        self._timer.stop()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for window in (self.tcs_window, self.devices_window):
            if window is not None:
                window.close()
        return super().close()


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    header = table.horizontalHeader()
    for column in range(len(columns) - 1):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def _fit_height(table: QTableWidget, max_rows: int) -> None:
    """Size ``table`` to its rows (at most ``max_rows``), so it leaves no empty space."""
    table.resizeRowsToContents()
    rows = sum(table.rowHeight(i) for i in range(min(table.rowCount(), max_rows)))
    header = table.horizontalHeader().sizeHint().height()
    table.setFixedHeight(header + rows + 2 * table.frameWidth())


SAMPLE_CONFIG = """
[station]
name = "QST lab, bench 2"

[devices.thermode]
driver = "tcs2"
port = "/dev/ttyACM0"
[devices.thermode.limits]
max_celsius = 50.0
max_rate = 100.0

[devices.cuff]
driver = "ocp1-cuff"
port = "/dev/ttyACM2"
max_kpa = 80.0

[devices.algometer]
driver = "wagner-fdix"
port = "/dev/ttyUSB0"

[devices.scanner]
driver = "trigger-box"
port = "/dev/ttyACM1"
tr_s = 2.0

[devices.buttons]
driver = "button-box"
port = "sim"

[devices.ecg]
driver = "lsl-inlet"
prop = "type"
value = "ECG"
"""


def sample_for_screenshot(show_ports: bool = True) -> DevicesPanel:
    """A configured bench: a tested TCS II, a cuff on a missing port, simulated others."""
    from qst_station.config import parse_config

    config = parse_config(SAMPLE_CONFIG, "/etc/qst-station/bench-2.toml")
    panel = DevicesPanel(config)
    panel._timer.stop()  # a still picture
    thermode, cuff = panel.row("thermode"), panel.row("cuff")
    assert thermode is not None and cuff is not None
    thermode.details = ("test OK 09:41:07: TCS, firmware 2.1.4, probe T08-1123 (T08); "
                        "disconnected again")
    cuff.status = "error: cannot open /dev/ttyACM2: No such file or directory"
    panel._fill()
    if show_ports:
        panel.show_ports([
            PortInfo("/dev/ttyACM0", "TCS II - CDC", "0483:5740", "TCS2-00412", "QST.Lab"),
            PortInfo("/dev/ttyACM1", "Trigger box", "2341:0043", "85736323", "Arduino"),
            PortInfo("/dev/ttyUSB0", "FT232R USB UART", "0403:6001", "A50285BI", "FTDI")])
    panel.resize(1280, 560)
    return panel


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    from qst_station.config import load_config

    app = QApplication.instance() or QApplication(sys.argv)
    panel = DevicesPanel(load_config(sys.argv[1] if len(sys.argv) > 1 else None))
    panel.resize(1200, 520)
    panel.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
