"""Session setup: who is tested, at which visit, where, by whom; Qt-free.

:class:`SessionSetup` holds what the operator enters before a run, says what is wrong
with it (:meth:`SessionSetup.problems`, one line per problem naming the field), names the
session file (:func:`session_file_name`, also used by ``simulated_run.session_path``) and
becomes the run's :class:`~qst_station.recording.SessionInfo`. :func:`recent_participants`
reads the root attributes of the session files in a folder so a participant's next visit
can be set up from the last one (:func:`suggest_visit`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from protocols.reference import ReferenceTable
from qst_station.privacy import identifying_reason
from qst_station.recording import SessionInfo
from qst_station.session_writer import FORMAT_NAME

VISITS = ("baseline", "month1", "month3", "month6", "month12")  # the cohort's schedule
VISIT_NAMES = {"baseline": "baseline", "month1": "1 month", "month3": "3 months",
               "month6": "6 months", "month12": "12 months"}
SEXES = ("female", "male")
BODY_SITES = ("thenar", "lumbar painful site", "contralateral lumbar", "tibialis anterior",
              "left volar forearm", "dorsum of the hand", "cheek")
AGE_RANGE = (5, 110)  # years, inclusive
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,31}")
_LABEL = re.compile(r"[A-Za-z0-9]{1,32}")  # a BIDS label: letters and digits
_CACHE: dict[Path, tuple[tuple[int, int], dict[str, Any] | None]] = {}
_CACHE_LOCK = threading.Lock()
_MONTHS = re.compile(r"(?:months?|mo|m)?[\s_-]*0*(\d{1,2})[\s_-]*(?:months?|mo|m)?")


class SessionSetupError(ValueError):
    """A setup that cannot start a run; the message lists its problems."""


def normalize_visit(text: str) -> str:
    """The schedule's label for common spellings ("1 month", "M3", "6m", "BL"), else
    ``text`` stripped (a free-text visit)."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("baseline", "bl", "base line", "month0", "m0"):
        return "baseline"
    match = _MONTHS.fullmatch(lowered)
    if match and f"month{int(match.group(1))}" in VISITS:
        return f"month{int(match.group(1))}"
    return text


def decade_band(age: int | None) -> str | None:
    """The age decade as the reference tables write bands (``age_min <= age < age_max``)."""
    if age is None:
        return None
    low = age // 10 * 10
    return f"{low}-{low + 10}"


def reference_band(table: ReferenceTable, age: int, sex: str | None) -> str | None:
    """The band(s) of ``table`` holding ``age`` for ``sex`` (or ``any``), e.g. ``18-40``."""
    sexes = {"any"} | ({sex} if sex else set(SEXES))
    bands = {row.band(): row.age_min for row in table.rows
             if row.sex in sexes and row.covers(age)}
    return " / ".join(sorted(bands, key=bands.__getitem__)) or None


def session_file_name(participant: str, visit: str, protocol: str,
                      when: dt.datetime | None = None) -> str:
    """``sub-<code>_ses-<visit>_<protocol>_<UTC stamp>.h5``; a naive ``when`` is local time."""
    moment = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"sub-{participant}_ses-{visit}_{protocol}_{moment:%Y%m%dT%H%M%SZ}.h5"


@dataclass(frozen=True)
class SessionSetup:
    """What the operator enters for a run. Strings are stripped, the visit normalized."""

    participant: str = ""
    visit: str = "baseline"
    site: str = ""  # study site / station
    operator: str = ""
    sex: str | None = None  # "female", "male" or None (unknown: no z-scores)
    age: int | None = None  # years
    body_sites: tuple[str, ...] = ()
    refuse_identifying_codes: bool = False  # the station's [station] setting

    def __post_init__(self) -> None:
        put = object.__setattr__
        for name in ("participant", "site", "operator"):
            put(self, name, getattr(self, name).strip())
        put(self, "visit", normalize_visit(self.visit))
        put(self, "sex", (self.sex or "").strip().lower() or None)
        sites = (s.strip() for s in self.body_sites)
        put(self, "body_sites", tuple(dict.fromkeys(s for s in sites if s)))

    @property
    def age_band(self) -> str | None:
        return decade_band(self.age)

    def field_problems(self) -> list[tuple[str, str]]:
        """``(field, message)`` for each problem; fields as named in this class."""
        out: list[tuple[str, str]] = []
        code = self.participant
        why = identifying_reason(code) if code and self.refuse_identifying_codes else None
        if not code:
            out.append(("participant", "enter the participant's pseudonymous code"))
        elif why:
            why = why.removeprefix(f"participant code {code!r} ")
            out.append(("participant", f"{code!r} {why}; use a pseudonymous code"))
        elif not _CODE.fullmatch(code):
            out.append(("participant", f"code {code!r}: letters, digits and '-' only, at most "
                                       "32 (it names the session file)"))
        if not self.visit:
            out.append(("visit", "choose the visit"))
        elif not _LABEL.fullmatch(self.visit):
            out.append(("visit", f"{self.visit!r}: letters and digits only, at most 32 "
                                 "(it names the session file and the BIDS session)"))
        if self.sex is not None and self.sex not in SEXES:
            out.append(("sex", f"{self.sex!r}: female, male or not given"))
        low, high = AGE_RANGE
        if self.age is not None and not low <= self.age <= high:
            out.append(("age", f"{self.age} years is out of range ({low}-{high})"))
        return out

    def problems(self) -> list[str]:
        """One line per problem, naming the field; empty when a run can start."""
        return [f"{name}: {message}" for name, message in self.field_problems()]

    def file_name(self, protocol: str, when: dt.datetime | None = None) -> str:
        return session_file_name(self.participant, self.visit, protocol, when)

    def session_path(self, folder: str | Path, protocol: str,
                     when: dt.datetime | None = None) -> Path:
        """``folder/sub-<code>_ses-<visit>_<protocol>_<UTC stamp>.h5`` (``when``: now)."""
        return Path(folder) / self.file_name(protocol, when)

    def to_session_info(self, protocol: str, station_config_json: str,
                        devices: Iterable[Mapping[str, str]] = ()) -> SessionInfo:
        """The run's SessionInfo; raises :class:`SessionSetupError` listing the problems.

        SessionInfo has no sex, age or body sites yet: see :meth:`file_attrs`."""
        problems = self.problems()
        if problems:
            raise SessionSetupError("; ".join(problems))
        return SessionInfo(participant=self.participant, visit=self.visit, site=self.site,
                           operator=self.operator, protocol=protocol,
                           station_config=station_config_json,
                           devices=tuple(dict(d) for d in devices))

    def file_attrs(self) -> dict[str, Any]:
        """Root attributes proposed for sex, age and body sites (read back by
        :func:`recent_participants`); "" / -1 when not given."""
        return {"sex": self.sex or "", "age": -1 if self.age is None else self.age,
                "body_sites": json.dumps(list(self.body_sites))}


