"""BIDS export of a session: events, stimulus traces, physio, runs, labels, validator."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from qst_station import session
from qst_station.cli import main
from qst_station.export_bids import BidsExportError, classify, export_bids, resample
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
from qst_station.session import Stream
from qst_station.session_writer import SessionWriter

BASE = 1000.0  # program clock of the recording start (s)
TR = 2.0
FIRST_VOLUME = 4.0  # s after BASE
VOLUMES = 12
DURATION = 30.0
THERMODE = StreamSpec("thermode", (Channel("neutral", "degC"),
                                   *(Channel(f"zone{i}", "degC") for i in range(1, 6))),
                      100.0, "TCS II sim", lsl_type="Temperature")
ECG = StreamSpec("ecg", (Channel("ECG", "mV"),), 500.0, "lsl:qst-sim-ECG", lsl_type="ECG")
RR = StreamSpec("rr", (Channel("RR", "s"),), 0.0, "lsl:qst-sim-RR", lsl_type="RR")
RESP = StreamSpec("belt", (Channel("respiration", "a.u."),), 25.0, "lsl:belt")
# (onset, offset, trial): one stimulus before the first volume, one never switched off
STIMULI = [(2.0, 3.0, 0), (6.0, 11.0, 1), (14.0, 19.5, 2), (28.0, None, 3)]


class FixedClock:
    speed = 1.0

    def now(self) -> float:
        return BASE

    def sleep(self, seconds: float) -> None: ...


def temperature(t: np.ndarray) -> np.ndarray:
    """32 degC, 45 degC while a stimulus is on (offset-less one until the end)."""
    on = np.zeros_like(t, dtype=bool)
    for onset, offset, _ in STIMULI:
        on |= (t >= BASE + onset) & (t < BASE + (offset or DURATION + 1))
    return np.where(on, 45.0, 32.0)


def build_session(path: Path, triggers: bool = True, runs: bool = False, dummies: int = 0,
                  resp: bool = False) -> Path:
    """A 30 s session: ECG 500 Hz, jittered thermode 100 Hz, RR, triggers every 2 s from 4 s,
    stimuli, ratings, a response, a phase, trials and results."""
    recording = Recording(FixedClock())
    for spec in (THERMODE, ECG, RR, *([RESP] if resp else [])):
        recording.add_stream(spec)
    writer = SessionWriter(path, flush_interval_s=0.02)
    recording.subscribe(writer)
    recording.start(SessionInfo("P001", "baseline", protocol="fmri-heat"))
    _push_streams(recording, resp)
    if triggers:
        for v in range(1, VOLUMES + dummies + 1):
            recording.event("trigger", {"volume": v, "inferred": v == 5, "dummy": v <= dummies,
                                        "source": "scanner"},
                            BASE + FIRST_VOLUME + (v - 1 - dummies) * TR)
    for onset, offset, trial in STIMULI:
        stim = {"device": "tcs", "modality": "heat", "target": 45.0, "unit": "degC",
                "zones": [1, 2, 3], "trial": trial}
        recording.event("stimulus_onset", stim, BASE + onset)
        if offset is not None:
            recording.event("stimulus_offset", stim, BASE + offset)
            recording.event("rating", {"scale": "NRS 0-100", "value": 40 + trial,
                                       "stimulus": trial}, BASE + offset + 1.0)
    recording.event("response", {"source": "buttons", "action": "press", "value": 2}, BASE + 9.0)
    recording.event("phase", {"name": "HPT", "state": "start"}, BASE + 5.0)
    recording.event("phase", {"name": "HPT", "state": "end"}, BASE + 25.0)
    if runs:
        for run, (start, end) in enumerate([(1.0, 15.0), (15.5, 29.0)], start=1):
            recording.event("phase", {"name": "fmri-run", "state": "start", "run": run},
                            BASE + start)
            recording.event("phase", {"name": "fmri-run", "state": "end", "run": run},
                            BASE + end)
    recording.event("trial", {"test": "HPT", "repetition": 1, "value": 44.9, "unit": "degC",
                              "flags": []}, BASE + 12.0)
    recording.event("result", {"measure": "HPT", "value": 44.9, "unit": "degC",
                               "transform": "none", "trials": [1], "flags": ["ok"]},
                    BASE + 26.0)
    recording.stop("success")
    assert writer.wait(10) and writer.error is None
    return path


def _push_streams(recording: Recording, resp: bool) -> None:
    t = BASE + np.arange(int(DURATION * 500)) / 500.0
    recording.push("ecg", t, np.sin(2 * np.pi * 1.2 * (t - BASE))[:, None])
    jitter = np.random.default_rng(0).uniform(-0.002, 0.002, int(DURATION * 100))
    tt = BASE + np.arange(int(DURATION * 100)) / 100.0 + jitter
    recording.push("thermode", tt, np.repeat(temperature(tt)[:, None], 6, axis=1))
    beats = BASE + np.cumsum(np.full(30, 0.9))
    recording.push("rr", beats, np.full((30, 1), 0.9))
    if resp:
        tr = BASE + np.arange(int(DURATION * 25)) / 25.0
        recording.push("belt", tr, np.cos(tr - BASE)[:, None])


@pytest.fixture(scope="module")
def session_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_session(tmp_path_factory.mktemp("s") / "sub-P001_ses-baseline.h5", resp=True)


@pytest.fixture(scope="module")
def exported(session_file: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("bids")
    return out, export_bids(session.open(session_file), out, "P001", "baseline", "heat")


def read_events(path: Path) -> list[dict[str, str]]:
    header, *lines = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def read_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rt") as handle:
        text = handle.read()
    assert not text.startswith(("cardiac", "neutral", "onset"))  # no header line
    return np.array([[np.nan if c == "n/a" else float(c) for c in line.split("\t")]
                     for line in text.splitlines()])


FUNC = "sub-P001/ses-baseline/func/sub-P001_ses-baseline_task-heat"


def test_files_written(exported: tuple[Path, list[Path]]) -> None:
    out, files = exported
    names = sorted(str(f.relative_to(out)) for f in files)
    assert names == sorted(["dataset_description.json", *(FUNC + s for s in (
        "_events.tsv", "_events.json",
        "_recording-cardiac_physio.tsv.gz", "_recording-cardiac_physio.json",
        "_recording-respiratory_physio.tsv.gz", "_recording-respiratory_physio.json",
        "_recording-thermode_stim.tsv.gz", "_recording-thermode_stim.json"))])
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["BIDSVersion"] == "1.9.0" and description["DatasetType"] == "raw"


def test_events_onsets_are_relative_to_the_first_volume(exported: tuple[Path, list[Path]]
                                                        ) -> None:
    out, _ = exported
    rows = read_events(out / f"{FUNC}_events.tsv")
    stimuli = [r for r in rows if r["trial_type"] == "heat"]
    assert [float(r["onset"]) for r in stimuli] == [o - FIRST_VOLUME for o, _, _ in STIMULI]
    assert [r["duration"] for r in stimuli] == ["1.0000", "5.0000", "5.5000", "n/a"]
    assert stimuli[0]["onset"] == "-2.0000"
    assert {(r["target"], r["target_unit"], r["zones"], r["device"]) for r in stimuli} == {
        ("45.0", "degC", "1;2;3", "tcs")}
    ratings = [r for r in rows if r["trial_type"] == "rating"]
    assert [(float(r["onset"]), r["value"], r["trial"]) for r in ratings] == [
        (0.0, "40", "0"), (8.0, "41", "1"), (16.5, "42", "2")]
    assert all(r["duration"] == "0.0000" and r["scale"] == "NRS 0-100" for r in ratings)
    (response,) = [r for r in rows if r["trial_type"] == "response"]
    assert (response["onset"], response["response_kind"], response["value"]) == (
        "5.0000", "press", "2")
    (phase,) = [r for r in rows if r["trial_type"] == "phase"]
    assert (phase["onset"], phase["duration"], phase["phase"]) == ("1.0000", "20.0000", "HPT")
    assert len(rows) == 9
    assert [float(r["onset"]) for r in rows] == sorted(float(r["onset"]) for r in rows)


def test_events_json_describes_every_column(exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    header = (out / f"{FUNC}_events.tsv").read_text().splitlines()[0].split("\t")
    sidecar = json.loads((out / f"{FUNC}_events.json").read_text())
    assert header[:3] == ["onset", "duration", "trial_type"] and len(header) == 15
    assert set(sidecar) == {*header, "StimulusPresentation"}
    del sidecar["StimulusPresentation"]
    assert all("Description" in v for v in sidecar.values())
    assert sidecar["onset"]["Units"] == "s"
    assert set(sidecar["trial_type"]["Levels"]) == {"heat", "rating", "response", "phase"}


def test_cardiac_physio_has_a_trigger_per_volume(exported: tuple[Path, list[Path]]) -> None:
    out, _ = exported
    meta = json.loads((out / f"{FUNC}_recording-cardiac_physio.json").read_text())
    data = read_gz(out / f"{FUNC}_recording-cardiac_physio.tsv.gz")
    assert meta["Columns"] == ["cardiac", "trigger"] and data.shape == (15000, 2)
    assert meta["SamplingFrequency"] == 500.0
    assert meta["StartTime"] == pytest.approx(-FIRST_VOLUME) and meta["StartTime"] < 0
    assert meta["cardiac"]["Units"] == "mV"
    marked = np.flatnonzero(data[:, 1])
    assert len(marked) == VOLUMES and set(data[:, 1]) == {0.0, 1.0}
    expected = np.rint((FIRST_VOLUME + np.arange(VOLUMES) * TR) * 500).astype(int)
    assert marked.tolist() == expected.tolist()
    t = np.arange(15000) / 500.0
    assert np.allclose(data[:, 0], np.sin(2 * np.pi * 1.2 * t), atol=1e-4)


def test_thermode_trace_is_resampled_onto_a_uniform_grid(exported: tuple[Path, list[Path]]
                                                         ) -> None:
    out, _ = exported
    meta = json.loads((out / f"{FUNC}_recording-thermode_stim.json").read_text())
    data = read_gz(out / f"{FUNC}_recording-thermode_stim.tsv.gz")
    assert meta["Columns"] == ["neutral", "zone1", "zone2", "zone3", "zone4", "zone5"]
    assert meta["SamplingFrequency"] == 100.0 and data.shape[1] == 6
    assert abs(len(data) - 3000) <= 1
    assert -FIRST_VOLUME - 0.003 < meta["StartTime"] < -FIRST_VOLUME + 0.003
    assert meta["zone1"]["Units"] == "oC" and "interpolated" in meta["zone1"]["Description"]
    grid = meta["StartTime"] + FIRST_VOLUME + np.arange(len(data)) / 100.0
    far = np.all([np.abs(grid - e) > 0.02 for s in STIMULI for e in s[:2] if e is not None],
                 axis=0)
    assert np.array_equal(data[far, 1], temperature(BASE + grid[far]))


def test_rr_is_skipped_with_a_reason(session_file: Path, exported: tuple[Path, list[Path]]
                                     ) -> None:
    s = session.open(session_file)
    role = classify(s.streams["rr"])
    assert role.kind == "skip" and "not a physio waveform" in role.reason
    assert classify(s.streams["ecg"]).label == "cardiac"
    assert classify(s.streams["thermode"]).kind == "stim"
    assert not [f for f in exported[1] if "rr" in f.name.split("_")[-2]]


def _stream(name: str, channels: list[str], units: list[str], rate: float = 100.0,
            lsl_type: str = "", time: np.ndarray | None = None) -> Stream:
    time = np.arange(10) / rate if time is None else time
    stream = Stream(name, time, np.ones((len(time), len(channels))), channels, units, rate,
                    "test", np.ones(len(time), dtype=np.int32))
    stream.lsl_type = lsl_type  # type: ignore[attr-defined]  # not in the reader yet
    return stream


@pytest.mark.parametrize(("stream", "kind", "label"), [
    (_stream("pressure", ["pressure", "force"], ["kPa", "N"]), "stim", "pressure"),
    (_stream("cuff-1", ["p"], ["kPa"]), "stim", "cuff1"),
    (_stream("finger", ["PPG"], ["a.u."]), "physio", "cardiac"),
    (_stream("chest", ["lead"], ["mV"]), "physio", "cardiac"),
    (_stream("amp", ["x"], ["uV"], lsl_type="EMG"), "skip", ""),
    (_stream("belt", ["respiration"], ["a.u."]), "physio", "respiratory"),
    (_stream("polar", ["HR"], ["bpm"], lsl_type="HeartRate"), "skip", ""),
    (_stream("buttons", ["state"], [""]), "skip", ""),
])
def test_classification(stream: Stream, kind: str, label: str) -> None:
    role = classify(stream)
    assert (role.kind, role.label) == (kind, label)
    assert bool(role.reason) == (kind == "skip")


def test_irregular_streams_get_a_median_rate_and_gaps_are_n_a() -> None:
    time = np.concatenate([np.arange(0.0, 2.0, 0.1), np.arange(5.0, 6.0, 0.1)])
    stream = _stream("pressure", ["pressure"], ["kPa"], rate=0.0, time=time)
    stream.values = time[:, None] * 2.0
    trace = resample(stream, (-math.inf, math.inf))
    assert trace is not None and trace.rate == 10.0 and trace.start == 0.0
    assert len(trace.values) == 60
    values = trace.values[:, 0]
    assert np.isnan(values[20:50]).all() and not np.isnan(values[:20]).any()
    assert np.allclose(values[:20], np.arange(20) * 0.2)
    assert np.allclose(values[50:], np.arange(50, 60) * 0.2)


def test_dummy_volumes_are_not_time_zero(tmp_path: Path) -> None:
    s = session.open(build_session(tmp_path / "s.h5", dummies=3))
    export_bids(s, tmp_path / "bids", "P001", "baseline", "heat")
    func = tmp_path / "bids" / FUNC
    rows = read_events(Path(f"{func}_events.tsv"))
    assert rows[0]["onset"] == "-2.0000"
    data = read_gz(Path(f"{func}_recording-cardiac_physio.tsv.gz"))
    assert int(data[:, 1].sum()) == VOLUMES


def test_runs_export_only_their_span(tmp_path: Path) -> None:
    s = session.open(build_session(tmp_path / "s.h5", runs=True))
    with pytest.raises(BidsExportError, match=r"fMRI runs \[1, 2\]: choose one"):
        export_bids(s, tmp_path / "bids", "P001", "baseline", "heat")
    with pytest.raises(BidsExportError, match="no fMRI run 3"):
        export_bids(s, tmp_path / "bids", "P001", "baseline", "heat", run=3)
    files = export_bids(s, tmp_path / "bids", "P001", "baseline", "heat", run=2)
    assert all("_run-2_" in f.name for f in files[1:])
    func = tmp_path / "bids" / f"{FUNC}_run-2"
    rows = read_events(Path(f"{func}_events.tsv"))
    first_volume = 16.0  # the first trigger after 15.5 s
    assert [float(r["onset"]) for r in rows if r["trial_type"] == "heat"] == [
        28.0 - first_volume]
    meta = json.loads(Path(f"{func}_recording-cardiac_physio.json").read_text())
    data = read_gz(Path(f"{func}_recording-cardiac_physio.tsv.gz"))
    assert meta["StartTime"] == pytest.approx(15.5 - first_volume, abs=0.002)
    assert int(data[:, 1].sum()) == 6  # volumes at 16, 18, ..., 26 s
    assert len(data) == pytest.approx((29.0 - 15.5) * 500, abs=2)


def test_no_triggers_and_bad_labels_are_refused(tmp_path: Path) -> None:
    s = session.open(build_session(tmp_path / "s.h5", triggers=False))
    with pytest.raises(BidsExportError, match="no scanner trigger events"):
        export_bids(s, tmp_path / "bids", "P001", "baseline", "heat")
    assert not (tmp_path / "bids").exists()
    with pytest.raises(BidsExportError, match="subject label 'P-001'"):
        export_bids(s, tmp_path / "bids", "P-001", "baseline", "heat")


def test_existing_dataset_description_is_kept(session_file: Path, tmp_path: Path) -> None:
    (tmp_path / "dataset_description.json").write_text('{"Name": "mine", "BIDSVersion": "1.9.0"}')
    files = export_bids(session.open(session_file), tmp_path, "P001", "baseline", "heat")
    assert tmp_path / "dataset_description.json" not in files
    assert json.loads((tmp_path / "dataset_description.json").read_text())["Name"] == "mine"


def test_cli_export(session_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> None:
    monkeypatch.chdir(tmp_path)  # relative output directories land here if ever written
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(session_file), "--bids", str(tmp_path / "b"),
                                  "--subject", "P001", "--session", "baseline", "--task", "heat",
                                  "--csv", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert f"{FUNC}_events.tsv" in result.output and "trials.csv" in result.output
    assert "skipped stream rr" in result.output
    for args, message in [
        (["missing.h5", "--csv", "x"], "no such file"),
        ([str(session_file)], "nothing to export"),
        ([str(session_file), "--bids", "b", "--subject", "P_1", "--session", "v",
          "--task", "t"], "subject label 'P_1'"),
        ([str(session_file), "--bids", "b", "--session", "v"], "--task"),
        ([str(session_file), "--csv", "c", "--run", "1"], "--run needs --bids"),
        ([str(session_file), "--csv", str(session_file)], "cannot write"),
        ([str(tmp_path), "--csv", "c"], "not an HDF5 file"),
    ]:
        result = runner.invoke(main, ["export", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    result = runner.invoke(main, ["export", str(tmp_path / "bad.h5"), "--csv", "c"])
    assert result.exit_code == 1 and "not an HDF5 file" in result.output


# ---------------------------------------------------------------------------- validator


def _validator(name: str) -> str | None:
    """The validator executable ``name`` in $BIDS_VALIDATOR_PATH (directories), next to this
    Python (the dev extra installs ``bids-validator-deno`` into the venv) or on $PATH."""
    extra = os.environ.get("BIDS_VALIDATOR_PATH", "")
    here = str(Path(sys.executable).parent)
    return shutil.which(name, path=os.pathsep.join([extra, here, os.environ.get("PATH", "")]))


def _errors(report: dict) -> list[tuple[str, str]]:
    """(code, file) of each error in a report of either validator's --json output."""
    issues = report["issues"]
    if "errors" in issues:  # bids-validator 1.x (npm)
        return [(i["key"], f["file"]["relativePath"]) for i in issues["errors"]
                for f in i["files"] or [{"file": {"relativePath": ""}}]]
    return [(i["code"], i.get("location", "")) for i in issues["issues"]
            if i["severity"] == "error"]


