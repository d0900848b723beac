"""qst-station profile: z-scores of a session's DFNS measures against a reference table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from protocols.base import Measure
from qst_station.cli import main
from qst_station.clock import LslClock
from qst_station.profiles import measures_of
from qst_station.recording import Recording, SessionInfo
from qst_station.session import open as open_session
from qst_station.session_writer import SessionWriter

REFERENCE = """site,sex,age_min,age_max,measure,mean,sd,transform,source
hand dorsum,any,20,60,CDT,0.0,0.25,log10,test table (made up)
hand dorsum,any,20,60,HPT,44.0,2.0,none,test table (made up)
"""


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    recording = Recording(LslClock())
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(SessionInfo("P001", "baseline"))
    for m in (Measure("CDT", 10.0, "degC", "log10", (9.0, 10.0, 11.0), (), "hand dorsum"),
              Measure("HPT", 40.0, "degC", "none", (40.0,), ("cutoff-reached",), "hand dorsum"),
              Measure("PHS", 1.0, "count", "none", (), (), "hand dorsum"),
              Measure("TSP", 20.0, "NRS 0-100", "none")):
        recording.event("result", m.as_payload())
    recording.stop("success")
    assert writer.wait(5.0)
    return path


def test_measures_come_back_from_the_file(session_file: Path) -> None:
    measures = {m.name: m for m in measures_of(open_session(session_file))}
    assert measures["CDT"].trials == (9.0, 10.0, 11.0) and measures["CDT"].transform == "log10"
    assert measures["HPT"].flags == ("cutoff-reached",)


def test_profile_with_the_labs_table(session_file: Path, tmp_path: Path) -> None:
    table = tmp_path / "ref.csv"
    table.write_text(REFERENCE)
    result = CliRunner().invoke(main, ["profile", str(session_file), "--sex", "female",
                                       "--age", "30", "--reference", str(table), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    z = {row["measure"]: row["z"] for row in data["zscores"]}
    # CDT: log10(10) = 1.0, (1.0 - 0.0)/0.25 = 4.0, inverted sign -> -4.0 (loss)
    # HPT: (40 - 44)/2 = -2.0, inverted sign -> +2.0 (gain: pain at a lower temperature)
    assert z == {"CDT": -4.0, "HPT": 2.0}
    assert data["code"] == "L1G1" and data["counts"] == {"PHS": 1.0}
    assert data["reference"] == ["test table (made up)"]


def test_profile_text_png_and_errors(session_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    png = tmp_path / "p.png"
    result = runner.invoke(main, ["profile", str(session_file), "--sex", "male", "--age", "45",
                                  "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC DEMO DATA" in result.output and "CDT" in result.output
    assert png.stat().st_size > 10_000
    result = runner.invoke(main, ["profile", str(session_file), "--sex", "male", "--age", "45",
                                  "--site", "cheek"])
    assert result.exit_code == 1 and "no measures taken at 'cheek'" in result.output


def test_a_measure_at_several_sites_is_kept_per_site(tmp_path: Path) -> None:
    path = tmp_path / "ppt.h5"
    recording = Recording(LslClock())
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(SessionInfo("P001", "baseline"))
    for site, value in (("thenar", 400.0), ("lower back", 250.0), ("thenar", 410.0)):
        recording.event("result", Measure("PPT", value, "kPa", "log10", site=site).as_payload())
    recording.stop("success")
    assert writer.wait(5.0)
    s = open_session(path)
    assert {k: r["value"] for k, r in s.results().items()} == {
        "PPT@thenar": 410.0, "PPT@lower back": 250.0}  # the later thenar value wins
    assert sorted(m.site for m in measures_of(s)) == ["lower back", "thenar"]
    result = CliRunner().invoke(main, ["profile", str(path), "--sex", "male", "--age", "40",
                                       "--site", "lower back", "--json"])
    assert result.exit_code == 0, result.output
    assert [row["measure"] for row in json.loads(result.output)["zscores"]] == ["PPT"]
