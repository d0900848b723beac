"""HRV epochs of a recorded session (qst_station.hrv_epochs): sources, epochs, responses, storage.

A session file is written through the real Recording and SessionWriter with explicit
timestamps (a manual clock, no LSL): a simulated ECG with one ectopic and one dropped beat,
the RR stream of the same beats, a resting phase, an HPT block and four stimuli.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from qst_station import session
from qst_station.cli import main
from qst_station.h5_recovery import lock_path
from qst_station.hrv import BeatSeries, rr_from_peaks, time_domain
from qst_station.hrv_epochs import (
    HrvStoreError,
    analyze,
    hr_curve,
    read_stored_hrv,
    session_epochs,
    store_hrv,
)
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
from qst_station.session_writer import SessionWriter
from qst_station.summary import format_summary, summarize
from sim.ecg import beat_times, ecg_waveform, rr_series
from tests.helpers import ManualClock

SEED = 21
RATE = 250.0
T0 = 1000.0  # program clock of the first ECG sample
DURATION_S = 400.0
REST = (5.0, 305.0)  # seconds from T0
HPT = (305.0, 395.0)
ONSETS = (320.0, 340.0, 360.0, 380.0)
ECTOPIC, DROPPED = 60, 200  # beat indices



def _truth() -> np.ndarray:
    return T0 + beat_times(rr_series(SEED, DURATION_S - 1.0), first_s=0.5)


def _record(path: Path, truth: np.ndarray) -> None:
    """ECG with an ectopic and a missed beat, the clean RR stream, phases and stimuli."""
    shown = truth.copy()
    shown[ECTOPIC] -= 0.3 * (truth[ECTOPIC] - truth[ECTOPIC - 1])  # a premature beat
    shown = np.delete(shown, DROPPED)  # a beat the ECG does not show
    ecg = ecg_waveform(shown - T0, RATE, DURATION_S, seed=SEED)
    clock = ManualClock(T0)
    recording = Recording(clock)
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.add_stream(StreamSpec("ecg", (Channel("ECG", "mV"),), RATE, "lsl:sim",
                                    lsl_type="ECG"))
    recording.add_stream(StreamSpec("rr", (Channel("RR", "ms"),), 0.0, "lsl:sim",
                                    dtype="float64", lsl_type="RR"))
    recording.start(SessionInfo("P042", "v1", protocol="hrv-test"))
    times = T0 + np.arange(ecg.size) / RATE
    for lo in range(0, ecg.size, 5000):
        recording.push("ecg", times[lo:lo + 5000], ecg[lo:lo + 5000, None])
    recording.push("rr", truth[1:], np.diff(truth)[:, None] * 1000.0)
    recording.event("phase", {"name": "rest", "state": "start"}, T0 + REST[0])
    recording.event("phase", {"name": "rest", "state": "end"}, T0 + REST[1])
    recording.event("phase", {"name": "HPT", "state": "start"}, T0 + HPT[0])
    for i, onset in enumerate(ONSETS, start=1):
        recording.event("stimulus_onset", {"device": "tcs2", "modality": "heat",
                                           "target": 44.0 + i, "unit": "degC", "trial": i},
                        T0 + onset)
    recording.event("phase", {"name": "HPT", "state": "end"}, T0 + HPT[1])
    clock.t = T0 + DURATION_S
    recording.stop("success")
    assert writer.wait(10) and writer.error is None


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return _truth()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, truth: np.ndarray) -> Path:
    path = tmp_path_factory.mktemp("hrv") / "sub-P042_ses-v1.h5"
    _record(path, truth)
    return path


@pytest.fixture(scope="module")
def result(recorded: Path) -> dict[str, Any]:
    return analyze(session.open(recorded))


def _epoch(result: dict[str, Any], source: str, name: str) -> dict[str, Any]:
    return next(e for e in result["sources"][source]["epochs"] if e["name"] == name)


def _true(truth: np.ndarray, start: float, end: float) -> dict[str, Any]:
    inside = truth[(truth >= start) & (truth < end)]
    return time_domain(rr_from_peaks(inside))


# ---------------------------------------------------------------------------- epochs


def test_epochs_come_from_parts_phases_and_stimuli(recorded: Path, result: dict) -> None:
    assert set(result["sources"]) == {"ecg", "rr"}
    names = [(e["name"], e["kind"]) for e in result["sources"]["ecg"]["epochs"]]
    assert names[:3] == [("recording", "recording"), ("rest", "baseline"), ("HPT", "phase")]
    assert ("stimulus 1 pre", "stimulus-pre") in names
    assert ("stimulus 4 post", "stimulus-post") in names
    assert len(names) == 3 + 2 * len(ONSETS)
    s = session.open(recorded)
    pre = next(e for e in session_epochs(s, _source(s)) if e.name == "stimulus 2 pre")
    assert (pre.start, pre.end) == (T0 + ONSETS[1] - 5.0, T0 + ONSETS[1])


def _source(s: session.Session) -> Any:
    from qst_station.hrv_epochs import heart_sources
    return heart_sources(s, correct=False)["ecg"]


def test_ecg_epochs_match_the_true_beats_after_correction(truth: np.ndarray,
                                                         result: dict) -> None:
    src = result["sources"]["ecg"]
    assert src["corrected"]["missed"] == 1
    assert src["corrected"]["ectopic"] + src["corrected"]["longshort"] >= 1
    assert src["n_beats"] == truth.size  # the dropped beat is back, the ectopic one moved
    for name, (a, b) in (("rest", REST), ("HPT", HPT), ("recording", (0.0, DURATION_S))):
        epoch, true = _epoch(result, "ecg", name), _true(truth, T0 + a, T0 + b)
        for key in ("rmssd_ms", "sdnn_ms", "mean_hr_bpm"):
            assert epoch[key] == pytest.approx(true[key], rel=0.02), (name, key)
    rest = _epoch(result, "ecg", "rest")
    assert rest["covered_s"] == pytest.approx(300.0)
    assert rest["not_computed"] is None and rest["lf_hf"] > 0
    hpt = _epoch(result, "ecg", "HPT")
    assert hpt["hf_ms2"] > 0 and hpt["lf_ms2"] is None and "LF needs" in hpt["not_computed"]
    short = _epoch(result, "ecg", "stimulus 1 post")
    assert short["hf_ms2"] is None and "HF needs" in short["not_computed"]


def test_without_correction_the_artifacts_distort_the_metrics(recorded: Path,
                                                              truth: np.ndarray) -> None:
    raw = analyze(session.open(recorded), correct=False)
    epoch, true = _epoch(raw, "ecg", "recording"), _true(truth, T0, T0 + DURATION_S)
    assert epoch["rmssd_ms"] > 1.2 * true["rmssd_ms"]
    assert raw["sources"]["ecg"]["corrected"] == dict.fromkeys(
        ("ectopic", "missed", "extra", "longshort"), 0)


def test_rr_stream_gives_the_true_metrics(truth: np.ndarray, result: dict) -> None:
    src = result["sources"]["rr"]
    assert src["kind"] == "rr" and src["unit"] == "ms"
    assert src["n_beats"] == truth.size
    for name, (a, b) in (("rest", REST), ("recording", (0.0, DURATION_S))):
        epoch, true = _epoch(result, "rr", name), _true(truth, T0 + a, T0 + b)
        for key in ("rmssd_ms", "sdnn_ms", "mean_hr_bpm", "pnn50_pct"):
            assert epoch[key] == pytest.approx(true[key], rel=1e-6), (name, key)


# ---------------------------------------------------------------------------- HR response


def test_hr_curve_of_a_step_in_heart_rate() -> None:
    onset = 100.0
    beats = np.concatenate((np.arange(80.0, onset + 0.5, 1.0),  # 60 bpm up to the onset
                            onset + np.arange(1, 30) * 0.8))  # 75 bpm after it
    series = BeatSeries(beats, np.zeros(beats.size, dtype=np.int64),
                        ((80.0, float(beats[-1])),), beats)
    starts, curve = hr_curve(series, onset, pre_s=5.0, post_s=10.0)
    assert starts.tolist() == list(range(-5, 10))
    assert curve[:5] == pytest.approx([60.0] * 5)
    assert curve[5:] == pytest.approx([75.0] * 10)
    starts, curve = hr_curve(series, 84.0)  # the pre window starts before the first beat
    assert np.isnan(curve[0]) and np.isfinite(curve[-1])


def test_stimulus_responses_and_their_mean(truth: np.ndarray, result: dict) -> None:
    for source in ("ecg", "rr"):
        src = result["sources"][source]
        rows = src["stimuli"]
        assert [r["trial"] for r in rows] == [1, 2, 3, 4]
        assert [r["target"] for r in rows] == [45.0, 46.0, 47.0, 48.0]
        true = BeatSeries(truth, np.zeros(truth.size, dtype=np.int64),
                          ((truth[0], truth[-1]),), truth)
        for r, onset in zip(rows, ONSETS, strict=True):
            _, curve = hr_curve(true, T0 + onset)
            expected = curve[5:].mean() - curve[:5].mean()
            assert r["hr_change_bpm"] == pytest.approx(expected, abs=0.1)
            assert len(r["curve_bpm"]) == 15 and not r["overlaps_previous"]
        mean = src["mean_response"]
        assert mean["n"] == 4
        assert mean["hr_change_bpm"] == pytest.approx(
            np.mean([r["hr_change_bpm"] for r in rows]))
        assert src["curve_bin_start_s"] == list(range(-5, 10))


# ---------------------------------------------------------------------------- storage


def _recorded_content(path: Path) -> dict[str, Any]:
    """Everything under /parts and the root attributes, as plain values."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r", locking=False) as handle:
        out["/"] = {k: str(v) for k, v in handle.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            attrs = {k: str(v) for k, v in obj.attrs.items()}
            data = obj[()].tobytes() if isinstance(obj, h5py.Dataset) else None
            out[name] = (attrs, data)

        handle["parts"].visititems(visit)
    return out


def test_store_writes_the_analysis_and_leaves_recorded_data_alone(tmp_path: Path,
                                                                  truth: np.ndarray) -> None:
    path = tmp_path / "sub-P042_ses-v1.h5"
    _record(path, truth)
    before = _recorded_content(path)
    result = store_hrv(path)
    store_hrv(path)  # replaced, not added
    assert _recorded_content(path) == before
    stored = read_stored_hrv(path)
    assert stored is not None and stored["format"] == "qst-station-hrv"
    assert stored["parts"] == [1] and set(stored["sources"]) == {"ecg", "rr"}
    ecg, fresh = stored["sources"]["ecg"], result["sources"]["ecg"]
    assert [e["name"] for e in ecg["epochs"]] == [e["name"] for e in fresh["epochs"]]
    for row, e in zip(ecg["epochs"], fresh["epochs"], strict=True):
        assert row["rmssd_ms"] == pytest.approx(e["rmssd_ms"])
        assert row["lf_hf"] == (None if e["lf_hf"] is None else pytest.approx(e["lf_hf"]))
        assert row["missed"] == e["corrected"]["missed"]
        assert row["not_computed"] == (e["not_computed"] or "")
    assert [r["hr_change_bpm"] for r in ecg["stimuli"]] == pytest.approx(
        [r["hr_change_bpm"] for r in fresh["stimuli"]])
    assert ecg["mean_response"]["n"] == 4
    with h5py.File(path, "r", locking=False) as handle:
        assert list(handle) == ["analysis", "parts"]
        assert list(handle["analysis"]) == ["hrv"]
    assert session.open(path).status == "success"  # the reader ignores the new group
    assert not lock_path(path).exists()


def test_a_stored_file_can_still_be_continued(tmp_path: Path, truth: np.ndarray) -> None:
    path = tmp_path / "sub-P042_ses-v1.h5"
    _record(path, truth)
    store_hrv(path)
    clock = ManualClock(T0 + 1000.0)
    recording = Recording(clock)
    writer = SessionWriter(path, resume=True)
    recording.subscribe(writer)
    recording.start(SessionInfo("P042", "v1"))
    recording.event("note", {"message": "second part"})
    recording.stop("success")
    assert writer.wait(10) and writer.error is None
    assert len(session.open(path).parts) == 2
    assert read_stored_hrv(path)["parts"] == [1]  # says which parts it covers


def test_store_is_refused_while_a_writer_holds_the_file(tmp_path: Path,
                                                       truth: np.ndarray) -> None:
    import fcntl

    path = tmp_path / "sub-P042_ses-v1.h5"
    _record(path, truth)
    with open(lock_path(path), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(HrvStoreError, match="recording"):
            store_hrv(path)
        runner = CliRunner()
        out = runner.invoke(main, ["hrv", str(path), "--store"])
        assert out.exit_code != 0 and "recording" in out.output
    lock_path(path).unlink()
    assert read_stored_hrv(path) is None


# ---------------------------------------------------------------------------- CLI, summary


def test_cli_prints_a_table_json_and_stores(tmp_path: Path, truth: np.ndarray) -> None:
    path = tmp_path / "sub-P042_ses-v1.h5"
    _record(path, truth)
    runner = CliRunner()
    text = runner.invoke(main, ["hrv", str(path)])
    assert text.exit_code == 0, text.output
    assert "ecg (ECG)" in text.output and "rest" in text.output and "HPT" in text.output
    assert "mean response of 4 stimuli" in text.output
    data = json.loads(runner.invoke(main, ["hrv", str(path), "--json"]).output)
    assert _epoch(data, "rr", "rest")["lf_hf"] > 0
    stored = runner.invoke(main, ["hrv", str(path), "--store"])
    assert stored.exit_code == 0 and "/analysis/hrv" in stored.output
    assert read_stored_hrv(path) is not None
    missing = runner.invoke(main, ["hrv", str(tmp_path / "nope.h5")])
    assert missing.exit_code != 0 and "no such file" in missing.output


def test_summary_shows_the_epochs(recorded: Path, truth: np.ndarray) -> None:
    summary = summarize(session.open(recorded))
    whole = summary["hrv"]["ecg"]  # the key kept from before: whole recording per stream
    assert whole["n_beats"] == truth.size
    assert whole["rmssd_ms"] == pytest.approx(_true(truth, T0, T0 + 400.0)["rmssd_ms"],
                                              rel=0.02)
    epochs = summary["hrv_epochs"]["ecg"]
    assert [e["name"] for e in epochs] == ["rest", "HPT"]  # blocks; stimuli: qst-station hrv
    assert summary["hrv_response"]["ecg"]["n"] == 4
    text = format_summary(summary)
    assert "HRV ecg rest" in text and "HR response ecg" in text
    json.dumps(summary)


# ---------------------------------------------------------------------------- end to end (LSL)


def test_simulated_ecg_and_rr_recorded_over_lsl_give_the_true_beats(tmp_path: Path) -> None:
    """sim/ecg.py publishes ECG and RR on LSL (this machine); both come back as the truth."""
    import uuid

    from qst_station.clock import SimulatedClock
    from qst_station.lsl_inlets import LslInletRecorder
    from sim.ecg import EcgSimulator, read_truth

    clock = SimulatedClock(20.0)
    name = f"qst-test-hrv-ECG-{uuid.uuid4().hex[:8]}"
    recording = Recording(clock)
    writer = SessionWriter(tmp_path / "lsl.h5")
    recording.subscribe(writer)
    sim = EcgSimulator(250.0, seed=5, clock=clock, name=name, truth_path=tmp_path / "rr.tsv",
                       duration_s=40.0)
    inlets = [LslInletRecorder(recording, name, name="ecg"),
              LslInletRecorder(recording, sim.rr_name, name="rr")]
    try:
        for inlet in inlets:
            inlet.connect()
        recording.start(SessionInfo("P043", "v1"))
        assert sim.wait_for_consumers(5.0)
        sim.start()
        assert sim.wait_done(80.0)
        clock.sleep(1.0)  # the last RR sample reaches the inlet
    finally:
        for inlet in inlets:
            inlet.disconnect()
        sim.close()
        recording.stop("success")
    assert writer.wait(10) and writer.error is None
    truth, _ = read_truth(tmp_path / "rr.tsv")
    s = session.open(tmp_path / "lsl.h5")
    assert s.streams["rr"].lsl_type == "RR" and s.streams["rr"].units == ["s"]
    result = analyze(s)
    for source in ("ecg", "rr"):
        whole = _epoch(result, source, "recording")
        # (beat times carry LSL's measured clock offset, a few µs on one machine)
        inside = truth[(truth >= whole["start"] - 1e-3) & (truth < whole["end"] + 1e-3)]
        assert whole["n_beats"] == inside.size, source
        assert whole["n_corrected"] == 0
        true = time_domain(rr_from_peaks(inside))
        for key in ("rmssd_ms", "sdnn_ms"):
            assert whole[key] == pytest.approx(true[key], rel=0.02), (source, key)
