"""The examiner's answer buttons for hand-applied stimuli and operator-confirmed steps.

Shown in the run view during runs on the lab's devices: the open question of the run's
:class:`~qst_station.examiner_answers.ExaminerAnswers` (polled at 30 Hz, never waited for)
with Yes / No, a rating (0-100), a reading (e.g. tuning fork x/8), or Done for an operator
step. An answer that does not fit the question is refused with a one-line message.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from qst_station.examiner_answers import ExaminerAnswers


class ExaminerBox(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Examiner", parent)
        self.answers: ExaminerAnswers | None = None
        self.question = QLabel("")
        self.question.setWordWrap(True)
        self.yes_button, self.no_button = QPushButton("Yes (felt)"), QPushButton("No")
        self.rating = QSpinBox()
        self.rating.setRange(0, 100)
        self.rating_button = QPushButton("Rating")
        self.reading = QDoubleSpinBox()
        self.reading.setRange(0.0, 8.0)
        self.reading.setSingleStep(0.5)
        self.reading_button = QPushButton("Reading")
        self.done_button = QPushButton("Done")
        self.message = QLabel("")
        row = QHBoxLayout()
        for widget in (self.yes_button, self.no_button, self.rating, self.rating_button,
                       self.reading, self.reading_button, self.done_button):
            row.addWidget(widget)
        column = QVBoxLayout(self)
        column.addWidget(self.question)
        column.addLayout(row)
        column.addWidget(self.message)
        self.yes_button.clicked.connect(lambda: self._answer("yes"))
        self.no_button.clicked.connect(lambda: self._answer("no"))
        self.rating_button.clicked.connect(lambda: self._answer("rating"))
        self.reading_button.clicked.connect(lambda: self._answer("value"))
        self.done_button.clicked.connect(lambda: self._answer("done"))
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self.refresh)
        self.setVisible(False)

    def follow(self, answers: ExaminerAnswers | None) -> None:
        """Show the questions of ``answers`` (None: hide, e.g. a simulated examiner)."""
        self.answers = answers
        self.setVisible(answers is not None)
        if answers is None:
            self._timer.stop()
        else:
            self._timer.start()
            self.refresh()

    def refresh(self) -> None:
        pending = self.answers.pending if self.answers is not None else None
        for button in (self.yes_button, self.no_button, self.rating_button,
                       self.reading_button, self.done_button):
            button.setEnabled(pending is not None)
        if pending is None:
            self.question.setText("No question open.")
            return
        stimulus = pending.stimulus
        what = stimulus.instruction or f"{stimulus.test} {stimulus.repetition}"
        self.question.setText(f"<b>{stimulus.test}</b>: {what}")
        self.done_button.setEnabled(pending.confirm)
        for button in (self.yes_button, self.no_button, self.rating_button,
                       self.reading_button):
            button.setEnabled(not pending.confirm)

    def _answer(self, kind: str) -> None:
        if self.answers is None:
            return
        try:
            if kind == "rating":
                self.answers.rating(self.rating.value())
            elif kind == "value":
                self.answers.value(self.reading.value())
            else:
                self.answers.put(kind)
        except ValueError as error:
            self.message.setText(f"<span style='color:#b00020'>{error}</span>")
            return
        self.message.setText("")
        self.refresh()
