"""A simulated participant: pain ratings of heat stimuli, seeded and reproducible.

Ratings (0-100, 0 = no pain) follow a logistic function of the plateau temperature centred
on the participant's heat pain threshold plus ``midpoint_above_hpt_c``; each rating has
Gaussian noise and arrives after a log-normal reaction time. Threshold procedures (method
of limits, staircases) will build on the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SimulatedParticipant:
    seed: int = 0
    hpt_c: float = 44.0  # heat pain threshold: where ratings start to rise
    midpoint_above_hpt_c: float = 2.0  # 50/100 this far above the threshold
    slope_per_c: float = 1.2  # logistic slope
    rating_noise: float = 6.0  # SD of a rating, points
    reaction_s: float = 1.2  # median time to give a rating
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def expected_rating(self, celsius: float) -> float:
        """Mean 0-100 pain rating of a heat plateau at ``celsius``."""
        x = self.slope_per_c * (celsius - self.hpt_c - self.midpoint_above_hpt_c)
        return float(100.0 / (1.0 + np.exp(-x)))

    def rate_heat(self, celsius: float) -> tuple[float, float]:
        """(rating 0-100 rounded to 1, reaction time s) for one stimulus."""
        rating = self.expected_rating(celsius) + self.rng.normal(0.0, self.rating_noise)
        delay = float(self.reaction_s * np.exp(self.rng.normal(0.0, 0.25)))
        return float(np.clip(np.round(rating), 0.0, 100.0)), delay
