"""Tidy CSV export of a session: trials, measures, events, streams."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from qst_station import session
from qst_station.export_csv import export_csv
from tests.test_export_bids import BASE, VOLUMES, build_session


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    folder = tmp_path_factory.mktemp("csv")
    s = session.open(build_session(folder / "s.h5", resp=True))
    files = export_csv(s, folder / "out")
    assert [f.name for f in files] == ["trials.csv", "measures.csv", "events.csv",
                                       "streams.csv"]
    out = {}
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            out[path.stem] = list(csv.DictReader(handle))
            handle.seek(0)
            out[path.stem + "_header"] = next(csv.reader(handle))
    return out


def test_trials(tables: dict) -> None:
    assert tables["trials_header"] == ["time", "session_time", "part", "test", "repetition",
                                       "value", "unit", "flags"]
    (trial,) = tables["trials"]
    assert float(trial["time"]) == BASE + 12.0 and float(trial["session_time"]) == 12.0
    assert (trial["part"], trial["test"], trial["value"], trial["unit"], trial["flags"]) == (
        "1", "HPT", "44.9", "degC", "")


def test_measures(tables: dict) -> None:
    assert tables["measures_header"][:6] == ["measure", "value", "unit", "transform",
                                             "trials", "flags"]
    (hpt,) = tables["measures"]
    assert (hpt["measure"], hpt["value"], hpt["transform"], hpt["trials"], hpt["flags"]) == (
        "HPT", "44.9", "none", "1", "ok")
    assert float(hpt["session_time"]) == 26.0


def test_events(tables: dict) -> None:
    rows = tables["events"]
    header = tables["events_header"]
    assert header[:6] == ["time", "session_time", "part", "kind", "payload", "name"]
    assert len(header) == 5 + 19 and header[-1] == "action"
    assert len(rows) == VOLUMES + 4 + 3 + 3 + 1 + 2 + 1 + 1
    times = [float(r["time"]) for r in rows]
    assert times == sorted(times)
    triggers = [r for r in rows if r["kind"] == "trigger"]
    assert [r["volume"] for r in triggers] == [str(v) for v in range(1, VOLUMES + 1)]
    assert triggers[4]["inferred"] == "true" and triggers[0]["inferred"] == "false"
    onset = next(r for r in rows if r["kind"] == "stimulus_onset")
    assert json.loads(onset["payload"])["zones"] == [1, 2, 3]
    assert (onset["target"], onset["modality"], onset["trial"]) == ("45.0", "heat", "0")
    phase = next(r for r in rows if r["kind"] == "phase")
    assert (phase["name"], phase["state"], phase["target"]) == ("HPT", "start", "")


def test_streams(tables: dict) -> None:
    rows = {r["name"]: r for r in tables["streams"]}
    assert set(rows) == {"ecg", "thermode", "rr", "belt"}
    ecg = rows["ecg"]
    assert (ecg["samples"], ecg["nominal_rate"], ecg["channels"], ecg["units"]) == (
        "15000", "500.0", "ECG", "mV")
    assert float(ecg["duration_s"]) == pytest.approx(29.998)
    assert float(ecg["effective_rate"]) == pytest.approx(500.0)
    assert rows["thermode"]["channels"] == "neutral;zone1;zone2;zone3;zone4;zone5"
    assert rows["rr"]["nominal_rate"] == "0.0" and rows["rr"]["parts"] == "1"


def test_csv_export_of_a_session_without_trials(tmp_path: Path) -> None:
    s = session.open(build_session(tmp_path / "s.h5", triggers=False))
    s.events = [(p, e) for p, e in s.events if e.kind not in ("trial", "result")]
    trials, measures, *_ = export_csv(s, tmp_path / "out")
    assert trials.read_text().strip() == "time,session_time,part"
    assert measures.read_text().strip() == "measure,value,unit,transform,trials,flags"
