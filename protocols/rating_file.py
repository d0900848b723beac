"""Protocol kinds with rated heat pulses: ``heat-calibration`` and ``tsp-heat``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from protocols.files import ProtocolFile, Strict, register
from protocols.thermal_pulses import CuffTsp, HeatCalibration, HeatTsp, PulseShape


class PulseEntry(Strict):
    baseline_c: float = Field(32.0, ge=20.0, le=45.0)
    rate_c_s: float = Field(8.0, gt=0.0, le=300.0)
    return_rate_c_s: float = Field(8.0, gt=0.0, le=300.0)
    hold_s: float = Field(8.0, ge=0.0, le=60.0)
    rating_window_s: float = Field(8.0, gt=0.0, le=60.0)
    isi_s: tuple[float, float] = (10.0, 14.0)

    @model_validator(mode="after")
    def _isi(self) -> PulseEntry:
        low, high = self.isi_s
        if not 0.0 <= low <= high <= 600.0:
            raise ValueError(f"isi_s must be [min, max] seconds with 0 <= min <= max <= 600, "
                             f"got {list(self.isi_s)}")
        return self

    def shape(self) -> PulseShape:
        return PulseShape(**self.model_dump())


class CalibrationEntry(Strict):
    temperatures_c: list[Annotated[float, Field(ge=33.0, le=55.0, allow_inf_nan=False)]] = Field(
        min_length=3)
    repetitions: int = Field(2, ge=1, le=10)
    targets: list[float] = Field(default_factory=lambda: [30.0, 50.0, 70.0], min_length=1)
    instruction: str = ""
    participant_instruction: str = ""

    @model_validator(mode="after")
    def _sensible(self) -> CalibrationEntry:
        if any(not 0.0 < t < 100.0 for t in self.targets):
            raise ValueError("target ratings must lie strictly between 0 and 100")
        if len(set(self.temperatures_c)) < 3:
            raise ValueError("at least 3 different temperatures are needed for a fit")
        return self


class TrainEntry(Strict):
    target_c: float = Field(ge=33.0, le=52.0)
    pulses: int = Field(10, ge=2, le=50)
    period_s: float = Field(2.0, gt=0.0, le=30.0)  # onset to onset
    instruction: str = ""
    participant_instruction: str = ""


def _check(capabilities: Mapping[str, Any], what: str, targets: list[float],
           pulse: PulseEntry) -> None:
    """Every pulse, its dose included, as the thermode's driver would check it."""
    for target in sorted(set(targets)):
        capabilities["thermode"].require_stimulus(
            pulse.baseline_c, target, pulse.rate_c_s, pulse.return_rate_c_s, pulse.hold_s,
            what=f"{what} at {target:g} °C")


@register("heat-calibration")
class HeatCalibrationFile(ProtocolFile):
    calibration: CalibrationEntry
    pulse: PulseEntry = Field(default_factory=PulseEntry)
    roles = ("thermode", "rating")

    def steps(self) -> list[str]:
        return [f"T{t:g}" for t in self.calibration.targets]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        _check(capabilities, f"{self.name} (calibration pulse)",
               self.calibration.temperatures_c, self.pulse)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> HeatCalibration:
        c = self.calibration
        return HeatCalibration(c.temperatures_c, c.repetitions, self.pulse.shape(), rng,
                               tuple(c.targets), self.protocol.site if site is None else site,
                               c.instruction, c.participant_instruction)


@register("tsp-heat")
class HeatTspFile(ProtocolFile):
    train: TrainEntry
    pulse: PulseEntry = Field(default_factory=PulseEntry)
    roles = ("thermode", "rating")

    def steps(self) -> list[str]:
        return ["TSP"]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        _check(capabilities, f"{self.name} (train pulse)", [self.train.target_c], self.pulse)
        p = self.pulse
        busy = (abs(self.train.target_c - p.baseline_c) * (1 / p.rate_c_s + 1 / p.return_rate_c_s)
                + p.hold_s)
        if busy >= self.train.period_s:
            raise ValueError(f"{self.name}: a pulse takes {busy:.2f} s with its return, longer "
                             f"than the {self.train.period_s:g} s period")

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> HeatTsp:
        t = self.train
        return HeatTsp(t.target_c, t.pulses, self.pulse.shape(),
                       self.protocol.site if site is None else site, t.instruction,
                       t.participant_instruction, t.period_s)


class CuffTrainEntry(Strict):
    level_kpa: float = Field(gt=0.0, le=100.0)
    pulses: int = Field(10, ge=2, le=50)
    on_s: float = Field(1.0, gt=0.0, le=10.0)
    off_s: float = Field(1.0, gt=0.0, le=10.0)
    outlet: int = Field(1, ge=1, le=2)
    instruction: str = ""
    participant_instruction: str = ""


@register("tsp-cuff")
class CuffTspFile(ProtocolFile):
    train: CuffTrainEntry
    roles = ("cuff",)

    def steps(self) -> list[str]:
        return ["TSP"]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        t = self.train
        capabilities["cuff"].require(max_kpa=t.level_kpa, outlet=t.outlet,
                                     what=f"{self.name} (train of inflations)")

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> CuffTsp:
        t = self.train
        return CuffTsp(t.level_kpa, t.pulses, t.on_s, t.off_s, t.outlet,
                       self.protocol.site if site is None else site, t.instruction,
                       t.participant_instruction)
