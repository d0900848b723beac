"""The simulated fMRI heat run end to end: devices -> recording -> file -> summary/exports."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import find_peaks

from qst_station import session
from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.demo_session import DemoPlan, record_demo_session
from sim.ecg import read_truth

PLAN = DemoPlan(volumes=9, tr_s=1.0, every=3, hold_ms=1000, seed=2)


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "sub-DEMO01_ses-baseline.h5"
    lines: list[str] = []
    recording = record_demo_session(path, SimulatedClock(5.0), PLAN, print_line=lines.append)
    assert recording.state == "stopped"
    assert any("rated" in line for line in lines)
    return path


def test_stimuli_are_locked_to_their_volumes(demo_file: Path) -> None:
    s = session.open(demo_file)
    assert s.status == "success"
    volumes = {e.payload["volume"]: e.timestamp for e in s.events_of("trigger")}
    assert sorted(volumes) == list(range(1, 10))
    onsets = s.events_of("stimulus_onset")
    assert [e.payload["volume"] for e in onsets] == PLAN.stimulus_volumes() == [3, 6, 9]
    for onset in onsets:
        lag = onset.timestamp - volumes[onset.payload["volume"]]
        assert 0.0 <= lag < 0.1, lag  # clock seconds (20 ms real at 5x)
    thermode = s.streams["thermode"]
    for onset in onsets:  # the probe reached the target within the stimulus
        during = (thermode.time > onset.timestamp) & (thermode.time < onset.timestamp + 1.0)
        assert thermode.column("zone1")[during].max() > onset.payload["target"] - 1.0
    ratings = s.events_of("rating")
    assert [r.payload["stimulus"] for r in ratings] == [1, 2, 3]


def test_ecg_recorded_through_lsl_matches_the_true_beats(demo_file: Path) -> None:
    s = session.open(demo_file)
    ecg = s.streams["ecg"]
    assert ecg.units == ["mV"] and ecg.nominal_rate == PLAN.ecg_rate_hz
    assert abs(len(ecg.time) / ecg.duration_s - PLAN.ecg_rate_hz) < 5.0
    beat_times, _ = read_truth(demo_file.with_name(demo_file.stem + "_rr-truth.tsv"))
    peaks, _ = find_peaks(ecg.column("ECG"), height=0.6, distance=int(0.3 * ecg.nominal_rate))
    inside = beat_times[(beat_times > ecg.time[0] + 0.1) & (beat_times < ecg.time[-1] - 0.1)]
    assert len(inside) >= 8
    nearest = np.abs(ecg.time[peaks][:, None] - inside[None, :]).min(axis=0)
    assert np.all(nearest < 2.5 / PLAN.ecg_rate_hz), nearest  # R peak at the true beat time
    assert len(s.streams["ecg.clock_offset"].time) >= 1


def test_summary_and_exports_from_the_command_line(demo_file: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["summary", str(demo_file), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["scanner"]["volumes"] == 9 and data["streams"]["ecg"]["samples"] > 3000
    result = runner.invoke(main, ["export", str(demo_file), "--bids", str(tmp_path / "bids"),
                                  "--task", "heat", "--csv", str(tmp_path / "csv")])
    assert result.exit_code == 0, result.output
    func = tmp_path / "bids" / "sub-DEMO01" / "ses-baseline" / "func"
    stem = "sub-DEMO01_ses-baseline_task-heat"
    with open(func / f"{stem}_events.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    heat = [r for r in rows if r["trial_type"] == "heat"]
    assert [round(float(r["onset"])) for r in heat] == [2, 5, 8]  # volumes 3, 6, 9 from volume 1
    assert [p.name for p in sorted(func.glob("*_physio.json"))] == [
        f"{stem}_recording-cardiac_physio.json"]  # the ECG's clock offsets are not physio
    physio = json.loads((func / f"{stem}_recording-cardiac_physio.json").read_text())
    assert physio["Columns"][-1] == "trigger"
    with gzip.open(func / f"{stem}_recording-cardiac_physio.tsv.gz", "rt") as handle:
        triggers = sum(int(line.split("\t")[-1]) for line in handle)
    assert triggers == 9
    with open(tmp_path / "csv" / "events.csv") as handle:
        kinds = [row["kind"] for row in csv.DictReader(handle)]
    assert kinds.count("stimulus_onset") == 3


def test_demo_command_refuses_an_existing_file(demo_file: Path) -> None:
    result = CliRunner().invoke(main, ["demo", str(demo_file)])
    assert result.exit_code == 2 and "exists; choose a new file, or --resume" in result.output


def test_demo_resume_adds_a_part_and_keeps_the_first(demo_file: Path, tmp_path: Path) -> None:
    copy = tmp_path / demo_file.name
    copy.write_bytes(demo_file.read_bytes())
    before = session.open(copy).streams["ecg"].time.copy()
    result = CliRunner().invoke(main, ["demo", str(copy), "--resume", "--volumes", "5",
                                       "--tr", "1", "--every", "4", "--speed", "5"])
    assert result.exit_code == 0, result.output
    s = session.open(copy)
    assert [(p.number, p.status) for p in s.parts] == [(1, "success"), (2, "success")]
    ecg = s.streams["ecg"]
    assert np.array_equal(ecg.time[ecg.part == 1], before)
    assert np.sum(ecg.part == 2) > 0


def test_summary_hrv_matches_the_simulators_true_beats(demo_file: Path) -> None:
    from qst_station.summary import summarize

    s = session.open(demo_file)
    hrv = summarize(s)["hrv"]["ecg"]
    ecg = s.streams["ecg"]
    beats, _ = read_truth(demo_file.with_name(demo_file.stem + "_rr-truth.tsv"))
    inside = beats[(beats >= ecg.time[0]) & (beats <= ecg.time[-1])]
    rr_ms = np.diff(inside) * 1000.0
    assert hrv["n_beats"] == len(inside)
    assert hrv["rmssd_ms"] == pytest.approx(np.sqrt(np.mean(np.diff(rr_ms) ** 2)), rel=0.03)
    assert hrv["sdnn_ms"] == pytest.approx(np.std(rr_ms, ddof=1), rel=0.03)
    assert "HF needs >= 60 s" in hrv["not_computed"]  # a short demo: no spectral measures