# -- recent participants ------------------------------------------------------------------

@dataclass(frozen=True)
class RecentParticipant:
    """A participant's newest session in a folder."""

    code: str
    last_visit: str
    last_time: dt.datetime  # UTC start of the newest part of the newest file
    sex: str | None = None
    age: int | None = None
    site: str = ""
    visits: tuple[str, ...] = field(default=())  # every visit seen, newest first

    @property
    def last_date(self) -> dt.date:
        """Local calendar date of the newest session."""
        return self.last_time.astimezone().date()


def next_visit(visit: str) -> str | None:
    """The scheduled visit after ``visit``; None after the last or for a free-text visit."""
    if visit not in VISITS:
        return None
    index = VISITS.index(visit) + 1
    return VISITS[index] if index < len(VISITS) else None


def suggest_visit(entry: RecentParticipant, today: dt.date | None = None) -> str | None:
    """Same day: the same visit (more protocols of it); later: the scheduled visit after the
    furthest one done; None when the schedule is complete."""
    if entry.last_date == (today or dt.date.today()):
        return entry.last_visit
    done = [VISITS.index(v) for v in entry.visits if v in VISITS]
    return next_visit(VISITS[max(done)]) if done else VISITS[0]


def recent_participants(folder: str | Path, limit: int = 20,
                        include_simulated: bool = False) -> list[RecentParticipant]:
    """The ``limit`` most recently seen participants of the ``*.h5`` session files in
    ``folder``, newest first. Reads root attributes and the newest part's start only;
    files that are not sessions, broken or being written are skipped or read as they are."""
    seen: dict[str, list[dict[str, Any]]] = {}
    try:
        paths = list(Path(folder).glob("*.h5"))
    except OSError:
        return []
    for path in paths:
        item = _cached_root(path)
        if item and (include_simulated or not item["simulated"]):
            seen.setdefault(item["code"], []).append(item)
    entries = [_entry(sorted(items, key=lambda i: i["time"], reverse=True))
               for items in seen.values()]
    entries.sort(key=lambda e: e.last_time, reverse=True)
    return entries[:limit]


def _entry(items: list[dict[str, Any]]) -> RecentParticipant:
    newest = items[0]
    sex = next((i["sex"] for i in items if i["sex"]), None)
    age = next((i["age"] for i in items if i["age"] is not None), None)
    visits = tuple(dict.fromkeys(i["visit"] for i in items))
    return RecentParticipant(newest["code"], newest["visit"], newest["time"], sex, age,
                             newest["site"], visits)


def _cached_root(path: Path) -> dict[str, Any] | None:
    """:func:`_read_root`, remembered while the file's size and time are unchanged (about
    1 ms a file on first sight: a rescan of thousands of files opens only new ones)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        known = _CACHE.get(path)
    if known and known[0] == key:
        return known[1]
    item = _read_root(path)
    with _CACHE_LOCK:
        _CACHE[path] = (key, item)
    return item


def _read_root(path: Path) -> dict[str, Any] | None:
    """Root attributes of a session file, or None if it cannot be read as one."""
    try:
        handle = _open(path)
        with handle:
            attrs = handle.attrs
            code = _text(attrs.get("participant"))
            if _text(attrs.get("format")) != FORMAT_NAME or not code:
                return None
            parts = handle.get("parts")
            last = parts[max(parts)].attrs if isinstance(parts, h5py.Group) and len(parts) else {}
            sex = _text(attrs.get("sex")).lower()
            age = attrs.get("age")
            return {"code": code, "visit": _text(attrs.get("visit")),
                    "site": _text(attrs.get("site")),
                    "sex": sex if sex in SEXES else None,
                    "age": int(age) if age is not None and 0 <= int(age) <= 130 else None,
                    "time": _started(_text(last.get("started_utc")), path),
                    "simulated": bool(_text(last.get("simulation")))}
    except Exception:  # a broken, truncated or foreign file must not stop the scan
        return None


def _open(path: Path) -> h5py.File:
    """Plainly, else as a writer left it (SWMR: being written, or killed)."""
    try:
        return h5py.File(path, "r", locking=False)
    except OSError:
        return h5py.File(path, "r", swmr=True, locking=False)


def _started(text: str, path: Path) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    return "" if value is None else str(value).strip()
