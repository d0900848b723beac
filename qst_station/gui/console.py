"""The operator console: the main window researchers use at the bench and at the scanner.

Tabs for the session setup, the devices, the protocol runner (with live plots), the
results, the scanner view and LSL; a participant rating screen as a second window; and an
emergency stop that is always visible, bound to Esc everywhere in the application, and
never waits: it aborts every stimulator on a thread of its own and the run ends as
``aborted`` with the reason. Protocol runs go on in a worker thread (:class:`RunController`);
everything here reads snapshots on timers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.config import StationConfig
from qst_station.examiner_answers import ExaminerAnswers
from qst_station.gui.devices_panel import DevicesPanel
from qst_station.gui.examiner_box import ExaminerBox
from qst_station.gui.input_responses import KeyboardMouseResponses
from qst_station.gui.live_plots import LivePlots
from qst_station.gui.lsl_panel import LslPanel
from qst_station.gui.rating_screen import RatingScreen
from qst_station.gui.results_panel import ResultsPanel
from qst_station.gui.run_controller import LiveRun, RunController, RunOutcome
from qst_station.gui.run_panel import RunPanel
from qst_station.gui.scanner_panel import ScannerPanel
from qst_station.gui.session_panel import SessionPanel
from qst_station.scanner_levels import CalibrationMissing, calibrate_for

STOP_STYLE = ("QPushButton { background: #c62828; color: white; font-size: 20px; "
              "font-weight: bold; padding: 10px 28px; border-radius: 6px; } "
              "QPushButton:pressed { background: #8e0000; }")
CLOSE_WAIT_S = 15.0


class ConsoleWindow(QMainWindow):
    """The main window; ``folder`` is where session files go."""

    def __init__(self, config: StationConfig, clock: Clock, folder: str | Path = "sessions",
                 seed: int = 0, scan_lsl: bool = True) -> None:
        super().__init__()
        self.config, self.clock, self.folder, self.seed = config, clock, Path(folder), seed
        self.setWindowTitle("qst-station")
        self.controller = RunController(clock, self)
        self.last_outcome: RunOutcome | None = None
        self.lsl_chosen: set[str] = set()  # LSL streams to record along with the next runs
        self._detach_buttons: Callable[[], None] | None = None
        self._cursor = 0
        self._build(scan_lsl)
        self.controller.started.connect(self._run_started)
        self.controller.finished.connect(self._run_finished)
        self.controller.line.connect(self._progress_line)
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._follow_run)
        self._timer.start()

    # -- layout --------------------------------------------------------------------------------
    def _build(self, scan_lsl: bool) -> None:
        self.session_panel = SessionPanel(self.config, self.folder)
        self.devices_panel = DevicesPanel(self.config, self.clock)
        self.run_panel = RunPanel(self.controller)
        self.live_plots = LivePlots()
        self.run_panel.set_plots(self.live_plots)
        self.results_panel = ResultsPanel()
        self.scanner_panel = ScannerPanel(clock=self.clock)
        self.lsl_panel = LslPanel(self._lsl_choice, discover=scan_lsl)
        self.rating_screen = RatingScreen(self.clock)
        self.rating_screen.connect()
        self.keyboard = KeyboardMouseResponses(self.rating_screen, self.clock, mouse={})
        self.keyboard.connect()
        self.examiner = ExaminerAnswers(self.clock)
        self.examiner_box = ExaminerBox()
        self.run_panel.set_examiner(self.examiner_box)
        self.tabs = QTabWidget()
        for widget, name in ((self.session_panel, "Session"), (self.devices_panel, "Devices"),
                             (self.run_panel, "Run"), (self.results_panel, "Results"),
                             (self.scanner_panel, "Scanner"), (self.lsl_panel, "LSL")):
            if widget is not None:
                self.tabs.addTab(widget, name)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.stop_button = QPushButton("STOP  (Esc)")
        self.stop_button.setStyleSheet(STOP_STYLE)
        self.stop_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stop_button.clicked.connect(self.emergency_stop)
        bar = QHBoxLayout()
        bar.addWidget(self.summary, 1)
        bar.addWidget(self.stop_button)
        central = QWidget()
        column = QVBoxLayout(central)
        column.addLayout(bar)
        column.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.stop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self.stop_shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        self.stop_shortcut.activated.connect(self.emergency_stop)
        show_screen = QAction("Participant screen", self)
        show_screen.setCheckable(True)
        show_screen.toggled.connect(self._participant_screen)
        self.menuBar().addMenu("&View").addAction(show_screen)
        self.run_panel.start_requested.connect(self.start_run)
        self.run_panel.protocol_chosen.connect(
            lambda protocol: self.session_panel.set_protocol(protocol.name))
        if self.run_panel.protocol is not None:
            self.session_panel.set_protocol(self.run_panel.protocol.name)
        self.session_panel.setup_changed.connect(lambda _: self._show_summary())
        self.resize(1500, 900)
        self._show_summary()

    def _show_summary(self) -> None:
        setup = self.session_panel.setup()
        live = self.controller.live if self.controller.running else None
        who = setup.participant or "<i>no participant</i>"
        where = f" — recording <code>{live.path}</code>" if live else ""
        self.summary.setText(f"<b>{who}</b> · visit {setup.visit}{where}")

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, protocol: ProtocolFile) -> LiveRun | None:
        """Start ``protocol`` for the session set up; a problem is shown, nothing starts."""
        setup = self.session_panel.setup()
        problems = setup.problems()
        if problems:
            self.tabs.setCurrentWidget(self.session_panel)
            self._warn("Session setup", "\n".join(problems))
            return None
        try:
            protocol = calibrate_for(protocol, setup.participant, self.folder)
        except CalibrationMissing as missing:
            self._warn("Calibration needed", str(missing))
            return None
        path = setup.session_path(self.folder, protocol.name)
        options: dict[str, Any] = {"record_lsl": sorted(self.lsl_chosen)}
        if self.real_devices:  # the lab's devices; a person answers
            options.update({"station": "real", "config": self.config,
                            "examiner": self.examiner,
                            "responses": [self.rating_screen, self.keyboard]})
        try:
            live = self.controller.start(protocol, setup, path, seed=self.seed,
                                         options=options,
                                         station_config=self.config.model_dump_json())
        except (ValueError, RuntimeError, OSError) as error:
            self._warn("Cannot start", str(error))
            return None
        self.tabs.setCurrentWidget(self.run_panel)
        return live

    def _run_started(self, live: LiveRun) -> None:
        self._cursor = 0
        self.session_panel.set_enabled_for_run(True, live.path)
        self.scanner_panel.set_feed(live.feed)
        self.scanner_panel.status = lambda: _scanner_status(live)
        self.lsl_panel.set_recording(live.session.recording, live.buffers, live.feed)
        self.devices_panel.attach(live)
        self.live_plots.attach(live)
        self.examiner_box.follow(self.examiner if self.real_devices else None)
        if self.real_devices:
            QTimer.singleShot(200, lambda: self._attach_button_box(live))
        self._show_summary()

    def _attach_button_box(self, live: LiveRun) -> None:
        """The configured button box also moves the participant screen's marker."""
        if not self.controller.running or self.controller.live is not live:
            return
        if not live.session.wait_ready(0):
            QTimer.singleShot(200, lambda: self._attach_button_box(live))
            return
        buttons = getattr(live.session.station, "drivers", {}).get("buttons")
        if buttons is not None:
            self._detach_buttons = self.rating_screen.attach_buttons(buttons)

    @property
    def real_devices(self) -> bool:
        """Runs use the configured devices (a configuration file was loaded), else
        simulated devices and a simulated participant."""
        return not self.config.source.startswith("embedded default")

    def _run_finished(self, outcome: RunOutcome) -> None:
        self.last_outcome = outcome
        self.examiner_box.follow(None)
        if self._detach_buttons is not None:
            self._detach_buttons()
            self._detach_buttons = None
        self.session_panel.set_enabled_for_run(False)
        self.rating_screen.rest()
        setup = self.session_panel.setup()
        if outcome.path.exists():
            self.results_panel.show_session(outcome.path, setup.sex, setup.age)
            if outcome.status == "success":
                self.tabs.setCurrentWidget(self.results_panel)
        if outcome.status == "failed":
            self._warn("The run failed", f"{outcome.reason}\nThe devices were made safe; "
                                         f"what was recorded is in {outcome.path}.")
        self._show_summary()

    def _progress_line(self, line: str) -> None:
        self.statusBar().showMessage(line.strip(), 8000)

    def _follow_run(self) -> None:
        """30 Hz: drive the participant screen from the run's prompts."""
        live = self.controller.live
        if live is None:
            return
        events, self._cursor = live.feed.since(self._cursor)
        for event in events:
            if event.kind == "rating_prompt":
                self.rating_screen.ask(screen_scale(str(event.payload.get("scale", ""))),
                                       timeout_s=event.payload.get("timeout_s"))
            elif event.kind in ("rating", "rating_timeout"):
                self.rating_screen.rest()
            elif event.kind == "cue":
                self.rating_screen.show_cue("●")

    # -- the emergency stop --------------------------------------------------------------------
    def emergency_stop(self) -> None:
        """Abort every stimulator now; the run ends as aborted, with the reason recorded."""
        reason = "emergency stop by the operator"
        self.controller.stop(reason)
        manual = self.devices_panel.tcs_window  # the manual windows' stimulators too
        if manual is not None:
            manual.emergency_stop()
        others = self.devices_panel.devices_window
        if others is not None:
            others.stop_all()
        self.statusBar().showMessage("EMERGENCY STOP: every stimulator aborted", 15000)

    def _lsl_choice(self, name: str, record: bool) -> None:
        """Ticked streams are recorded along with the next runs."""
        (self.lsl_chosen.add if record else self.lsl_chosen.discard)(name)
        what = "recorded" if record else "not recorded"
        self.statusBar().showMessage(f"LSL stream {name!r} will be {what} in the next runs "
                                     "(add it to the station configuration to keep it)", 8000)

    def _participant_screen(self, show: bool) -> None:
        if show:
            self.rating_screen.show_on()
        else:
            self.rating_screen.hide()

    def _warn(self, title: str, message: str) -> None:
        QMessageBox.warning(self, title, message)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Closing mid-run aborts the run (file marked aborted) and waits for the file."""
        if self.controller.running:
            self.controller.stop("the console was closed during the run")
            self.controller.wait(CLOSE_WAIT_S)
        self._timer.stop()
        self.devices_panel.close()
        self.lsl_panel.close()
        self.rating_screen.close()
        super().closeEvent(event)


def screen_scale(recorded: str) -> str:
    """The rating screen's scale for a prompt's: 0-10 scales as NRS boxes, else 0-100 VAS."""
    return "NRS 0-10" if recorded.endswith("0-10") else "VAS 0-100"


def _scanner_status(live: LiveRun) -> Any:
    station = live.session.station
    for delivery in getattr(station, "deliveries", ()):
        status = getattr(delivery, "status", None)
        if callable(status):
            return status()
    raise LookupError("no scanner-locked delivery in this run")


