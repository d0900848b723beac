"""A simulated examiner + participant for the mechanical tests, seeded and reproducible.

Detection (MDT, MPT): the answer is YES when ``force > threshold * noise``, where
``log10(noise)`` is Gaussian with SD ``noise_log10`` (drawn anew for every stimulus).
Pain ratings (MPS, WUR) follow a power function of the pinprick force,
``gain * force_mN ** exponent``, trains are ``windup`` times the single rating, light touch
is rated ``allodynia`` (0 for a healthy participant); each rating above 0 gets Gaussian noise
and is rounded and clipped to 0-100 (an expected 0 stays 0). Tuning fork readings (VDT) are
``vdt_eighths`` plus noise, rounded to whole eighths and clipped to 0-8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols.base import NO, RATING, VALUE, YES, Answer, Stimulus


@dataclass
class MechanicalParticipant:
    seed: int = 0
    mdt_mN: float = 2.0  # true von Frey detection threshold
    mpt_mN: float = 64.0  # true pinprick "sharp" threshold
    noise_log10: float = 0.15  # SD of log10 of the threshold noise
    gain: float = 0.6  # rating = gain * force_mN ** exponent (before noise)
    exponent: float = 0.8
    windup: float = 2.0  # train rating / single rating
    allodynia: float = 0.0  # mean rating of light touch
    rating_noise: float = 3.0  # SD of a rating, points
    vdt_eighths: float = 6.5  # mean tuning fork reading x/8
    vdt_noise: float = 0.5  # SD of a reading, eighths
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def expected_rating(self, stimulus: Stimulus) -> float:
        """Mean 0-100 rating of an MPS or WUR stimulus."""
        force = stimulus.params.get("force_mN")
        if force is None:
            return self.allodynia
        rating = self.gain * float(force) ** self.exponent
        if stimulus.params.get("count", 1) > 1:
            rating *= self.windup
        return min(rating, 100.0)

    def detects(self, force_mN: float, threshold_mN: float) -> bool:
        """One detection answer: force above the noisy threshold."""
        return force_mN > threshold_mN * 10.0 ** self.rng.normal(0.0, self.noise_log10)

    def answer(self, stimulus: Stimulus) -> Answer:
        """What the examiner records for ``stimulus`` (MDT, MPT, MPS, WUR or VDT)."""
        if stimulus.test in ("MDT", "MPT"):
            threshold = self.mdt_mN if stimulus.test == "MDT" else self.mpt_mN
            felt = self.detects(float(stimulus.params["force_mN"]), threshold)
            return Answer(YES if felt else NO)
        if stimulus.test == "VDT":
            reading = self.vdt_eighths + self.rng.normal(0.0, self.vdt_noise)
            return Answer(VALUE, float(np.clip(np.round(reading), 0.0, 8.0)))
        mean = self.expected_rating(stimulus)
        rating = mean + self.rng.normal(0.0, self.rating_noise) if mean > 0 else 0.0
        return Answer(RATING, float(np.clip(np.round(rating), 0.0, 100.0)) + 0.0)  # no -0.0
