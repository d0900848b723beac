"""Pressure pain thresholds over sites, side-to-side differences, and CPM sequencing (pure).

* :class:`PptProcedure`: ``repetitions`` pressure ramps per site (``PRESSURE_RAMP``; handheld
  algometer at 50 kPa/s, or a cuff ramp); per site the mean of the values (kPa), log10 for z
  (DFNS PPT). Each answer may carry the application's mean rate (``extra["mean_rate_kpa_s"]``);
  a rate more than ``tolerance`` off the target flags the site ``rate-off-target``.
* :class:`Battery`: procedures in order, plus the side-to-side differences of the
  declared :class:`SitePair` s: ``PPT-diff:<pair>`` = PPT(site) - PPT(reference) in kPa and
  ``PPT-diff-pct:<pair>`` = 100 * (PPT(site) - PPT(reference)) / PPT(reference). Negative:
  ``site`` has the lower threshold (is more sensitive) than ``reference``.
* :class:`CpmProcedure`: test stimuli (PPT or HPT ramps) at baseline, conditioning
  (cuff program or an operator-confirmed cold-water / tonic-heat step), test stimuli during
  (parallel) or after (sequential) it. ``CPM`` = conditioned mean - baseline mean (test
  units), ``CPM-pct`` = 100 * CPM / baseline mean. Both tests are thresholds, so positive
  = the threshold rose = inhibition (pain inhibits pain); negative = facilitation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.base import (
    CONFIRM,
    CUFF_PROGRAM,
    CUTOFF,
    DONE,
    PRESSURE_RAMP,
    STOPPED,
    THERMAL_RAMP,
    Answer,
    InOrder,
    Measure,
    ProtocolError,
    Stimulus,
    isi_schedule,
    outlier_flags,
)

CPM_SIGN = ("conditioned - baseline; positive = the threshold rose during/after conditioning "
            "= inhibition (CPM working), negative = facilitation")
PAIR_SIGN = ("site - reference; negative = site more sensitive (lower threshold) than "
             "reference; percent of the reference")


@dataclass(frozen=True)
class PptTest:
    """Pressure ramps at some sites (``test``: ``PPT`` algometer, ``cPDT`` cuff)."""

    sites: tuple[str, ...]
    test: str = "PPT"
    device: str = "algometer"  # "algometer" (examiner's hand) or "cuff"
    repetitions: int = 3
    rate_kpa_s: float = 50.0
    limit_kpa: float = 1000.0  # cut-off: the ramp ends here without a press
    tolerance: float = 0.2  # fraction of the target rate still on target
    isi_s: tuple[float, float] = (8.0, 12.0)
    order: str = "blocked"  # "blocked": all repetitions at a site, then the next; "rotating"
    outlet: int = 1  # cuff only
    stop_vas_cm: float | None = None  # cuff only: the ramp also ends when the VAS reaches this
    instruction: str = ""
    participant_instruction: str = ""

    def plan(self) -> list[tuple[str, int]]:
        """(site, repetition) of each ramp in order."""
        if not self.sites:
            raise ProtocolError(f"{self.test}: no sites")
        if self.order == "rotating":
            return [(s, r) for r in range(1, self.repetitions + 1) for s in self.sites]
        if self.order == "blocked":
            return [(s, r) for s in self.sites for r in range(1, self.repetitions + 1)]
        raise ProtocolError(f"{self.test}: order must be 'blocked' or 'rotating'")

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"device": self.device, "rate_kpa_s": self.rate_kpa_s,
                             "limit_kpa": self.limit_kpa, "tolerance": self.tolerance}
        if self.device == "cuff":
            p["outlet"] = self.outlet
            if self.stop_vas_cm is not None:
                p["stop_vas_cm"] = self.stop_vas_cm
        return p

    def stimulus(self, site: str, repetition: int, isi_s: float, prefix: str = "",
                 **extra: Any) -> Stimulus:
        how = "cuff ramp" if self.device == "cuff" else "press the algometer"
        return Stimulus(
            self.test, PRESSURE_RAMP, {**self.params(), **extra}, repetition, isi_s, site,
            self.instruction or f"{prefix}{self.test} {site} {repetition}/{self.repetitions}: "
                                f"{how} at {self.rate_kpa_s:g} kPa/s until the participant "
                                f"presses (cut-off {self.limit_kpa:g} kPa)",
            self.participant_instruction)


def check_ramp_answer(test: str, answer: Answer) -> None:
    """ProtocolError unless ``answer`` is a stop or cut-off with a pressure >= 0."""
    if answer.kind not in (STOPPED, CUTOFF):
        raise ProtocolError(f"{test}: a ramp is answered with {[STOPPED, CUTOFF]}, "
                            f"not {answer.kind!r}")
    if answer.value is None or not np.isfinite(answer.value) or answer.value < 0:
        raise ProtocolError(f"{test}: the answer needs the value reached, got {answer.value!r}")


def rate_off(rate: float | None, target: float, tolerance: float) -> bool:
    """True if the application rate is unknown or off the target by more than ``tolerance``."""
    return rate is None or abs(rate - target) > tolerance * target


def ramp_flags(answers: Sequence[Answer], target: float | None, tolerance: float
               ) -> tuple[str, ...]:
    """``cutoff-reached`` and (with a target rate) ``rate-off-target`` of some answers."""
    flags = ["cutoff-reached"] if any(a.kind == CUTOFF for a in answers) else []
    if target is not None and any(rate_off(a.extra.get("mean_rate_kpa_s"), target, tolerance)
                                  for a in answers):
        flags.append("rate-off-target")
    return tuple(flags)


def rate_extra(answers: Sequence[Answer], target: float) -> dict[str, Any]:
    rates = [a.extra.get("mean_rate_kpa_s") for a in answers]
    known = [r for r in rates if r is not None]
    return {"rates_kpa_s": rates, "target_rate_kpa_s": target,
            "mean_rate_kpa_s": float(np.mean(known)) if known else None}


class PptProcedure:
    """The ramps of one :class:`PptTest` and one measure per site."""

    def __init__(self, spec: PptTest, rng: np.random.Generator) -> None:
        self.spec = spec
        self._plan = spec.plan()
        self._isi = isi_schedule(len(self._plan), spec.isi_s, rng)
        self.answers: list[tuple[str, Answer]] = []

    @property
    def done(self) -> bool:
        return len(self.answers) == len(self._plan)

    def next_stimulus(self) -> Stimulus | None:
        if self.done:
            return None
        i = len(self.answers)
        site, repetition = self._plan[i]
        return self.spec.stimulus(site, repetition, self._isi[i])

    def record(self, answer: Answer) -> None:
        stimulus = self.next_stimulus()
        if stimulus is None:
            raise ProtocolError(f"{self.spec.test}: all ramps are answered")
        check_ramp_answer(self.spec.test, answer)
        self.answers.append((stimulus.site, answer))

    def result(self) -> list[Measure]:
        s = self.spec
        out = []
        for site in dict.fromkeys(site for site, _ in self._plan):
            answers = [a for where, a in self.answers if where == site]
            if not answers:
                continue
            values = tuple(float(a.value) for a in answers if a.value is not None)
            target = s.rate_kpa_s if s.device == "algometer" else None
            flags = ramp_flags(answers, target, s.tolerance) + outlier_flags(values, True)
            if len(answers) < s.repetitions:
                flags += ("incomplete",)
            out.append(Measure(s.test, float(np.mean(values)), "kPa",
                               "log10" if s.test == "PPT" else "none", values, flags, site,
                               {"device": s.device, **rate_extra(answers, s.rate_kpa_s)}))
        return out


@dataclass(frozen=True)
class SitePair:
    """Two sites compared: ``site`` (e.g. the painful side) against ``reference``."""

    name: str
    site: str
    reference: str
    test: str = "PPT"
    flag_percent: float = 35.0  # |percent| above this: flag large-side-difference


def side_differences(measures: Sequence[Measure], pair: SitePair) -> list[Measure]:
    """``PPT-diff:<pair>`` (kPa) and ``PPT-diff-pct:<pair>`` (%), if both sites have a value."""
    by_site = {m.site.strip().casefold(): m for m in measures if m.name == pair.test}
    a = by_site.get(pair.site.strip().casefold())
    b = by_site.get(pair.reference.strip().casefold())
    if a is None or b is None:
        return []
    diff = a.value - b.value
    percent = 100.0 * diff / b.value if b.value > 0 else float("nan")
    flags = tuple(dict.fromkeys(a.flags + b.flags))
    if abs(percent) > pair.flag_percent:
        flags += ("large-side-difference",)
    extra = {"pair": pair.name, "site_a": a.site, "site_b": b.site, "value_a": a.value,
             "value_b": b.value, "diff_kpa": diff, "percent": percent, "sign": PAIR_SIGN,
             "flag_percent": pair.flag_percent}
    return [Measure(f"{pair.test}-diff:{pair.name}", diff, "kPa", "none", (a.value, b.value),
                    flags, "", extra),
            Measure(f"{pair.test}-diff-pct:{pair.name}", percent, "%", "none",
                    (a.value, b.value), flags, "", extra)]


class Battery(InOrder):
    """Procedures one after another (PPT series, CPM), then the side differences of ``pairs``."""

    def __init__(self, procedures: Sequence[Any], pairs: Sequence[SitePair] = ()) -> None:
        super().__init__(list(procedures))
        self.pairs = list(pairs)

    def result(self) -> list[Measure]:
        measures = super().result()
        return measures + [d for pair in self.pairs for d in side_differences(measures, pair)]


# -- CPM ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HeatTest:
    """HPT ramps as the CPM test stimulus (the thermode's method-of-limits ramp)."""

    baseline_c: float = 32.0
    rate_c_s: float = 1.0
    limit_c: float = 50.0
    return_rate_c_s: float = 5.0


@dataclass(frozen=True)
class Conditioning:
    """The conditioning stimulus: a cuff program, or a step the operator confirms."""

    kind: str = "cuff"  # "cuff", "cold-water", "tonic-heat"
    site: str = ""
    outlet: int = 2  # cuff
    level_kpa: float | None = 40.0  # cuff: fixed level ...
    level_vas_cm: float | None = None  # ... or the pressure at which the VAS reaches this
    search_rate_kpa_s: float = 2.0  # cuff: ramp rate when searching the VAS level
    max_kpa: float = 100.0  # cuff: highest pressure of the search
    duration_s: float = 120.0  # sequential: its length; parallel: the longest it may last
    temperature_c: float | None = None  # cold water / tonic heat (for the instruction)
    instruction: str = ""

    @property
    def stimulus_kind(self) -> str:
        return CUFF_PROGRAM if self.kind == "cuff" else CONFIRM


@dataclass(frozen=True)
class CpmSpec:
    """A CPM paradigm: test stimulus before and during (parallel) / after (sequential)."""

    test: PptTest | HeatTest
    conditioning: Conditioning = field(default_factory=Conditioning)
    mode: str = "parallel"  # or "sequential"
    repetitions: int = 3  # test stimuli at baseline and again conditioned
    site: str = ""  # test site
    isi_s: tuple[float, float] = (8.0, 12.0)
    lead_in_s: float = 20.0  # parallel: conditioning this long before the first test
    delay_s: float = 10.0  # sequential: from the end of conditioning to the first test

    @property
    def test_name(self) -> str:
        return self.test.test if isinstance(self.test, PptTest) else "HPT"

    @property
    def unit(self) -> str:
        return "kPa" if isinstance(self.test, PptTest) else "degC"


class CpmProcedure:
    """Baseline tests, conditioning on, conditioned tests, conditioning off; CPM measures."""

    def __init__(self, spec: CpmSpec, rng: np.random.Generator) -> None:
        if spec.mode not in ("parallel", "sequential"):
            raise ProtocolError(f"CPM: mode must be 'parallel' or 'sequential', not {spec.mode!r}")
        self.spec = spec
        self._steps = self._plan(rng)
        self.answers: list[Answer] = []

    def _plan(self, rng: np.random.Generator) -> list[Stimulus]:
        s, n = self.spec, self.spec.repetitions

        def isi() -> float:
            return float(rng.uniform(*s.isi_s))

        baseline = [self._test(i + 1, "baseline", 0.0 if i == 0 else isi()) for i in range(n)]
        on = self._conditioning("start", isi())
        off = self._conditioning("stop", 0.0)
        first = s.lead_in_s if s.mode == "parallel" else s.delay_s
        conditioned = [self._test(i + 1, "conditioned", first if i == 0 else isi())
                       for i in range(n)]
        if s.mode == "parallel":
            return [*baseline, on, *conditioned, off]
        return [*baseline, on, off, *conditioned]

    def _test(self, repetition: int, phase: str, isi_s: float) -> Stimulus:
        s = self.spec
        if isinstance(s.test, PptTest):
            return s.test.stimulus(s.site, repetition, isi_s, f"CPM {phase} ", cpm_phase=phase)
        t = s.test
        return Stimulus("HPT", THERMAL_RAMP,
                        {"baseline_c": t.baseline_c, "limit_c": t.limit_c, "rate_c_s": t.rate_c_s,
                         "return_rate_c_s": t.return_rate_c_s, "direction": "warm",
                         "cpm_phase": phase},
                        repetition, isi_s, s.site,
                        f"CPM {phase} HPT {repetition}/{s.repetitions}: heat ramp, the "
                        f"participant presses at the first pain (cut-off {t.limit_c:g} °C)",
                        "Press the button as soon as the heat becomes painful.")

    def _conditioning(self, action: str, isi_s: float) -> Stimulus:
        s, c = self.spec, self.spec.conditioning
        hold = c.duration_s if action == "start" and s.mode == "sequential" else 0.0
        params: dict[str, Any] = {"action": action, "conditioning": c.kind, "mode": s.mode,
                                  "hold_s": hold}
        if c.kind == "cuff":
            params.update(outlet=c.outlet, duration_s=c.duration_s, max_kpa=c.max_kpa,
                          search_rate_kpa_s=c.search_rate_kpa_s)
            if c.level_vas_cm is not None:
                params["level_vas_cm"] = c.level_vas_cm
            else:
                params["level_kpa"] = c.level_kpa
        elif c.temperature_c is not None:
            params["temperature_c"] = c.temperature_c
        return Stimulus("CPM-conditioning", c.stimulus_kind, params, 1, isi_s, c.site,
                        c.instruction or _conditioning_text(c, action, hold))

    @property
    def done(self) -> bool:
        return len(self.answers) == len(self._steps)

    def next_stimulus(self) -> Stimulus | None:
        return None if self.done else self._steps[len(self.answers)]

    def record(self, answer: Answer) -> None:
        stimulus = self.next_stimulus()
        if stimulus is None:
            raise ProtocolError("CPM: all steps are answered")
        if stimulus.kind in (CUFF_PROGRAM, CONFIRM):
            if answer.kind != DONE:
                raise ProtocolError(f"CPM: the conditioning step is answered with "
                                    f"{DONE!r}, not {answer.kind!r}")
        else:
            check_ramp_answer(stimulus.test, answer)
        self.answers.append(answer)

    def _phase(self, phase: str) -> list[Answer]:
        return [a for st, a in zip(self._steps, self.answers, strict=False)
                if st.params.get("cpm_phase") == phase]

    def result(self) -> list[Measure]:
        s = self.spec
        baseline, conditioned = self._phase("baseline"), self._phase("conditioned")
        if not baseline or not conditioned:
            return []
        target, tolerance = None, 0.2
        if isinstance(s.test, PptTest) and s.test.device == "algometer":
            target, tolerance = s.test.rate_kpa_s, s.test.tolerance
        flags = ramp_flags([*baseline, *conditioned], target, tolerance)
        if len(conditioned) < s.repetitions:
            flags += ("incomplete",)
        ended = [a for st, a in zip(self._steps, self.answers, strict=False)
                 if st.params.get("action") == "stop"]
        if s.mode == "parallel" and any(a.extra.get("ended_early") for a in ended):
            flags += ("conditioning-ended-early",)
        extra = {"mode": s.mode, "test": s.test_name, "conditioning": s.conditioning.kind,
                 "conditioning_site": s.conditioning.site}
        level = next((a.value for st, a in zip(self._steps, self.answers, strict=False)
                      if st.params.get("action") == "start"), None)
        if level is not None:
            extra["conditioning_level_kpa"] = level
        if target is not None:
            extra.update(rate_extra([*baseline, *conditioned], target))
        return cpm_measures([float(a.value) for a in baseline if a.value is not None],
                            [float(a.value) for a in conditioned if a.value is not None],
                            s.unit, flags, s.site, extra)


def cpm_measures(baseline: Sequence[float], conditioned: Sequence[float], unit: str,
                 flags: tuple[str, ...] = (), site: str = "",
                 extra: dict[str, Any] | None = None) -> list[Measure]:
    """CPM-baseline, CPM-conditioned (means), CPM (difference) and CPM-pct (% of baseline)."""
    base, cond = float(np.mean(baseline)), float(np.mean(conditioned))
    cpm = cond - base
    percent = 100.0 * cpm / base if base != 0 else float("nan")
    info = {**(extra or {}), "baseline": base, "conditioned": cond, "cpm": cpm,
            "percent": percent, "sign": CPM_SIGN, "baseline_trials": list(baseline),
            "conditioned_trials": list(conditioned)}
    return [Measure("CPM-baseline", base, unit, "none", tuple(baseline), flags, site, info),
            Measure("CPM-conditioned", cond, unit, "none", tuple(conditioned), flags, site, info),
            Measure("CPM", cpm, unit, "none", tuple(conditioned), flags, site, info),
            Measure("CPM-pct", percent, "%", "none", tuple(conditioned), flags, site, info)]


def _conditioning_text(c: Conditioning, action: str, hold_s: float) -> str:
    where = f" ({c.site})" if c.site else ""
    if c.kind == "cuff":
        level = (f"the pressure rated {c.level_vas_cm:g}/10 cm VAS" if c.level_vas_cm is not None
                 else f"{c.level_kpa:g} kPa")
        if action == "start":
            how_long = f"for {hold_s:g} s" if hold_s else f"(at most {c.duration_s:g} s)"
            return f"Conditioning: cuff outlet {c.outlet}{where} inflates to {level} {how_long}."
        return "Conditioning ends: the cuff deflates."
    what = "cold water" if c.kind == "cold-water" else "tonic heat"
    temp = f" at {c.temperature_c:g} °C" if c.temperature_c is not None else ""
    if action == "start":
        hold = f"; keep it there for {hold_s:g} s" if hold_s else ""
        return f"Conditioning: apply the {what}{temp}{where} now and confirm{hold}."
    return f"Conditioning ends: remove the {what}{where} now and confirm."
