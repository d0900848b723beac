"""A simulated examiner applying hand-held stimuli to a simulated participant.

Each stimulus takes ``seconds_per_stimulus`` of clock time (a train of pinpricks its
length at its rate) and is answered by :class:`sim.mechanical_participant.MechanicalParticipant`.
"""

from __future__ import annotations

from protocols.base import Answer, Stimulus
from qst_station.clock import Clock
from sim.mechanical_participant import MechanicalParticipant


class SimulatedExaminer:
    def __init__(self, participant: MechanicalParticipant, clock: Clock,
                 seconds_per_stimulus: float = 2.0) -> None:
        self.participant = participant
        self.clock = clock
        self.seconds_per_stimulus = seconds_per_stimulus

    def answer(self, stimulus: Stimulus) -> Answer:
        count = int(stimulus.params.get("count", 1))
        rate = float(stimulus.params.get("rate_hz", 1.0)) or 1.0
        self.clock.sleep(self.seconds_per_stimulus + (count - 1) / rate)
        answer = self.participant.answer(stimulus)
        return Answer(answer.kind, answer.value, self.clock.now(), answer.extra)
