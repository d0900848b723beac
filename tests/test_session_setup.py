"""Session setup model: problems, file names, SessionInfo, recent participants, next visit."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import h5py
import pytest

from protocols.reference import demo_table
from qst_station import session
from qst_station.clock import LslClock
from qst_station.recording import Recording, SessionInfo
from qst_station.session_setup import (
    BODY_SITES,
    VISITS,
    RecentParticipant,
    SessionSetup,
    SessionSetupError,
    decade_band,
    next_visit,
    normalize_visit,
    recent_participants,
    reference_band,
    session_file_name,
    suggest_visit,
)
from qst_station.session_writer import SessionWriter
from qst_station.simulated_run import session_path as simulated_session_path

WHEN = dt.datetime(2024, 5, 1, 10, 15, 30, tzinfo=dt.UTC)


def test_fields_are_cleaned_and_visits_normalized() -> None:
    setup = SessionSetup(" P012 ", " 3 months ", " Aarhus ", " AB ", "Female", 34,
                         ["thenar", " thenar", "", "lumbar painful site"])
    assert (setup.participant, setup.visit, setup.site, setup.operator, setup.sex) == \
        ("P012", "month3", "Aarhus", "AB", "female")
    assert setup.body_sites == ("thenar", "lumbar painful site")
    assert setup.problems() == []
    spellings = {"Baseline": "baseline", "BL": "baseline", "1": "month1", "M3": "month3",
                 "6m": "month6", "12 months": "month12", "month 1": "month1",
                 "unscheduled2": "unscheduled2", "13": "13"}
    assert {text: normalize_visit(text) for text in spellings} == spellings
    assert "lumbar painful site" in BODY_SITES and VISITS[0] == "baseline"


def test_problems_name_the_field() -> None:
    assert SessionSetup().problems() == [
        "participant: enter the participant's pseudonymous code"]
    problems = SessionSetup("P01/2", "month 1!", sex="other", age=140).problems()
    assert [p.split(":")[0] for p in problems] == ["participant", "visit", "sex", "age"]
    assert "letters, digits and '-'" in problems[0]
    assert "BIDS" in problems[1]
    assert problems[3] == "age: 140 years is out of range (5-110)"
    assert SessionSetup("P001", "").problems() == ["visit: choose the visit"]
    assert SessionSetup("P001", "follow_up").problems()[0].startswith("visit:")
    assert SessionSetup("LBP-023", "baseline", age=5).problems() == []


def test_identifying_codes_only_when_the_station_refuses_them() -> None:
    for code in ("Jane Doe", "P-1985-12-31", "JaneDoe"):
        refused = SessionSetup(code, refuse_identifying_codes=True).problems()
        assert len(refused) == 1 and "pseudonymous" in refused[0], refused
    assert SessionSetup("JaneDoe").problems() == []  # the station allows them
    assert SessionSetup("P-1985-12-31").problems() == []
    assert "letters, digits" in SessionSetup("Jane Doe").problems()[0]  # a space
    assert SessionSetup("P0042", refuse_identifying_codes=True).problems() == []


def test_age_bands() -> None:
    assert SessionSetup(age=40).age_band == "40-50"  # age_min <= age < age_max
    assert SessionSetup(age=39).age_band == "30-40"
    assert SessionSetup().age_band is None and decade_band(None) is None
    table = demo_table()
    assert reference_band(table, 40, "female") == "18-80 / 40-60"  # lower back: any 18-80
    assert reference_band(table, 39, "male") == "18-40 / 18-80"
    assert reference_band(table, 90, "female") is None


def test_file_names_match_the_simulated_runs() -> None:
    setup = SessionSetup("P012", "month3")
    path = setup.session_path(Path("sessions"), "ppt", WHEN)
    assert path == Path("sessions/sub-P012_ses-month3_ppt_20240501T101530Z.h5")
    local = WHEN.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert setup.file_name("ppt", local) == path.name  # any zone -> UTC stamp
    simulated = simulated_session_path(Path("out"), "SIM001", "sim", "dfns-thermal")
    pattern = r"sub-SIM001_ses-sim_dfns-thermal_\d{8}T\d{6}Z\.h5"
    assert simulated.parent == Path("out") and re.fullmatch(pattern, simulated.name)
    assert re.fullmatch(pattern, session_file_name("SIM001", "sim", "dfns-thermal"))


def test_to_session_info() -> None:
    setup = SessionSetup("P012", "month3", "Aarhus", "AB", "female", 34, ["thenar"])
    info = setup.to_session_info("ppt", '{"station": {}}', [{"kind": "tcs2", "port": "sim"}])
    assert isinstance(info, SessionInfo)
    assert (info.participant, info.visit, info.site, info.operator, info.protocol) == \
        ("P012", "month3", "Aarhus", "AB", "ppt")
    assert info.station_config == '{"station": {}}'
    assert info.devices == ({"kind": "tcs2", "port": "sim"},)
    assert setup.file_attrs() == {"sex": "female", "age": 34, "body_sites": '["thenar"]'}
    with pytest.raises(SessionSetupError, match="participant: enter"):
        SessionSetup().to_session_info("ppt", "{}")


# -- recent participants from real files ----------------------------------------------------

def _record(path: Path, setup: SessionSetup, stop: bool = True) -> Recording:
    """A short real session file written by the SessionWriter, with the proposed attrs."""
    recording = Recording(LslClock())
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(setup.to_session_info("ppt", "{}"))
    recording.event("note", {"text": "setup test"})
    if stop:
        recording.stop("success")
        assert writer.wait(10) and writer.error is None
        with h5py.File(path, "a", locking=False) as handle:
            handle.attrs.update(setup.file_attrs())
    return recording


def _plain(path: Path, code: str, visit: str, started: str, **attrs: object) -> None:
    """A session file's root and part attributes only, written with plain h5py."""
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "qst-station-session", "format_version": "1.0",
                             "participant": code, "visit": visit, "site": "Aarhus", **attrs})
        part = handle.create_group("parts/001")
        part.attrs.update({"started_utc": started, "simulation": ""})


