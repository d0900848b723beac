"""The protocol runner view: choose a protocol, see its steps, run it and follow it live.

The current instruction for the examiner in large text, a progress bar with the time left
(an estimate), the trial table filling as answers come in, pause/resume, skip test and
repeat trial. It reads the run's :class:`EventFeed` on a 30 Hz timer and never waits for the
run's thread; the buttons call the :class:`RunController`, which never blocks either.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from protocols.base import Stimulus
from protocols.files import ProtocolFile, ProtocolFileError, builtin_names, load_protocol
from qst_station.gui.run_controller import LiveRun, RunController, RunOutcome, instruction_text

FRAME_MS = 33
TRIAL_COLUMNS = ("#", "test", "rep.", "answer", "value", "unit", "site")


class RunPanel(QWidget):
    """Choose and run a protocol; ``start_requested`` asks the console to start it."""

    start_requested = Signal(object)  # ProtocolFile
    protocol_chosen = Signal(object)  # ProtocolFile

    def __init__(self, controller: RunController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.protocol: ProtocolFile | None = None
        self.live: LiveRun | None = None
        self._cursor = 0
        self._tests_done: list[str] = []
        self._build()
        controller.started.connect(self._started)
        controller.finished.connect(self._finished)
        controller.instruction.connect(self._instruction)
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self.refresh)
        self.choose(self.chooser.currentText())

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.chooser = QComboBox()
        self.chooser.addItems(builtin_names())
        self.chooser.currentTextChanged.connect(self.choose)
        open_file = QPushButton("Open file…")
        open_file.clicked.connect(self._open_file)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.steps = QListWidget()
        self.steps.setMaximumHeight(96)
        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.skip_button = QPushButton("Skip test")
        self.repeat_button = QPushButton("Repeat trial")
        self.start_button.setStyleSheet("font-weight: bold; padding: 6px 18px;")
        self.start_button.clicked.connect(self._start_clicked)
        self.pause_button.clicked.connect(self._pause_clicked)
        self.skip_button.clicked.connect(self.controller.skip_test)
        self.repeat_button.clicked.connect(self.controller.repeat_trial)
        self.instruction = QLabel("Choose a protocol and press Start.")
        self.instruction.setWordWrap(True)
        font = QFont(self.instruction.font())
        font.setPointSize(20)
        font.setBold(True)
        self.instruction.setFont(font)
        self.instruction.setMinimumHeight(80)
        self.instruction.setStyleSheet("background: #fff8dc; padding: 8px; color: #222;")
        self.participant_line = QLabel("")
        self.participant_line.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.time_left = QLabel("")
        self.status = QLabel("")
        self.trials = QTableWidget(0, len(TRIAL_COLUMNS))
        self.trials.setHorizontalHeaderLabels(TRIAL_COLUMNS)
        self.trials.verticalHeader().setVisible(False)
        self.trials.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.trials.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.trials.horizontalHeader().setStretchLastSection(True)
        self.plots_holder = QVBoxLayout()  # the console puts the live plots here

        top = QHBoxLayout()
        top.addWidget(QLabel("Protocol:"))
        top.addWidget(self.chooser, 1)
        top.addWidget(open_file)
        controls = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.skip_button,
                       self.repeat_button):
            controls.addWidget(button)
        controls.addStretch(1)
        progress = QHBoxLayout()
        progress.addWidget(self.progress, 1)
        progress.addWidget(self.time_left)
        left = QWidget()
        column = self._column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        for item in (top, self.title, self.steps, controls, self.instruction,
                     self.participant_line, progress, self.status, self.trials):
            if isinstance(item, QWidget):
                column.addWidget(item)
            else:
                column.addLayout(item)
        right = QWidget()
        right.setLayout(self.plots_holder)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([620, 880])
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        self._set_running(False)

    def set_plots(self, widget: QWidget) -> None:
        self.plots_holder.addWidget(widget)

    def set_examiner(self, widget: QWidget) -> None:
        """The examiner's answer box, under the participant's instruction."""
        self._column.insertWidget(self._column.indexOf(self.participant_line) + 1, widget)

    # -- choosing ------------------------------------------------------------------------------
    def choose(self, name: str) -> None:
        if not name:
            return
        try:
            self.show_protocol(load_protocol(name))
        except ProtocolFileError as error:
            self.show_problem(str(error))

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Protocol file", "", "Protocol (*.toml)")
        if path:
            self.choose(path)

    def show_protocol(self, protocol: ProtocolFile) -> None:
        self.protocol = protocol
        self.title.setText(f"<b>{protocol.protocol.title}</b> ({protocol.protocol.kind}, "
                           f"devices: {', '.join(protocol.roles)})")
        self.steps.clear()
        self.steps.addItems(protocol.steps())
        self.status.setText("")
        self.protocol_chosen.emit(protocol)

    def show_problem(self, message: str) -> None:
        self.status.setText(f"<span style='color:#b00020'>{message}</span>")

    # -- steering ------------------------------------------------------------------------------
    def _start_clicked(self) -> None:
        if self.protocol is not None and not self.controller.running:
            self.start_requested.emit(self.protocol)

    def _pause_clicked(self) -> None:
        if self.live is not None and self.live.session.paused:
            self.controller.resume()
            self.pause_button.setText("Pause")
        else:
            self.controller.pause()
            self.pause_button.setText("Resume")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.chooser.setEnabled(not running)
        for button in (self.pause_button, self.skip_button, self.repeat_button):
            button.setEnabled(running)
        if not running:
            self.pause_button.setText("Pause")

    def _started(self, live: LiveRun) -> None:
        self.live, self._cursor, self._tests_done = live, 0, []
        self.trials.setRowCount(0)
        self.progress.setValue(0)
        self.instruction.setText("Preparing the devices…")
        self.participant_line.setText("")
        self.status.setText(f"Recording to {live.path}")
        self._set_running(True)
        self._timer.start()

    def _finished(self, outcome: RunOutcome) -> None:
        self.refresh()
        self._timer.stop()
        self._set_running(False)
        colour = {"success": "#1b5e20", "aborted": "#b26a00"}.get(outcome.status, "#b00020")
        why = f": {outcome.reason}" if outcome.reason else ""
        self.status.setText(f"<span style='color:{colour}'><b>{outcome.status}</b>{why}</span>"
                            f" — {outcome.path}")
        self.progress.setRange(0, 1000)
        if outcome.status == "success":
            self.progress.setValue(1000)
            self.time_left.setText("done")
            self.instruction.setText("Done.")

    def _instruction(self, stimulus: Stimulus) -> None:
        self.instruction.setText(instruction_text(stimulus))
        self.participant_line.setText(f"Participant: {stimulus.participant_instruction}"
                                      if stimulus.participant_instruction else "")

    # -- the 30 Hz refresh ---------------------------------------------------------------------
    def refresh(self) -> None:
        live = self.live
        if live is None:
            return
        events, self._cursor = live.feed.since(self._cursor)
        for event in events:
            if event.kind == "trial":
                self._add_trial(event.payload)
            elif event.kind == "phase" and event.payload.get("state") == "end":
                self._tests_done.append(str(event.payload.get("name")))
        self._show_progress(live)

    def _add_trial(self, p: dict[str, Any]) -> None:
        row = self.trials.rowCount()
        self.trials.insertRow(row)
        value = p.get("value")
        answer = str(p.get("answer", ""))
        if p.get("discarded"):
            answer += " (repeated)"
        cells = (p.get("trial", row + 1), p.get("test", ""), p.get("repetition", ""), answer,
                 "-" if value is None else f"{value:.2f}", p.get("unit", ""), p.get("site", ""))
        for column, cell in enumerate(cells):
            self.trials.setItem(row, column, QTableWidgetItem(str(cell)))
        self.trials.scrollToBottom()

    def _show_progress(self, live: LiveRun) -> None:
        fraction = progress_fraction(live.protocol, self._tests_done, live.feed)
        elapsed = live.session.clock.now() - live.started
        if fraction is None:  # no way to tell: a busy bar and the time so far
            self.progress.setRange(0, 0)
            self.time_left.setText(f"{elapsed:.0f} s")
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(round(1000 * fraction)))
        if 0.02 < fraction < 1.0:
            left = elapsed * (1.0 - fraction) / fraction
            self.time_left.setText(f"about {left / 60:.0f} min left" if left > 90
                                   else f"about {left:.0f} s left")
        else:
            self.time_left.setText(f"{elapsed:.0f} s")


def progress_fraction(protocol: ProtocolFile, tests_done: list[str], feed: Any
                      ) -> float | None:
    """How far the run is (0-1): by volumes for a scanner run, else by finished tests when
    the protocol's steps are its tests; None when it cannot be told."""
    scanner = getattr(protocol, "scanner", None)
    if scanner is not None:
        triggers = feed.of_kind("trigger")
        total = scanner.dummy_volumes + scanner.volumes
        return min(1.0, len(triggers) / total) if total else 0.0
    steps = protocol.steps()
    tests = getattr(protocol, "tests", None)
    names = {getattr(t, "test", None) for t in tests} if isinstance(tests, list) else set()
    if len(steps) < 2 or not set(steps) <= names:
        return None
    done = sum(1 for name in tests_done if name in steps)
    return min(1.0, done / len(steps))