def write_nifti(path: Path, volumes: int, tr: float) -> None:
    """A tiny valid NIfTI-1 file (2x2x2 voxels, int16, ``volumes`` time points), gzipped
    without compression: the validator calls a .nii.gz under 348 bytes too small."""
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 4, 2, 2, 2, volumes, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, 16 bits per voxel
    struct.pack_into("<8f", header, 76, 1.0, 3.0, 3.0, 3.0, tr, 0, 0, 0)
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    header[123] = 10  # xyzt_units: mm and s
    struct.pack_into("<hh", header, 252, 0, 1)  # qform_code 0, sform_code 1
    for row, offset in enumerate((280, 296, 312)):
        struct.pack_into("<4f", header, offset, *[3.0 if i == row else 0.0 for i in range(4)])
    header[344:348] = b"n+1\0"
    data = np.zeros((volumes, 2, 2, 2), dtype="<i2").tobytes()
    with path.open("wb") as raw, gzip.GzipFile("", "wb", 0, raw, mtime=0) as handle:
        handle.write(bytes(header) + b"\0" * 4 + data)


@pytest.mark.parametrize("name", ["bids-validator-deno", "bids-validator"])
def test_official_validator_accepts_the_export(name: str, exported: tuple[Path, list[Path]],
                                               tmp_path: Path) -> None:
    command = _validator(name)
    if command is None:
        pytest.skip(f"{name} not found (see docs/exports.md; or set $BIDS_VALIDATOR_PATH)")
    out = tmp_path / "dataset"
    shutil.copytree(exported[0], out)
    func = out / "sub-P001" / "ses-baseline" / "func"
    write_nifti(func / "sub-P001_ses-baseline_task-heat_bold.nii.gz", VOLUMES, TR)
    (func / "sub-P001_ses-baseline_task-heat_bold.json").write_text(
        json.dumps({"RepetitionTime": TR, "TaskName": "heat"}))
    result = subprocess.run([command, "--json", str(out)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert _errors(json.loads(result.stdout)) == []


def test_a_run_cut_short_by_a_kill_ends_with_its_part(tmp_path: Path) -> None:
    """Part 1's run has no end phase (the program died); part 2 holds run 2."""
    path = tmp_path / "s.h5"
    for part, (run, t0, ended) in enumerate(((1, 100.0, False), (2, 200.0, True)), start=1):
        recording = Recording(_Clock())
        writer = SessionWriter(path, resume=part > 1)
        recording.subscribe(writer)
        recording.start(SessionInfo("P001", "baseline"))
        recording.event("phase", {"name": "fmri-run", "state": "start", "run": run}, t0)
        for volume in range(1, 6):
            recording.event("trigger", {"volume": volume}, t0 + volume)
        recording.event("stimulus_onset", {"target": 45.0, "unit": "degC"}, t0 + 2.5)
        if ended:
            recording.event("phase", {"name": "fmri-run", "state": "end", "run": run}, t0 + 6)
        recording.stop("success")
        assert writer.wait(10)
    s = session.open(path)
    for run in (1, 2):
        out = tmp_path / f"bids{run}"
        export_bids(s, out, "P001", "baseline", "heat", run)
        rows = read_events(next(out.glob(f"sub-P001/ses-baseline/func/*run-{run}_events.tsv")))
        assert [r["onset"] for r in rows if r["trial_type"] != "fmri-run"] == ["1.5000"]


class _Clock:
    speed = 1.0

    def now(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        pass


def test_clock_offset_streams_are_not_exported_as_physio() -> None:
    offsets = Stream("ecg.clock_offset", np.array([0.0, 5.0]), np.zeros((2, 1)), ["offset"],
                     ["s"], 0.0, "lsl:ECG@host", np.ones(2, dtype=np.int32), "ClockOffset")
    role = classify(offsets)
    assert role.kind == "skip" and "clock offsets" in role.reason