def test_recent_participants_newest_first(tmp_path: Path) -> None:
    _plain(tmp_path / "a.h5", "P001", "baseline", "2024-01-10T09:00:00.000+00:00",
           sex="female", age=34)
    _plain(tmp_path / "b.h5", "P001", "month1", "2024-02-12T09:00:00.000+00:00")  # no sex/age
    _plain(tmp_path / "c.h5", "P002", "baseline", "2024-03-01T09:00:00.000+00:00",
           sex="male", age=51)
    _plain(tmp_path / "d.h5", "SIM001", "sim", "2024-04-01T09:00:00.000+00:00")
    with h5py.File(tmp_path / "d.h5", "a") as handle:
        handle["parts/001"].attrs["simulation"] = '{"seed": 1}'
    _record(tmp_path / "e.h5", SessionSetup("P003", "baseline", sex="female", age=28))
    entries = recent_participants(tmp_path)
    assert [e.code for e in entries] == ["P003", "P002", "P001"]
    p3, p2, p1 = entries
    assert (p3.last_visit, p3.sex, p3.age) == ("baseline", "female", 28)
    assert p3.last_date == dt.date.today()
    assert (p2.last_visit, p2.sex, p2.age, p2.site) == ("baseline", "male", 51, "Aarhus")
    assert (p1.last_visit, p1.visits, p1.sex, p1.age) == \
        ("month1", ("month1", "baseline"), "female", 34)  # sex/age from the older file
    assert p1.last_time == dt.datetime(2024, 2, 12, 9, tzinfo=dt.UTC)
    assert [e.code for e in recent_participants(tmp_path, limit=2)] == ["P003", "P002"]
    with_sim = recent_participants(tmp_path, include_simulated=True)
    assert [e.code for e in with_sim] == ["P003", "SIM001", "P002", "P001"]


def test_files_without_the_proposed_attrs_have_no_sex_or_age(tmp_path: Path) -> None:
    recording = Recording(LslClock())
    writer = SessionWriter(tmp_path / "x.h5")
    recording.subscribe(writer)
    recording.start(SessionInfo("P010", "month6", site="Aarhus", protocol="ppt"))
    recording.stop("success")
    assert writer.wait(10)
    [entry] = recent_participants(tmp_path)
    assert (entry.code, entry.last_visit, entry.sex, entry.age) == ("P010", "month6", None, None)


def test_broken_foreign_and_recording_files_are_tolerated(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    _plain(good, "P001", "baseline", "2024-01-10T09:00:00.000+00:00")
    (tmp_path / "text.h5").write_text("not hdf5")
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "truncated.h5").write_bytes(good.read_bytes()[:600])
    with h5py.File(tmp_path / "foreign.h5", "w") as handle:
        handle.attrs["participant"] = "X1"
    _plain(tmp_path / "no-parts.h5", "P004", "month12", "")
    with h5py.File(tmp_path / "no-parts.h5", "a") as handle:
        del handle["parts"]
    unreadable = tmp_path / "unreadable.h5"
    _plain(unreadable, "P005", "baseline", "2024-01-10T09:00:00.000+00:00")
    unreadable.chmod(0)
    live = _record(tmp_path / "live.h5", SessionSetup("P006", "month3"), stop=False)
    try:
        entries = recent_participants(tmp_path)
        codes = [e.code for e in entries]
        assert codes[0] == "P006" and "P001" in codes and "P004" in codes  # no-parts: mtime
        assert "X1" not in codes
        assert ("P005" in codes) == (os.geteuid() == 0)  # root reads a mode-0 file
        assert session.open(tmp_path / "live.h5").live  # still being written
    finally:
        live.stop("success")
        unreadable.chmod(0o644)
    assert recent_participants(tmp_path / "missing") == []


def test_rescans_see_changed_files(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    _plain(path, "P001", "baseline", "2024-01-10T09:00:00.000+00:00")
    assert recent_participants(tmp_path)[0].last_visit == "baseline"
    _plain(path, "P001", "month1", "2024-02-10T09:00:00.000+00:00")
    os.utime(path, ns=(1, 1))  # a different time, whatever the file system's resolution
    assert recent_participants(tmp_path)[0].last_visit == "month1"


def _entry(visits: tuple[str, ...], days_ago: int) -> RecentParticipant:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return RecentParticipant("P001", visits[0], when, visits=visits)


def test_visit_suggestion_follows_the_schedule() -> None:
    assert [next_visit(v) for v in VISITS] == [*VISITS[1:], None]
    assert next_visit("unscheduled") is None
    assert suggest_visit(_entry(("baseline",), 30)) == "month1"
    assert suggest_visit(_entry(("month3", "month1", "baseline"), 60)) == "month6"
    assert suggest_visit(_entry(("unscheduled", "month3", "baseline"), 20)) == "month6"
    assert suggest_visit(_entry(("month12", "month6"), 200)) is None  # schedule complete
    assert suggest_visit(_entry(("pilot",), 10)) == "baseline"
    assert suggest_visit(_entry(("month3", "month1"), 0)) == "month3"  # same day: same visit
