"""Export a session as tidy CSV tables for R or pandas: trials, measures, events, streams.

``export_csv(session, out_dir)`` writes ``trials.csv``, ``measures.csv``, ``events.csv`` and
``streams.csv`` (comma-separated, UTF-8, one header line). Times are the program clock
(``time``, s) and seconds since the session's first part started (``session_time``). Empty
cells are missing values; lists of plain values are joined with ``;``, anything nested is
JSON; booleans are ``true``/``false``. See ``docs/exports.md``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qst_station.recording import Event
from qst_station.session import Session

TIME_COLUMNS = ["time", "session_time", "part"]
MEASURE_COLUMNS = ["measure", "value", "unit", "transform", "trials", "flags"]
EVENT_FIELDS = ["name", "state", "run", "device", "modality", "target", "unit", "trial",
                "scale", "value", "stimulus", "source", "volume", "inferred", "test",
                "measure", "stream", "message", "action"]
STREAM_COLUMNS = ["name", "samples", "duration_s", "nominal_rate", "effective_rate",
                  "channels", "units", "source", "parts", "start_time", "end_time"]


def export_csv(session: Session, out_dir: str | Path) -> list[Path]:
    """Write the four tables into ``out_dir`` (created if needed); the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    origin = session_origin(session)
    tables = {
        "trials.csv": trial_rows(session, origin),
        "measures.csv": measure_rows(session, origin),
        "events.csv": event_rows(session, origin),
        "streams.csv": stream_rows(session),
    }
    first = {"trials.csv": TIME_COLUMNS, "measures.csv": MEASURE_COLUMNS,
             "events.csv": [*TIME_COLUMNS, "kind", "payload", *EVENT_FIELDS],
             "streams.csv": STREAM_COLUMNS}
    written = []
    for name, rows in tables.items():
        write_table(out_dir / name, rows, first[name])
        written.append(out_dir / name)
    return written


def session_origin(session: Session) -> float:
    """Program clock of the first part's start (else of the first event or sample)."""
    if session.parts and math.isfinite(session.parts[0].start_time):
        return session.parts[0].start_time
    times = [e.timestamp for _, e in session.events[:1]]
    times += [float(s.time[0]) for s in session.streams.values() if len(s.time)]
    return min(times, default=0.0)


def trial_rows(session: Session, origin: float) -> list[dict[str, Any]]:
    """One row per ``trial`` event: times, part and the payload's fields."""
    return [{**_when(part, event, origin), **_fields(event.payload, TIME_COLUMNS)}
            for part, event in session.events if event.kind == "trial"]


def measure_rows(session: Session, origin: float) -> list[dict[str, Any]]:
    """One row per measure and site (``result`` events; a later value at that site wins)."""
    latest: dict[tuple[str, str], tuple[int, Event]] = {}
    for part, event in session.events:
        if event.kind == "result" and "measure" in event.payload:
            key = (str(event.payload["measure"]), str(event.payload.get("site") or ""))
            latest[key] = (part, event)
    return [{**_fields(event.payload, TIME_COLUMNS), **_when(part, event, origin)}
            for part, event in latest.values()]


def event_rows(session: Session, origin: float) -> list[dict[str, Any]]:
    """Every event: times, part, kind, the whole payload as JSON and common fields."""
    rows = []
    for part, event in session.events:
        payload = event.payload
        row = {**_when(part, event, origin), "kind": event.kind,
               "payload": json.dumps(payload, separators=(",", ":"), default=str)}
        row.update({f: payload[f] for f in EVENT_FIELDS if f in payload})
        rows.append(row)
    return rows


def stream_rows(session: Session) -> list[dict[str, Any]]:
    """One row per stream: samples, duration, rates, channels and units."""
    rows = []
    for stream in session.streams.values():
        n = len(stream.time)
        duration = stream.duration_s
        rows.append({
            "name": stream.name, "samples": n, "duration_s": duration,
            "nominal_rate": stream.nominal_rate,
            "effective_rate": (n - 1) / duration if duration > 0 else None,
            "channels": stream.channels, "units": stream.units, "source": stream.source,
            "parts": sorted({int(p) for p in stream.part}),
            "start_time": float(stream.time[0]) if n else None,
            "end_time": float(stream.time[-1]) if n else None})
    return rows


def write_table(path: Path, rows: list[dict[str, Any]], first: Iterable[str]) -> None:
    """``rows`` as CSV: ``first`` columns, then the others in order of appearance."""
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)


def _when(part: int, event: Event, origin: float) -> dict[str, Any]:
    return {"time": event.timestamp, "session_time": event.timestamp - origin, "part": part}


def _fields(payload: Mapping[str, Any], reserved: list[str]) -> dict[str, Any]:
    """Payload fields; one named like a reserved column gets a ``payload_`` prefix."""
    return {(f"payload_{k}" if k in reserved else k): v for k, v in payload.items()}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        if all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
            return ";".join(_cell(v) for v in value)
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)
