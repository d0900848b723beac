"""Measures back from a session file, for z-scores and profiles."""

from __future__ import annotations

from protocols.base import Measure
from qst_station.session import Session

_FIELDS = {"measure", "value", "unit", "transform", "trials", "flags", "site"}


def measures_of(session: Session) -> list[Measure]:
    """The session's ``result`` events as :class:`Measure` objects (latest per name and
    site)."""
    out = []
    for r in session.results().values():
        if r.get("value") is None:
            continue
        out.append(Measure(str(r["measure"]), float(r["value"]), str(r.get("unit", "")),
                           str(r.get("transform", "none")),
                           tuple(float(t) for t in r.get("trials", []) if t is not None),
                           tuple(str(f) for f in r.get("flags", [])), str(r.get("site", "")),
                           {k: v for k, v in r.items() if k not in _FIELDS}))
    return out
