"""The ``thermal-adaptive`` protocol kind: a staircase, Psi or method of levels on heat/cold
pulses answered yes/no (button 1 = yes, button 2 or no press = no).

``judge`` says what the participant is asked: ``HPT`` (painful?), ``WDT`` (warm?) or ``CDT``
(cold?); levels are absolute °C for HPT and °C away from the baseline for WDT/CDT. The
measure is named ``name`` (e.g. ``HPT-stair``): such thresholds are not comparable with
DFNS method-of-limits values or reference data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols.adaptive import pressure_pulse, thermal_pulse
from protocols.files import ProtocolFile, Strict, register
from protocols.psychometric import PsychometricProcedure
from protocols.staircase import MethodOfLevels, Staircase

LEVELS = {"HPT": "absolute", "WDT": "warm", "CDT": "cold"}


class AdaptiveEntry(Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,30}$")
    method: Literal["staircase", "psi", "levels"]
    judge: Literal["HPT", "WDT", "CDT"]
    lower: float
    upper: float
    start: float | None = None  # staircase, levels
    step: float = Field(1.0, gt=0.0)  # staircase, levels
    min_step: float = Field(0.25, gt=0.0)
    n_down: int = Field(2, ge=1, le=5)
    max_reversals: int = Field(8, ge=1, le=40)
    estimate_last: int = Field(6, ge=1, le=40)
    halve_at: list[int] = Field(default_factory=lambda: [2, 4])
    grid_step: float = Field(0.25, ge=0.05)  # psi
    target_sd: float | None = Field(0.5, gt=0.0)  # psi
    max_trials: int = Field(40, ge=1, le=200)

    @model_validator(mode="after")
    def _bounds(self) -> AdaptiveEntry:
        if not self.lower < self.upper:
            raise ValueError("lower must be below upper")
        if self.start is not None and not self.lower <= self.start <= self.upper:
            raise ValueError("start must lie within [lower, upper]")
        low, high = (20.0, 55.0) if self.judge == "HPT" else (0.0, 25.0)
        if self.judge in LEVELS and not (low <= self.lower and self.upper <= high):
            raise ValueError(f"{self.judge} levels must lie in {low:g}-{high:g} "
                             f"({'°C' if self.judge == 'HPT' else '°C from the baseline'})")
        if self.method == "psi" and (self.upper - self.lower) / self.grid_step > 400:
            raise ValueError("grid_step too fine: at most 400 levels between lower and upper")
        return self


class YesNoPulse(Strict):
    baseline_c: float = Field(32.0, ge=20.0, le=45.0)
    rate_c_s: float = Field(8.0, gt=0.0, le=300.0)
    return_rate_c_s: float = Field(8.0, gt=0.0, le=300.0)
    hold_s: float = Field(2.0, ge=0.0, le=30.0)
    answer_window_s: float = Field(4.0, gt=0.0, le=30.0)
    isi_s: float = Field(6.0, ge=0.0, le=120.0)
    isi_jitter_s: float = Field(2.0, ge=0.0, le=60.0)


@register("thermal-adaptive")
class ThermalAdaptiveFile(ProtocolFile):
    procedure_: AdaptiveEntry = Field(alias="procedure")
    pulse: YesNoPulse = Field(default_factory=YesNoPulse)
    roles = ("thermode", "buttons")

    def steps(self) -> list[str]:
        return [self.procedure_.name]

    def temperatures(self) -> tuple[float, float]:
        """The coldest and hottest target the procedure can ask for."""
        p, base = self.procedure_, self.pulse.baseline_c
        sign = {"absolute": None, "warm": 1.0, "cold": -1.0}[LEVELS[p.judge]]
        if sign is None:
            return p.lower, p.upper
        ends = (base + sign * p.lower, base + sign * p.upper)
        return min(ends), max(ends)

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        coldest, hottest = self.temperatures()
        what = f"{self.name} ({self.procedure_.name}, {coldest:g}-{hottest:g} °C)"
        capabilities["thermode"].require(min_celsius=coldest, max_celsius=hottest, what=what)
        for target in (coldest, hottest):
            capabilities["thermode"].require_stimulus(
                self.pulse.baseline_c, target, self.pulse.rate_c_s,
                self.pulse.return_rate_c_s, self.pulse.hold_s, what=what)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Any:
        p, pulse = self.procedure_, self.pulse
        template = thermal_pulse(
            p.name, rate_c_s=pulse.rate_c_s, hold_s=pulse.hold_s,
            return_rate_c_s=pulse.return_rate_c_s, baseline_c=pulse.baseline_c,
            levels=LEVELS[p.judge], site=self.protocol.site if site is None else site,
            isi_s=pulse.isi_s, isi_jitter_s=pulse.isi_jitter_s)
        template = replace(template, params={**template.params, "ask": "yes-no",
                                             "judge": p.judge,
                                             "rating_window_s": pulse.answer_window_s})
        return _adaptive(p, template, rng)


def _adaptive(p: AdaptiveEntry, template: Any, rng: np.random.Generator) -> Any:
    """The procedure ``p.method`` names, presenting ``template`` pulses."""
    common = {"lower": p.lower, "upper": p.upper, "max_trials": p.max_trials, "rng": rng}
    start = p.start if p.start is not None else p.lower
    if p.method == "staircase":
        return Staircase(p.name, template, start=start, step=p.step, n_down=p.n_down,
                         max_reversals=p.max_reversals, estimate_last=p.estimate_last,
                         halve_at=p.halve_at, min_step=min(p.min_step, p.step), **common)
    if p.method == "levels":
        return MethodOfLevels(p.name, template, start=start, step=p.step,
                              min_step=min(p.min_step, p.step), **common)
    return PsychometricProcedure(p.name, template, grid_step=p.grid_step,
                                 target_sd=p.target_sd, **common)


class CuffYesNoPulse(Strict):
    rate_kpa_s: float = Field(10.0, gt=0.0, le=100.0)
    hold_s: float = Field(1.0, ge=0.0, le=30.0)
    answer_window_s: float = Field(4.0, gt=0.0, le=30.0)
    isi_s: float = Field(5.0, ge=0.0, le=120.0)
    isi_jitter_s: float = Field(2.0, ge=0.0, le=60.0)
    outlet: int = Field(1, ge=1, le=2)


class CuffAdaptiveEntry(AdaptiveEntry):
    judge: Literal["cPDT"] = "cPDT"  # painful?

    @model_validator(mode="after")
    def _pressures(self) -> CuffAdaptiveEntry:
        if not (self.lower > 0.0 and self.upper <= 100.0):
            raise ValueError("cuff levels must lie in 0-100 kPa")
        return self


@register("cuff-adaptive")
class CuffAdaptiveFile(ProtocolFile):
    """A staircase, Psi or method of levels on cuff pulses (kPa) answered yes/no: the cuff
    pain detection threshold without reaction time (``cPDT-stair`` etc.)."""

    procedure_: CuffAdaptiveEntry = Field(alias="procedure")
    pulse: CuffYesNoPulse = Field(default_factory=CuffYesNoPulse)
    roles = ("cuff", "buttons")

    def steps(self) -> list[str]:
        return [self.procedure_.name]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        capabilities["cuff"].require(max_kpa=self.procedure_.upper, outlet=self.pulse.outlet,
                                     what=f"{self.name} ({self.procedure_.name})")

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Any:
        p, pulse = self.procedure_, self.pulse
        template = pressure_pulse(p.name, rate_kpa_s=pulse.rate_kpa_s, hold_s=pulse.hold_s,
                                  site=self.protocol.site if site is None else site,
                                  isi_s=pulse.isi_s, isi_jitter_s=pulse.isi_jitter_s)
        template = replace(template, params={**template.params, "ask": "yes-no",
                                             "outlet": pulse.outlet,
                                             "rating_window_s": pulse.answer_window_s})
        return _adaptive(p, template, rng)
