"""Protocol kinds ``pressure-ppt`` (PPT over sites, side differences) and ``cpm``.

See docs/protocols-pressure.md for the file format, defaults and conventions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols.files import ProtocolFile, Strict, register
from protocols.pressure import (
    Battery,
    Conditioning,
    CpmProcedure,
    CpmSpec,
    HeatTest,
    PptProcedure,
    PptTest,
    SitePair,
)

DEVICE = {"PPT": "algometer", "cPDT": "cuff"}
DEFAULTS = {"PPT": (50.0, 1000.0), "cPDT": (1.0, 100.0)}  # rate kPa/s, cut-off kPa
CUFF_ONLY = ("outlet", "stop_vas_cm")


def _isi(isi_s: tuple[float, float]) -> None:
    low, high = isi_s
    if not 0.0 <= low <= high <= 600.0:
        raise ValueError(f"isi_s must be [min, max] seconds with 0 <= min <= max <= 600, "
                         f"got {list(isi_s)}")


def _only(entry: Strict, names: tuple[str, ...], when: str) -> None:
    given = sorted(set(names) & entry.model_fields_set)
    if given:
        raise ValueError(f"{', '.join(given)}: only for {when}")


class PptEntry(Strict):
    test: Literal["PPT", "cPDT"] = "PPT"  # PPT: handheld algometer; cPDT: cuff ramp
    sites: list[str] = Field(min_length=1)
    repetitions: int = Field(3, ge=1, le=10)
    rate_kpa_s: float | None = Field(None, gt=0.0, le=200.0)
    limit_kpa: float | None = Field(None, gt=0.0, le=2000.0)
    tolerance: float = Field(0.2, gt=0.0, lt=1.0)
    isi_s: tuple[float, float] = (8.0, 12.0)
    order: Literal["blocked", "rotating"] = "blocked"
    outlet: Literal[1, 2] = 1
    stop_vas_cm: float | None = Field(None, gt=0.0, le=10.0)
    instruction: str = ""
    participant_instruction: str = ""

    @model_validator(mode="after")
    def _valid(self) -> PptEntry:
        _isi(self.isi_s)
        if any(not s.strip() for s in self.sites):
            raise ValueError("site names must not be empty")
        if len({s.strip().casefold() for s in self.sites}) < len(self.sites):
            raise ValueError("a site is listed twice")
        if self.test == "PPT":
            _only(self, CUFF_ONLY, "cPDT (cuff) tests")
        return self

    @property
    def rate(self) -> float:
        return self.rate_kpa_s if self.rate_kpa_s is not None else DEFAULTS[self.test][0]

    @property
    def limit(self) -> float:
        return self.limit_kpa if self.limit_kpa is not None else DEFAULTS[self.test][1]

    def spec(self, sites: list[str]) -> PptTest:
        return PptTest(tuple(sites), self.test, DEVICE[self.test], self.repetitions, self.rate,
                       self.limit, self.tolerance, self.isi_s, self.order, self.outlet,
                       self.stop_vas_cm, self.instruction, self.participant_instruction)


class PairEntry(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
    site: str  # e.g. the painful side
    reference: str  # e.g. the contralateral side
    test: Literal["PPT", "cPDT"] = "PPT"
    flag_percent: float = Field(35.0, gt=0.0, le=1000.0)

    def pair(self) -> SitePair:
        return SitePair(self.name, self.site, self.reference, self.test, self.flag_percent)


def _check_pressure(capabilities: Mapping[str, Any], role: str, what: str, **needs: Any
                    ) -> None:
    capabilities[role].require(what=what, **needs)


@register("pressure-ppt")
class PressurePptFile(ProtocolFile):
    tests: list[PptEntry] = Field(min_length=1)
    pairs: list[PairEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _pairs_known(self) -> PressurePptFile:
        names = [p.name for p in self.pairs]
        if len(set(names)) < len(names):
            raise ValueError("pair names must be unique")
        for p in self.pairs:
            sites = {s.strip().casefold() for t in self.tests if t.test == p.test
                     for s in t.sites}
            for site in (p.site, p.reference):
                if site.strip().casefold() not in sites:
                    raise ValueError(f"pair {p.name!r}: {site!r} is not a site of a "
                                     f"{p.test} test")
            if p.site.strip().casefold() == p.reference.strip().casefold():
                raise ValueError(f"pair {p.name!r}: site and reference are the same")
        return self

    @property
    def roles(self) -> tuple[str, ...]:  # type: ignore[override]
        tests = {t.test for t in self.tests}
        return (*(("algometer", "buttons") if "PPT" in tests else ()),
                *(("cuff",) if "cPDT" in tests else ()))

    def steps(self) -> list[str]:
        return [*(f"{t.test} ({len(t.sites)} sites)" for t in self.tests),
                *(f"{p.test}-diff{pct}:{p.name}" for p in self.pairs for pct in ("", "-pct"))]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        for number, t in enumerate(self.tests, start=1):
            what = f"{self.name} step {number} ({t.test})"
            if t.test == "PPT":
                _check_pressure(capabilities, "algometer", what, max_kpa=t.limit)
            else:
                _check_pressure(capabilities, "cuff", what, max_kpa=t.limit, outlet=t.outlet,
                                rate_kpa_s=t.rate)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Battery:
        """All sites of the file; ``site`` runs every test at that one site (no pairs)."""
        if site is None:
            return Battery([PptProcedure(t.spec(t.sites), rng) for t in self.tests],
                           [p.pair() for p in self.pairs])
        return Battery([PptProcedure(t.spec([site]), rng) for t in self.tests])


PPT_ONLY = ("rate_kpa_s", "limit_kpa", "tolerance")
HPT_ONLY = ("baseline_c", "rate_c_s", "warm_limit_c", "return_rate_c_s")
CUFF_FIELDS = ("outlet", "level_kpa", "level_vas_cm", "search_rate_kpa_s", "max_kpa")


class CpmEntry(Strict):
    test: Literal["CPM"] = "CPM"
    mode: Literal["parallel", "sequential"] = "parallel"
    test_stimulus: Literal["PPT", "HPT"] = "PPT"
    site: str | None = None  # test site (default: the protocol's site)
    repetitions: int = Field(3, ge=1, le=10)
    isi_s: tuple[float, float] = (8.0, 12.0)
    lead_in_s: float = Field(20.0, ge=0.0, le=600.0)  # parallel
    delay_s: float = Field(10.0, ge=0.0, le=600.0)  # sequential
    # PPT test stimulus (handheld algometer)
    rate_kpa_s: float = Field(50.0, gt=0.0, le=200.0)
    limit_kpa: float = Field(1000.0, gt=0.0, le=2000.0)
    tolerance: float = Field(0.2, gt=0.0, lt=1.0)
    # HPT test stimulus (thermode)
    baseline_c: float = Field(32.0, ge=20.0, le=45.0)
    rate_c_s: float = Field(1.0, gt=0.0, le=300.0)
    warm_limit_c: float = Field(50.0, ge=33.0, le=60.0)
    return_rate_c_s: float = Field(5.0, gt=0.0, le=300.0)
    # conditioning
    conditioning: Literal["cuff", "cold-water", "tonic-heat"] = "cuff"
    conditioning_site: str = ""
    duration_s: float = Field(120.0, gt=0.0, le=600.0)
    outlet: Literal[1, 2] = 2
    level_kpa: float | None = Field(None, gt=0.0, le=200.0)
    level_vas_cm: float | None = Field(None, gt=0.0, le=10.0)
    search_rate_kpa_s: float = Field(2.0, ge=0.1, le=100.0)
    max_kpa: float = Field(100.0, gt=0.0, le=200.0)
    temperature_c: float | None = Field(None, ge=0.0, le=50.0)
    conditioning_instruction: str = ""

    @model_validator(mode="after")
    def _valid(self) -> CpmEntry:
        _isi(self.isi_s)
        if self.test_stimulus == "PPT":
            _only(self, HPT_ONLY, "HPT test stimuli")
        else:
            _only(self, PPT_ONLY, "PPT test stimuli")
            if not self.baseline_c < self.warm_limit_c:
                raise ValueError("the baseline must lie below warm_limit_c")
        if self.conditioning != "cuff":
            _only(self, CUFF_FIELDS, "cuff conditioning")
            return self
        _only(self, ("temperature_c",), "cold-water / tonic-heat conditioning")
        if (self.level_kpa is None) == (self.level_vas_cm is None):
            raise ValueError("cuff conditioning needs one of level_kpa or level_vas_cm")
        if self.level_kpa is not None and self.level_kpa > self.max_kpa:
            raise ValueError(f"level_kpa {self.level_kpa:g} is above max_kpa {self.max_kpa:g}")
        if self.mode == "parallel" and self.duration_s <= self.lead_in_s:
            raise ValueError("parallel CPM: duration_s must be longer than lead_in_s")
        return self

    def spec(self, site: str) -> CpmSpec:
        if self.test_stimulus == "PPT":
            test: PptTest | HeatTest = PptTest(
                (site,), "PPT", "algometer", self.repetitions, self.rate_kpa_s, self.limit_kpa,
                self.tolerance, self.isi_s,
                participant_instruction="Press the button as soon as the pressure becomes "
                                        "painful.")
        else:
            test = HeatTest(self.baseline_c, self.rate_c_s, self.warm_limit_c,
                            self.return_rate_c_s)
        conditioning = Conditioning(
            self.conditioning, self.conditioning_site, self.outlet, self.level_kpa,
            self.level_vas_cm, self.search_rate_kpa_s, self.max_kpa, self.duration_s,
            self.temperature_c, self.conditioning_instruction)
        return CpmSpec(test, conditioning, self.mode, self.repetitions, site, self.isi_s,
                       self.lead_in_s, self.delay_s)


@register("cpm")
class CpmFile(ProtocolFile):
    tests: list[CpmEntry] = Field(min_length=1)

    @property
    def roles(self) -> tuple[str, ...]:  # type: ignore[override]
        roles = []
        for t in self.tests:
            roles += ["algometer" if t.test_stimulus == "PPT" else "thermode", "buttons",
                      "cuff" if t.conditioning == "cuff" else "operator"]
        return tuple(dict.fromkeys(roles))

    def steps(self) -> list[str]:
        return ["CPM-baseline", "CPM-conditioned", "CPM", "CPM-pct"]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        for number, t in enumerate(self.tests, start=1):
            what = f"{self.name} step {number} (CPM)"
            if t.test_stimulus == "PPT":
                _check_pressure(capabilities, "algometer", what, max_kpa=t.limit_kpa)
            else:
                capabilities["thermode"].require(
                    max_celsius=t.warm_limit_c, rise_rate=t.rate_c_s,
                    return_rate=t.return_rate_c_s, ramp_and_hold=True, what=what)
            if t.conditioning == "cuff":
                top = t.level_kpa if t.level_kpa is not None else t.max_kpa
                rate = t.search_rate_kpa_s if t.level_vas_cm is not None else None
                _check_pressure(capabilities, "cuff", f"{what} conditioning", max_kpa=top,
                                outlet=t.outlet, rate_kpa_s=rate)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Battery:
        """``site`` overrides every test site (else the entry's, else the protocol's)."""
        def where(t: CpmEntry) -> str:
            if site is not None:
                return site
            return t.site if t.site is not None else self.protocol.site

        return Battery([CpmProcedure(t.spec(where(t)), rng) for t in self.tests])
