"""Reference tables for DFNS z-scores: load, validate and look up (format: docs/reference-data.md).

One CSV row per stratum and measure; columns (any order, extra columns are ignored)::

    site,sex,age_min,age_max,measure,mean,sd,transform,source

``sex`` is female, male or any; ages are in years, the band is ``age_min <= age < age_max``;
``mean`` and ``sd`` are on the transformed scale; ``transform`` must be the DFNS transform of
the measure (:mod:`protocols.dfns`). Every problem is one :class:`ReferenceTableError` line
``file:line: field: what is wrong``. The lab supplies its table; the package ships only
:data:`DEMO_TABLE`, which is synthetic.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from protocols.dfns import CONVENTIONS, TEST_ORDER

COLUMNS = ("site", "sex", "age_min", "age_max", "measure", "mean", "sd", "transform", "source")
SEXES = ("female", "male", "any")
DEMO_TABLE = "reference-SYNTHETIC-DEMO.csv"  # in protocols/data/: SYNTHETIC, not for clinical use


class ReferenceTableError(ValueError):
    """A reference table problem, as one line naming file:line and the field."""


class ReferenceLookupError(LookupError):
    """No reference row for a (site, sex, age, measure)."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ReferenceRow:
    """One stratum of one measure; ``origin`` is ``file:line``."""

    site: str
    sex: str
    age_min: float
    age_max: float
    measure: str
    mean: float
    sd: float
    transform: str
    source: str
    origin: str = ""

    def covers(self, age: float) -> bool:
        return self.age_min <= age < self.age_max

    def band(self) -> str:
        return f"{self.age_min:g}-{self.age_max:g}"


class ReferenceTable:
    """Validated rows with lookup by (site, sex, age, measure)."""

    def __init__(self, rows: Iterable[ReferenceRow], name: str = "<reference>") -> None:
        self.name = name
        self.rows = tuple(rows)
        if not self.rows:
            raise ReferenceTableError(f"{name}: no reference rows")
        _check_overlaps(self.rows)

    def lookup(self, site: str, sex: str, age: float, measure: str) -> ReferenceRow:
        """The row for this stratum; a sex-specific row wins over ``any``."""
        key_site, key_sex = _key(site), sex.strip().lower()
        if key_sex not in SEXES:
            raise ValueError(f"sex must be one of {', '.join(SEXES)} (got {sex!r})")
        if not math.isfinite(age) or age < 0:
            raise ValueError(f"age must be a number of years >= 0 (got {age!r})")
        candidates = [r for r in self.rows if r.measure == measure and _key(r.site) == key_site]
        for wanted in (key_sex, "any"):
            for row in candidates:
                if row.sex == wanted and row.covers(age):
                    return row
        raise ReferenceLookupError(self._miss(site, sex, age, measure, candidates))

    def _miss(self, site: str, sex: str, age: float, measure: str,
              candidates: list[ReferenceRow]) -> str:
        what = f"no reference row for {measure} at site {site!r}, sex {sex}, age {age:g}"
        if candidates:
            have = ", ".join(f"{r.sex} {r.band()}" for r in candidates)
            return f"{what} in {self.name} (rows for {measure} there: {have})"
        sites = sorted({r.site for r in self.rows if r.measure == measure})
        if sites:
            return f"{what} in {self.name} (sites with {measure}: {', '.join(sites)})"
        return f"{what} in {self.name} (the table has no {measure} rows)"


def load_reference_table(path: str | Path) -> ReferenceTable:
    """Read and validate a reference-table CSV (UTF-8, optionally with a BOM)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ReferenceTableError(f"{file}: cannot read reference table: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ReferenceTableError(f"{file}: not UTF-8 text: {exc.reason} "
                                  f"at byte {exc.start}") from None
    return parse_reference_csv(text, str(file))


def demo_table() -> ReferenceTable:
    """The shipped SYNTHETIC demo table: for demos and tests only, never for clinical use."""
    data = resources.files("protocols").joinpath("data", DEMO_TABLE)
    return parse_reference_csv(data.read_text(encoding="utf-8-sig"), DEMO_TABLE)


def parse_reference_csv(text: str, name: str = "<reference>") -> ReferenceTable:
    """Validate CSV text; ``name`` prefixes error messages."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = next(reader, None)
    if header is None:
        raise ReferenceTableError(f"{name}:1: empty file: expected the header {','.join(COLUMNS)}")
    header = [h.strip().lower() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1 and h})
    if duplicated:
        raise ReferenceTableError(f"{name}:1: duplicated column: {', '.join(duplicated)}")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ReferenceTableError(f"{name}:1: missing column: {', '.join(missing)} "
                                  f"(header must name {','.join(COLUMNS)})")
    rows = []
    for fields in reader:
        where = f"{name}:{reader.line_num}"
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise ReferenceTableError(f"{where}: expected {len(header)} fields as in the header, "
                                      f"got {len(fields)}")
        rows.append(_row(dict(zip(header, (f.strip() for f in fields), strict=True)), where))
    return ReferenceTable(rows, name)


def _row(raw: dict[str, str], where: str) -> ReferenceRow:
    def fail(field: str, problem: str) -> ReferenceTableError:
        return ReferenceTableError(f"{where}: {field}: {problem} (got {raw[field]!r})")

    def number(field: str) -> float:
        try:
            value = float(raw[field])
        except ValueError:
            raise fail(field, "not a number") from None
        if not math.isfinite(value):
            raise fail(field, "must be finite")
        return value

    if not raw["site"]:
        raise fail("site", "must not be empty")
    sex = raw["sex"].lower()
    if sex not in SEXES:
        raise fail("sex", f"must be one of {', '.join(SEXES)}")
    age_min, age_max = number("age_min"), number("age_max")
    if age_min < 0:
        raise fail("age_min", "must be >= 0")
    if age_max <= age_min:
        raise fail("age_max", f"must be greater than age_min ({age_min:g})")
    measure = raw["measure"].upper()
    if measure not in CONVENTIONS:
        raise fail("measure", f"not a DFNS measure (one of {', '.join(TEST_ORDER)})")
    convention = CONVENTIONS[measure]
    if not convention.z_scored:
        raise fail("measure", f"{measure} is not z-scored in DFNS")
    mean, sd = number("mean"), number("sd")
    if sd <= 0:
        raise fail("sd", "must be > 0")
    transform = raw["transform"].lower()
    if transform != convention.transform:
        raise fail("transform", f"{measure} uses {convention.transform} in DFNS "
                                f"(mean and sd must be on that scale)")
    if not raw["source"]:
        raise fail("source", "must cite where the numbers come from")
    return ReferenceRow(raw["site"], sex, age_min, age_max, measure, mean, sd, transform,
                        raw["source"], where)


def _key(site: str) -> str:
    return " ".join(site.split()).casefold()


def _check_overlaps(rows: tuple[ReferenceRow, ...]) -> None:
    groups: dict[tuple[str, str, str], list[ReferenceRow]] = {}
    for row in rows:
        groups.setdefault((_key(row.site), row.sex, row.measure), []).append(row)
    for group in groups.values():
        ordered = sorted(group, key=lambda r: (r.age_min, r.age_max))
        for before, row in zip(ordered, ordered[1:], strict=False):
            if row.age_min < before.age_max:
                origin = row.origin or "<row>"
                raise ReferenceTableError(
                    f"{origin}: age_min: band {row.band()} overlaps {before.band()} of "
                    f"{before.origin or 'another row'} ({row.site}, {row.sex}, {row.measure})")
