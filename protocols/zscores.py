"""DFNS z-scores, the loss/gain profile per domain and the quality flag.

``z = sign * (transformed value - reference mean) / reference SD``, with the transform and sign
of :mod:`protocols.dfns`, so positive z is a gain of function (more sensitive; a recalled DFNS
convention) and |z| > 1.96 is abnormal. log10 of a value <= 0 is an error (MPS adds 0.1 first,
recalled), never silently replaced by a small constant.

Profile coding (after Maier et al. 2010; the exact rule is ours, see docs/reference-data.md):
an abnormal z-scored measure is a loss (z < -1.96) or a gain (z > +1.96) of its domain; PPT
(pressure) is counted with the mechanical domain; a DMA rating above 0 is a mechanical gain
(healthy subjects have none); PHS is reported but not coded. ``L`` = 0 no loss, 1 thermal loss
only, 2 mechanical loss only, 3 both; ``G`` likewise for gains: e.g. ``L1G2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from protocols.base import Measure
from protocols.dfns import (
    ABNORMAL_Z,
    CONVENTIONS,
    MECHANICAL,
    PRESSURE,
    THERMAL,
    convention,
    normalized_unit,
)
from protocols.reference import ReferenceRow, ReferenceTable

MANY_ABNORMAL = 4  # this many abnormal values in a healthy subject suggest a testing error
MANY_ABNORMAL_FLAG = "many-abnormal"
CODING_DOMAIN = {THERMAL: THERMAL, MECHANICAL: MECHANICAL, PRESSURE: MECHANICAL}
DOMAIN_BIT = {THERMAL: 1, MECHANICAL: 2}


@dataclass(frozen=True)
class ZScore:
    """One measure against its reference row."""

    measure: str
    value: float  # as measured, in the convention's unit
    transformed: float  # on the reference scale (log10 where the measure is log-transformed)
    z: float  # sign applied: + = gain of function
    reference: ReferenceRow
    flags: tuple[str, ...] = ()  # the Measure's flags (e.g. cutoff-reached)

    @property
    def abnormal(self) -> bool:
        return abs(self.z) > ABNORMAL_Z

    @property
    def direction(self) -> str:
        """``gain``, ``loss`` or ``normal``."""
        if not self.abnormal:
            return "normal"
        return "gain" if self.z > 0 else "loss"


def z_score(measure: str, value: float, reference: ReferenceRow,
            flags: tuple[str, ...] = ()) -> ZScore:
    """The signed z-score of ``value`` (raises ValueError for log10 of <= 0)."""
    conv = convention(measure)
    if not conv.z_scored:
        raise ValueError(f"{measure} is not z-scored in DFNS")
    if reference.measure != measure:
        raise ValueError(f"reference row {reference.origin} is for {reference.measure}, "
                         f"not {measure}")
    if reference.transform != conv.transform:
        raise ValueError(f"reference row {reference.origin}: {measure} uses {conv.transform}")
    transformed = conv.transformed(value)
    z = conv.sign * (transformed - reference.mean) / reference.sd
    return ZScore(measure, float(value), transformed, z, reference, tuple(flags))


@dataclass(frozen=True)
class DomainProfile:
    """Abnormal measures of one coding domain (thermal or mechanical)."""

    loss: tuple[str, ...] = ()
    gain: tuple[str, ...] = ()

    @property
    def letters(self) -> str:
        """``L``, ``G``, ``LG`` or ``N`` (normal)."""
        return ("L" if self.loss else "") + ("G" if self.gain else "") or "N"


@dataclass(frozen=True)
class Profile:
    """Z-scores of one test area, its loss/gain coding and quality flags."""

    zscores: Mapping[str, ZScore]  # by measure, z-scored measures only
    counts: Mapping[str, float] = field(default_factory=dict)  # PHS, DMA as measured
    site: str = ""

    @property
    def abnormal(self) -> tuple[str, ...]:
        return tuple(m for m, z in self.zscores.items() if z.abnormal)

    @property
    def domains(self) -> dict[str, DomainProfile]:
        found: dict[str, dict[str, list[str]]] = {
            d: {"loss": [], "gain": []} for d in DOMAIN_BIT}
        for m, z in self.zscores.items():
            if z.abnormal:
                found[CODING_DOMAIN[CONVENTIONS[m].domain]][z.direction].append(m)
        if self.counts.get("DMA", 0.0) > 0.0:
            found[MECHANICAL]["gain"].append("DMA")
        return {d: DomainProfile(tuple(f["loss"]), tuple(f["gain"])) for d, f in found.items()}

    @property
    def code(self) -> str:
        """``L<n>G<m>``: n, m = 0 none, 1 thermal, 2 mechanical, 3 both (see module doc)."""
        domains = self.domains
        loss = sum(DOMAIN_BIT[d] for d, p in domains.items() if p.loss)
        gain = sum(DOMAIN_BIT[d] for d, p in domains.items() if p.gain)
        return f"L{loss}G{gain}"

    @property
    def flags(self) -> tuple[str, ...]:
        """``many-abnormal`` with 4 or more abnormal z-scores (a testing error if healthy)."""
        return (MANY_ABNORMAL_FLAG,) if len(self.abnormal) >= MANY_ABNORMAL else ()


def profile(measures: Iterable[Measure], table: ReferenceTable, *, site: str, sex: str,
            age: float) -> Profile:
    """Z-score the DFNS measures of one test area; other measures (TSP, CPM, ...) are skipped.

    A measure's own ``site`` must be empty or ``site``; each measure may occur once; its
    ``unit`` and ``transform`` must be the DFNS ones. A missing reference row raises
    :class:`protocols.reference.ReferenceLookupError`.
    """
    zscores: dict[str, ZScore] = {}
    counts: dict[str, float] = {}
    for m in measures:
        conv = CONVENTIONS.get(m.name)
        if conv is None:
            continue
        if m.site and m.site.strip().casefold() != site.strip().casefold():
            raise ValueError(f"{m.name} was measured at {m.site!r}, not {site!r}: "
                             f"one profile per test area")
        if m.name in zscores or m.name in counts:
            raise ValueError(f"{m.name} occurs twice: one profile per test area")
        if normalized_unit(m.unit) != conv.unit:
            raise ValueError(f"{m.name} in {m.unit!r}: the reference is in {conv.unit!r}")
        if not conv.z_scored:
            counts[m.name] = float(m.value)
            continue
        if m.transform != conv.transform:
            raise ValueError(f"{m.name} has transform {m.transform!r}: "
                             f"DFNS uses {conv.transform!r}")
        row = table.lookup(site, sex, age, m.name)
        zscores[m.name] = z_score(m.name, m.value, row, m.flags)
    return Profile(zscores, counts, site)
