"""Read a session file: ``qst_station.session.open(path)``.

Streams come back as numpy arrays (all parts of the session joined in time order), events
as a list of :class:`~qst_station.recording.Event` with their part, and trials and results
as tables built from the ``trial`` and ``result`` events. A file whose writer was killed is
opened too (its status flags are cleared first, as ``h5clear -s`` would) and reported as
``interrupted``; a file still being recorded is read live in SWMR mode.
"""

from __future__ import annotations

import builtins
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qst_station.h5_recovery import (
    RecoveryError,
    clear_status_flags,
    opens_plainly,
    writer_alive,
)
from qst_station.recording import Event
from qst_station.session_writer import FORMAT_NAME


class SessionReadError(RuntimeError):
    """Not a session file, or one this version cannot read."""


@dataclass
class Stream:
    name: str
    time: np.ndarray  # program clock, seconds
    values: np.ndarray  # [n, channels]
    channels: list[str]
    units: list[str]
    nominal_rate: float
    source: str
    part: np.ndarray  # part number of each row
    lsl_type: str = ""

    @property
    def duration_s(self) -> float:
        return float(self.time[-1] - self.time[0]) if len(self.time) > 1 else 0.0

    def column(self, label: str) -> np.ndarray:
        return self.values[:, self.channels.index(label)]


@dataclass
class Part:
    number: int
    status: str  # success | aborted | failed | interrupted | recording
    reason: str
    started_utc: str
    start_time: float
    stop_time: float | None
    protocol: str
    operator: str
    station_config: str
    devices: list[dict[str, Any]]
    simulation: dict[str, Any] | None = None  # true parameters of a simulated participant


@dataclass
class Session:
    path: Path
    attrs: dict[str, Any]
    parts: list[Part]
    streams: dict[str, Stream]
    events: list[tuple[int, Event]] = field(default_factory=list)
    live: bool = False  # read while a writer records into it

    @property
    def participant(self) -> str:
        return str(self.attrs.get("participant", ""))

    @property
    def visit(self) -> str:
        return str(self.attrs.get("visit", ""))

    @property
    def status(self) -> str:
        """The last part's status: ``interrupted`` if its writer did not stop cleanly."""
        return self.parts[-1].status if self.parts else "empty"

    def events_of(self, kind: str) -> list[Event]:
        return [event for _, event in self.events if event.kind == kind]

    def trials(self) -> list[dict[str, Any]]:
        """One row per ``trial`` event: the payload's fields, then the event's time and part."""
        return [{**e.payload, "time": e.timestamp, "part": p}
                for p, e in self.events if e.kind == "trial"]

    def results(self) -> dict[str, dict[str, Any]]:
        """Measures by name (``result`` events; a later value of a measure at the same site
        wins). A measure taken at several sites is keyed ``NAME@site`` for each site."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for _, event in self.events:
            if event.kind == "result" and "measure" in event.payload:
                key = (str(event.payload["measure"]), str(event.payload.get("site") or ""))
                latest[key] = dict(event.payload)
        sites = Counter(name for name, _ in latest)
        return {(name if sites[name] == 1 else f"{name}@{site}"): payload
                for (name, site), payload in latest.items()}


def open(path: str | Path) -> Session:  # noqa: A001 - the documented reader entry point
    """Read everything in the session file at ``path``."""
    path = Path(path)
    if not path.exists():
        raise SessionReadError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise SessionReadError(f"{path}: not an HDF5 file, so not a session file")
    live = writer_alive(path)
    swmr = live
    if not live and not opens_plainly(path):
        try:
            clear_status_flags(path)
        except (OSError, RecoveryError):
            swmr = True  # no write access (or no library hook): read it as it was left
    handle = _open_h5(path, swmr)
    with handle:
        if handle.attrs.get("format") != FORMAT_NAME:
            raise SessionReadError(f"{path}: not a qst-station session file")
        major = str(handle.attrs.get("format_version", "0")).split(".")[0]
        if major != "1":
            raise SessionReadError(f"{path}: session format {major}.x is newer than this "
                                   "program reads (1.x); update qst-station")
        attrs = {k: _plain(v) for k, v in handle.attrs.items()}
        parts, streams, events = _read_parts(handle["parts"], live)
    return Session(path, attrs, parts, streams, events, live)


def _open_h5(path: Path, swmr: bool, attempts: int = 20) -> h5py.File:
    """Open for reading; a file locked by a writer's brief non-SWMR step is retried."""
    for attempt in range(attempts):
        try:
            return h5py.File(path, "r", swmr=swmr, libver="latest" if swmr else "earliest",
                             locking=False)
        except BlockingIOError:
            if attempt == attempts - 1:
                raise SessionReadError(f"{path}: being written; try again") from None
            time.sleep(0.1)
        except OSError as error:
            raise SessionReadError(f"{path}: cannot read it as HDF5 ({error})") from None
    raise AssertionError("unreachable")


def _read_parts(group: h5py.Group, live: bool
                ) -> tuple[list[Part], dict[str, Stream], list[tuple[int, Event]]]:
    parts: list[Part] = []
    pieces: dict[str, list[tuple[int, h5py.Group]]] = {}
    events: list[tuple[int, Event]] = []
    names = sorted(group)
    for name in names:
        part = group[name]
        number = int(name)
        parts.append(_part(number, part, live and name == names[-1]))
        for stream in part["streams"]:
            pieces.setdefault(stream, []).append((number, part["streams"][stream]))
        events += [(number, e) for e in _events(part["events"])]
    streams = {name: _join(name, groups) for name, groups in pieces.items()}
    events.sort(key=lambda pe: pe[1].timestamp)
    return parts, streams, events


def _part(number: int, part: h5py.Group, live: bool) -> Part:
    a = part.attrs
    status, stop, reason = "recording", None, ""
    if "exit" in part:
        row = part["exit"][0]
        status, reason = row["status"].decode(), row["reason"].decode()
        stop = None if np.isnan(row["stop_time"]) else float(row["stop_time"])
    if status == "recording" and not live:
        status = "interrupted"
    return Part(number, status, reason, str(a.get("started_utc", "")),
                float(a.get("start_time", np.nan)), stop,
                str(a.get("protocol", "")), str(a.get("operator", "")),
                str(a.get("station_config", "")), json.loads(a.get("devices", "[]")),
                json.loads(a.get("simulation") or "null"))


def _join(name: str, groups: builtins.list[tuple[int, h5py.Group]]) -> Stream:
    times, values, part = [], [], []
    for number, group in groups:
        n = group["time"].shape[0]  # time is written last: never longer than values
        times.append(group["time"][:n])
        values.append(group["values"][:n])
        part.append(np.full(n, number, dtype=np.int32))
    first = groups[-1][1].attrs
    widths = {v.shape[1] for v in values}
    if len(widths) > 1:
        raise SessionReadError(f"stream {name!r} has different channel counts in different "
                               "parts")
    return Stream(name, np.concatenate(times), np.concatenate(values),
                  json.loads(first["channels"]), json.loads(first["units"]),
                  float(first["nominal_rate"]), str(first["source"]), np.concatenate(part),
                  str(first.get("lsl_type", "")))


def _events(group: h5py.Group) -> builtins.list[Event]:
    table = group["table"][:]
    payload = group["payload"][:].tobytes()
    out = []
    for row in table:
        end = int(row["offset"]) + int(row["length"])
        if end > len(payload):  # payload written first; a torn tail cannot happen, but check
            break
        data = json.loads(payload[int(row["offset"]):end] or b"{}")
        out.append(Event(float(row["time"]), row["kind"].decode(), data))
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
