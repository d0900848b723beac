"""A simulated participant: true thresholds, reaction time, noise, ratings; seeded.

The model is a TOML file (``docs/simulated-participants.md``)::

    [participant]
    code = "SIM001"
    reaction_time_s = 0.45       # mean time from perceiving to pressing
    reaction_time_sd_s = 0.08
    lapse_rate = 0.0             # chance of not answering a stimulus at all

    [thresholds]                 # true values in DFNS units
    CDT = 1.2                    # °C below the baseline
    HPT = 44.5                   # °C

    [noise]                      # trial-to-trial SD of each threshold, same units
    HPT = 0.6

    [ppt_sites]                  # true PPT (kPa) per site; other sites: thresholds.PPT
    "lumbar painful side" = 280.0

    [cuff]                       # the simulated cuff's VAS: 0 at detection, 10 at tolerance
    pain_detection_kpa = 25.0

    [cpm]                        # while conditioning acts (and carryover_s after it)
    effect_percent = 25.0        # PPT x (1 + effect/100); + = inhibition
    effect_heat_c = 1.0          # HPT + effect

Ratings of heat (0-100) follow a logistic function of temperature rising from HPT. The
simulation sets :attr:`SimulatedParticipant.conditioned` while a CPM conditioning stimulus
acts; PPT and HPT drawn then are modulated. The participant's true parameters go into the
session file of a simulated session.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MEASURES = ("CDT", "WDT", "CPT", "HPT", "PPT")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Strict):
    code: str = "SIM001"
    reaction_time_s: float = Field(0.45, gt=0.05, le=3.0)
    reaction_time_sd_s: float = Field(0.08, ge=0.0, le=1.0)
    lapse_rate: float = Field(0.0, ge=0.0, le=0.5)
    paradoxical_heat_rate: float = Field(0.0, ge=0.0, le=1.0)  # TSL cold ramps felt hot


class Thresholds(_Strict):
    CDT: float = Field(1.2, gt=0.0, le=20.0)  # °C below baseline
    WDT: float = Field(1.8, gt=0.0, le=15.0)  # °C above baseline
    CPT: float = Field(12.0, ge=-5.0, le=31.0)  # °C
    HPT: float = Field(44.5, ge=33.0, le=52.0)  # °C
    PPT: float = Field(350.0, gt=0.0, le=2000.0)  # kPa


class Noise(_Strict):
    CDT: float = Field(0.25, ge=0.0)
    WDT: float = Field(0.35, ge=0.0)
    CPT: float = Field(2.0, ge=0.0)
    HPT: float = Field(0.6, ge=0.0)
    PPT: float = Field(40.0, ge=0.0)


class HeatRating(_Strict):
    midpoint_above_hpt_c: float = 2.0  # rating 50/100 this far above HPT
    slope_per_c: float = Field(1.2, gt=0.0)
    noise: float = Field(6.0, ge=0.0)  # SD of a rating, points
    # temporal summation: each pulse that follows the previous one within train_gap_s is
    # rated this fraction higher than the one before (compounding; capped at 100)
    summation_per_pulse: float = Field(0.06, ge=0.0, le=1.0)
    train_gap_s: float = Field(6.0, gt=0.0)


class CuffPain(_Strict):
    """The simulated cuff's VAS: 0 below detection, linear to 10 cm at tolerance."""

    pain_detection_kpa: float = Field(25.0, gt=0.0, le=100.0)
    pain_tolerance_kpa: float = Field(60.0, gt=0.0, le=150.0)  # button 0.5 s after reaching it
    # temporal summation: an inflation that starts within train_gap_s of the previous one's
    # end is rated this fraction higher than that one (compounding)
    summation_per_inflation: float = Field(0.05, ge=0.0, le=1.0)
    train_gap_s: float = Field(3.0, gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> CuffPain:
        if not self.pain_detection_kpa < self.pain_tolerance_kpa:
            raise ValueError("pain_detection_kpa must be below pain_tolerance_kpa")
        return self


class Cpm(_Strict):
    """Conditioned pain modulation: thresholds while conditioning acts (+ = inhibition)."""

    effect_percent: float = Field(25.0, ge=-90.0, le=300.0)  # PPT change, % of the threshold
    effect_heat_c: float = Field(1.0, ge=-5.0, le=5.0)  # HPT change, °C
    carryover_s: float = Field(120.0, ge=0.0, le=3600.0)  # the effect outlasts conditioning


class Mechanical(_Strict):
    """Hand-held stimuli (``sim/mechanical_participant.py``)."""

    mdt_mN: float = Field(2.0, gt=0.0, le=1024.0)  # von Frey detection threshold
    mpt_mN: float = Field(64.0, gt=0.0, le=1024.0)  # pinprick "sharp" threshold
    noise_log10: float = Field(0.15, ge=0.0, le=1.0)
    gain: float = Field(0.6, ge=0.0)  # pinprick rating = gain * force_mN ** exponent
    exponent: float = Field(0.8, ge=0.0, le=2.0)
    windup: float = Field(2.0, ge=0.0)  # train rating / single rating
    allodynia: float = Field(0.0, ge=0.0, le=100.0)  # mean rating of light touch
    rating_noise: float = Field(3.0, ge=0.0)
    vdt_eighths: float = Field(6.5, ge=0.0, le=8.0)
    vdt_noise: float = Field(0.5, ge=0.0)


class ParticipantModel(_Strict):
    participant: Identity = Field(default_factory=Identity)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    noise: Noise = Field(default_factory=Noise)
    heat_rating: HeatRating = Field(default_factory=HeatRating)
    mechanical: Mechanical = Field(default_factory=Mechanical)
    ppt_sites: dict[str, Annotated[float, Field(gt=0.0, le=2000.0)]] = Field(
        default_factory=dict)  # true PPT (kPa) by site name (case-insensitive)
    cuff: CuffPain = Field(default_factory=CuffPain)
    cpm: Cpm = Field(default_factory=Cpm)


class ParticipantFileError(ValueError):
    """A participant model file that cannot be used (one line, naming the field)."""


def load_participant(path: str | Path | None) -> ParticipantModel:
    """The model in ``path`` (TOML), or the default participant."""
    if path is None:
        return ParticipantModel()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return ParticipantModel.model_validate(data)
    except OSError as exc:
        raise ParticipantFileError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ParticipantFileError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ParticipantFileError(f"{path}: {field}: {err['msg']}") from None


class SimulatedParticipant:
    """Draws per-trial thresholds, reaction times and ratings from a model, seeded."""

    def __init__(self, seed: int = 0, model: ParticipantModel | None = None) -> None:
        self.model = model or ParticipantModel()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._last_pulse: float | None = None
        self._train = 0
        self.conditioned = False  # a CPM conditioning stimulus acts (set by the simulation)

    # -- thresholds and reactions --------------------------------------------------------------
    def threshold(self, measure: str) -> float:
        """This trial's threshold for ``measure`` (true value plus trial-to-trial noise)."""
        true = getattr(self.model.thresholds, measure)
        value = float(true + self.rng.normal(0.0, getattr(self.model.noise, measure)))
        return self._modulated(measure, value)

    def true_ppt(self, site: str = "") -> float:
        """The true PPT (kPa) at ``site``: ``ppt_sites`` (case-insensitive), else ``PPT``."""
        key = site.strip().casefold()
        by_site = {k.strip().casefold(): v for k, v in self.model.ppt_sites.items()}
        return float(by_site.get(key, self.model.thresholds.PPT))

    def ppt(self, site: str = "") -> float:
        """This trial's PPT (kPa) at ``site``: truth, noise, conditioning."""
        value = self.true_ppt(site) + self.rng.normal(0.0, self.model.noise.PPT)
        return self._modulated("PPT", max(1.0, float(value)))

    def _modulated(self, measure: str, value: float) -> float:
        """``value`` changed by the CPM effect while :attr:`conditioned`."""
        if not self.conditioned:
            return value
        if measure == "PPT":
            return value * (1.0 + self.model.cpm.effect_percent / 100.0)
        if measure == "HPT":
            return value + self.model.cpm.effect_heat_c
        return value

    def reaction_time(self) -> float:
        p = self.model.participant
        return float(max(0.12, self.rng.normal(p.reaction_time_s, p.reaction_time_sd_s)))

    def lapses(self) -> bool:
        return bool(self.rng.random() < self.model.participant.lapse_rate)

    def feels_paradoxical_heat(self) -> bool:
        return bool(self.rng.random() < self.model.participant.paradoxical_heat_rate)

    # -- ratings -----------------------------------------------------------------------------------
    def expected_rating(self, celsius: float) -> float:
        """Mean 0-100 pain rating of a heat plateau at ``celsius``."""
        r = self.model.heat_rating
        x = r.slope_per_c * (celsius - self.model.thresholds.HPT - r.midpoint_above_hpt_c)
        return float(100.0 / (1.0 + np.exp(-x)))

    def rate_heat(self, celsius: float, when: float | None = None) -> tuple[float, float]:
        """(rating 0-100 rounded to 1, reaction time s) for a pulse that ended at ``when``
        (clock s; pulses closer than ``train_gap_s`` sum up temporally)."""
        r = self.model.heat_rating
        in_train = when is not None and self._last_pulse is not None \
            and when - self._last_pulse <= r.train_gap_s
        self._train = self._train + 1 if in_train else 0
        self._last_pulse = when
        expected = min(100.0, self.expected_rating(celsius)
                       * (1.0 + r.summation_per_pulse) ** self._train)
        rating = expected + self.rng.normal(0.0, r.noise)
        delay = float(self.model.participant.reaction_time_s * 2.5
                      * np.exp(self.rng.normal(0.0, 0.25)))
        return float(np.clip(np.round(rating), 0.0, 100.0)), delay

    def truth(self) -> dict[str, object]:
        """The true parameters, for the session file."""
        return {"seed": self.seed, **self.model.model_dump()}
