"""The examiner's and operator's answers during a run on real devices: a Qt-free queue.

A hand-applied stimulus (von Frey, pinprick, tuning fork) or an operator step (cold water on,
a rest) waits on the run's thread until someone at the console answers it. The console
learns of each :class:`Question` from :meth:`ExaminerAnswers.on_question` (or polls
:attr:`ExaminerAnswers.pending`) and answers from any thread; STOP ends the wait through the
deliveries' ``abort()`` (:class:`ExaminerDelivery`, :class:`OperatorDelivery`).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.base import CONFIRM, DONE, MANUAL, NO, RATING, VALUE, YES, Answer, Stimulus
from qst_station.clock import Clock, LslClock
from qst_station.deliver_manual import ManualDelivery
from qst_station.deliver_pressure import ConfirmDelivery
from qst_station.runner import RunAborted, RunContext


class AnswerCancelled(RuntimeError):
    """The wait for the examiner's answer was cancelled (STOP, or the console)."""


@dataclass(frozen=True)
class Question:
    """What the examiner or operator is asked about ``stimulus``."""

    number: int
    stimulus: Stimulus
    confirm: bool  # an operator step: answer with done(); else yes/no/rating/value
    asked_at: float  # program clock


class ExaminerAnswers:
    """The examiner's answers to hand-applied stimuli and the operator's confirmations.

    Qt-free and thread-safe. The run's thread calls :meth:`answer` (manual stimuli) or
    :meth:`confirm` (operator steps) and waits; the console hears of each question through
    :meth:`on_question` (on the run's thread: hand it on, e.g. as a Qt signal; ``None`` when
    it is answered or withdrawn) or polls :attr:`pending`, and answers from any thread with
    :meth:`yes`, :meth:`no`, :meth:`rating`, :meth:`value` or :meth:`done`. STOP cancels the
    wait (the deliveries' ``abort()``); :meth:`cancel` does too, and the run ends aborted.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or LslClock()
        self._cond = threading.Condition()
        self._numbers = itertools.count(1)
        self._question: Question | None = None
        self._answer: Answer | None = None
        self._cancelled: str | None = None
        self._callbacks: list[Callable[[Question | None], None]] = []

    def begin(self, clock: Clock) -> None:
        """Ready for a new run on ``clock`` (the station calls it)."""
        with self._cond:
            self.clock, self._question, self._answer, self._cancelled = clock, None, None, None

    def on_question(self, callback: Callable[[Question | None], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    @property
    def pending(self) -> Question | None:
        with self._cond:
            return self._question if self._answer is None else None

    # -- the run's side ------------------------------------------------------------------------
    def answer(self, stimulus: Stimulus) -> Answer:
        """The examiner's answer to ``stimulus`` (blocks); AnswerCancelled if cancelled."""
        return self._ask(stimulus, confirm=stimulus.kind == CONFIRM)

    def confirm(self, stimulus: Stimulus) -> None:
        """Wait until the operator has carried out ``stimulus`` (an operator step)."""
        self._ask(stimulus, confirm=True)

    def _ask(self, stimulus: Stimulus, confirm: bool) -> Answer:
        with self._cond:
            if self._cancelled is not None:
                raise AnswerCancelled(self._cancelled)
            question = Question(next(self._numbers), stimulus, confirm, self.clock.now())
            self._question, self._answer = question, None
        self._tell(question)
        try:
            with self._cond:
                while self._answer is None and self._cancelled is None:
                    self._cond.wait(0.2)
                if self._answer is None:
                    raise AnswerCancelled(str(self._cancelled))
                return self._answer
        finally:
            with self._cond:
                self._question = None
            self._tell(None)

    def _tell(self, question: Question | None) -> None:
        for callback in list(self._callbacks):
            callback(question)

    # -- the console's side (any thread) --------------------------------------------------------
    def yes(self) -> Answer:
        return self.put(YES)

    def no(self) -> Answer:
        return self.put(NO)

    def rating(self, value: float) -> Answer:
        """A rating 0-100 (MPS, DMA, WUR...)."""
        return self.put(RATING, value)

    def value(self, reading: float) -> Answer:
        """A reading (VDT: x/8)."""
        return self.put(VALUE, reading)

    def done(self) -> Answer:
        """The operator step is carried out."""
        return self.put(DONE)

    def put(self, kind: str, value: float | None = None, **extra: Any) -> Answer:
        """Answer the open question now; ValueError (nothing recorded) if it does not fit."""
        with self._cond:
            question = self._question
            if question is None or self._answer is not None:
                raise ValueError("no question is waiting for an answer")
            allowed = (DONE,) if question.confirm else (YES, NO, RATING, VALUE)
            if kind not in allowed:
                raise ValueError(f"{question.stimulus.test}: answer with one of {allowed}, "
                                 f"not {kind!r}")
            if kind in (RATING, VALUE) and (value is None or not math.isfinite(value)):
                raise ValueError(f"{question.stimulus.test}: a {kind} needs a number")
            number = None if value is None else float(value)
            self._answer = Answer(kind, number, self.clock.now(), extra)
            self._cond.notify_all()
            return self._answer

    def cancel(self, reason: str = "cancelled by the examiner") -> None:
        """End the wait (and every later one in this run)."""
        with self._cond:
            self._cancelled = reason
            self._cond.notify_all()


def _answered(call: Callable[[], Answer], run: RunContext) -> Answer:
    """``call()``, with a cancelled wait turned into the run's stop."""
    try:
        return call()
    except AnswerCancelled as cancelled:
        if run.stopped.is_set():
            raise run.abort_error() from None
        raise RunAborted(str(cancelled)) from None


class ExaminerDelivery(ManualDelivery):
    """Hand-applied stimuli answered at the console; STOP ends the wait."""

    kinds = (MANUAL, CONFIRM)

    def abort(self) -> None:
        self.examiner.cancel("stopped")

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        return _answered(lambda: ManualDelivery.deliver(self, stimulus, trial, run), run)


class OperatorDelivery(ConfirmDelivery):
    """Operator steps (cold water, rests) confirmed at the console; STOP ends the wait."""

    def __init__(self, answers: ExaminerAnswers) -> None:
        super().__init__(confirm=answers.confirm)
        self.answers = answers

    def abort(self) -> None:
        self.answers.cancel("stopped")

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        return _answered(lambda: ConfirmDelivery.deliver(self, stimulus, trial, run), run)
