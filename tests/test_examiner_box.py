"""The examiner's answer box: the open question, answers that fit, one-line refusals."""

from __future__ import annotations

import threading

from PySide6.QtCore import Qt

from protocols.base import CONFIRM, MANUAL, YES, Stimulus
from qst_station.clock import SimulatedClock
from qst_station.examiner_answers import ExaminerAnswers
from qst_station.gui.examiner_box import ExaminerBox


def ask_in_a_thread(answers: ExaminerAnswers, stimulus: Stimulus) -> list:
    got: list = []
    threading.Thread(target=lambda: got.append(answers.answer(stimulus)), daemon=True).start()
    return got


def test_the_examiner_answers_the_open_question_with_a_click(qtbot) -> None:  # noqa: ANN001
    answers, box = ExaminerAnswers(SimulatedClock()), ExaminerBox()
    qtbot.addWidget(box)
    box.follow(answers)
    assert not box.isHidden()  # shown while a run on the lab's devices goes on
    got = ask_in_a_thread(answers, Stimulus("MPT", MANUAL, {"force_mn": 64}, 1,
                                            instruction="Pinprick 64 mN on the thenar"))
    qtbot.waitUntil(lambda: box.yes_button.isEnabled() and "64 mN" in box.question.text())
    assert not box.done_button.isEnabled()  # not an operator step
    qtbot.mouseClick(box.yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(got))
    assert got[0].kind == YES
    qtbot.waitUntil(lambda: not box.yes_button.isEnabled())


def test_an_answer_that_does_not_fit_is_refused_in_one_line(qtbot) -> None:  # noqa: ANN001
    answers, box = ExaminerAnswers(SimulatedClock()), ExaminerBox()
    qtbot.addWidget(box)
    box.follow(answers)
    got = ask_in_a_thread(answers, Stimulus("CPM", CONFIRM, {"action": "start"}, 1,
                                            instruction="Put the hand in the cold water"))
    qtbot.waitUntil(lambda: box.done_button.isEnabled())
    box._answer("yes")  # a yes to an operator step
    assert "answer with one of" in box.message.text() and not got
    qtbot.mouseClick(box.done_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(got))
    assert got[0].kind == "done"
    box.follow(None)
    assert box.isHidden()
