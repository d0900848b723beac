"""Stimuli the examiner applies by hand (von Frey, pinprick, brush, tuning fork).

The runner shows the examiner which stimulus to apply and where in the series; the
examiner records the participant's answer (yes/no, a rating, a reading). An ``examiner`` is
anything with ``answer(stimulus) -> Answer`` that may take its time: the operator console
asks a person; :class:`sim.examiner.SimulatedExaminer` answers for a simulated participant.
"""

from __future__ import annotations

from typing import Any

from protocols.base import CONFIRM, MANUAL, Answer, Stimulus
from qst_station.runner import RunContext


class ManualDelivery:
    kinds = (MANUAL, CONFIRM)

    def __init__(self, examiner: Any, name: str = "examiner") -> None:
        self.examiner = examiner
        self.name = name

    def abort(self) -> None:
        """Nothing to switch off: the examiner stops by hand."""

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        run.announce(stimulus)
        onset = run.clock.now()
        run.recording.event("stimulus_onset", {
            "device": self.name, "test": stimulus.test, "trial": trial,
            "modality": "mechanical", "repetition": stimulus.repetition,
            "site": stimulus.site, **{k: v for k, v in stimulus.params.items()
                                      if isinstance(v, (int, float, str))}}, onset)
        answer = self.examiner.answer(stimulus)
        run.recording.event("stimulus_offset", {"trial": trial, "device": self.name})
        return answer
