"""The simulated ECG: RR model, waveform, and the real LSL streams (machine scope, conftest)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import find_peaks, welch

from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.lsl_setup import pylsl_module
from sim.ecg import (
    TRUTH_COLUMNS,
    EcgSimulator,
    RrModel,
    beat_times,
    ecg_waveform,
    read_truth,
    rr_series,
    rr_stream_name,
)

pylsl = pylsl_module()


def _sdnn_rmssd_ms(rr: np.ndarray) -> tuple[float, float]:
    return rr.std(ddof=1) * 1000.0, math.sqrt(np.mean(np.diff(rr) ** 2)) * 1000.0


def _peaks(ecg: np.ndarray, rate_hz: float) -> np.ndarray:
    return find_peaks(ecg, height=0.6, distance=int(0.2 * rate_hz))[0]


def _inside(beats: np.ndarray, rate_hz: float, n: int) -> np.ndarray:
    """Beats whose nearest sample is not the first or last one (find_peaks skips edges)."""
    index = np.rint(beats * rate_hz)
    return beats[(index >= 1) & (index <= n - 2)]


# ------------------------------------------------------------------ RR series


def test_rr_series_is_deterministic_for_a_seed() -> None:
    a, b = rr_series(7, 120.0), rr_series(7, 120.0)
    assert a.dtype == np.float64 and np.array_equal(a, b)
    assert not np.array_equal(a[:50], rr_series(8, 120.0)[:50])
    shorter = rr_series(7, 60.0)
    assert np.array_equal(shorter, a[:shorter.size])  # a prefix of the longer series
    assert a.sum() <= 120.0 < a.sum() + 2.0


@pytest.mark.parametrize("seed", range(5))
def test_rr_series_has_realistic_hrv(seed: int) -> None:
    rr = rr_series(seed, 300.0)
    sdnn, rmssd = _sdnn_rmssd_ms(rr)
    assert 60.0 / rr.mean() == pytest.approx(65.0, abs=1.0)
    assert 30.0 <= sdnn <= 60.0
    assert 20.0 <= rmssd <= 50.0
    assert rr.min() > 0.6 and rr.max() < 1.3


def test_rr_spectrum_peaks_at_mayer_and_respiratory_rates() -> None:
    rr = rr_series(3, 300.0)
    beats = beat_times(rr)[1:]  # each interval at the beat that ends it
    grid = np.arange(beats[0], beats[-1], 0.25)  # 4 Hz, as HRV tools resample
    freqs, power = welch(np.interp(grid, beats, rr) - rr.mean(), fs=4.0, nperseg=256)
    lf = (freqs >= 0.04) & (freqs < 0.15)
    hf = (freqs >= 0.15) & (freqs < 0.4)
    assert freqs[lf][power[lf].argmax()] == pytest.approx(0.1, abs=0.02)
    assert freqs[hf][power[hf].argmax()] == pytest.approx(0.25, abs=0.02)


def test_mean_hr_sets_the_mean_rr_and_variability_scales_with_it() -> None:
    slow, fast = rr_series(1, 300.0, 50.0), rr_series(1, 300.0, 120.0)
    assert 60.0 / slow.mean() == pytest.approx(50.0, abs=1.0)
    assert 60.0 / fast.mean() == pytest.approx(120.0, abs=1.5)
    assert _sdnn_rmssd_ms(slow)[0] > _sdnn_rmssd_ms(fast)[0]
    assert rr_series(1, 300.0, hf_ms=0.0, lf_ms=0.0, noise_ms=0.0) == pytest.approx(60 / 65)


@pytest.mark.parametrize("kwargs", [{"mean_hr_bpm": 5.0}, {"hf_ms": -1.0}, {"lf_hz": 0.0}])
def test_bad_model_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RrModel(**kwargs)


# ------------------------------------------------------------------ waveform


@pytest.mark.parametrize("rate_hz", [100.0, 250.0, 500.0, 1000.0, 2000.0])
def test_r_peaks_fall_on_the_beat_times(rate_hz: float) -> None:
    beats = beat_times(rr_series(2, 60.0), 0.5)
    clean = ecg_waveform(beats, rate_hz, 60.0, seed=2, noise_mv=0.0)
    expected = _inside(beats, rate_hz, clean.size)
    peaks = _peaks(clean, rate_hz)
    assert peaks.size == expected.size
    assert np.abs(peaks - expected * rate_hz).max() <= 0.6  # the nearest sample
    noisy = ecg_waveform(beats, rate_hz, 60.0, seed=2)
    error_s = np.abs(_peaks(noisy, rate_hz) / rate_hz - expected)
    assert error_s.max() <= max(1.0 / rate_hz, 0.002)  # one sample up to 500 Hz, else 2 ms


def test_waveform_morphology_and_qt_lengthening() -> None:
    rate = 1000.0

    def t_wave_delay(hr: float) -> float:
        beats = np.arange(0.5, 10.0, 60.0 / hr)
        ecg = ecg_waveform(beats, rate, 10.0, seed=0, noise_mv=0.0, wander_mv=0.0)
        r = int(round(beats[3] * rate))
        assert ecg.dtype == np.float32
        assert ecg[r] == pytest.approx(1.1, abs=0.02)
        assert ecg[r - 50:r].min() < -0.08 and ecg[r:r + 50].min() < -0.15  # Q and S
        assert ecg[r - 250:r - 100].max() == pytest.approx(0.15, abs=0.02)  # P
        after = ecg[r + 100:r + int(0.6 * 60.0 / hr * rate)]  # before the next P
        assert after.max() == pytest.approx(0.3, abs=0.03)  # T
        return (int(after.argmax()) + 100) / rate

    assert t_wave_delay(60.0) == pytest.approx(0.28, abs=0.005)
    assert t_wave_delay(40.0) > t_wave_delay(60.0) > t_wave_delay(100.0)


def test_waveform_is_deterministic_fast_and_joins_across_blocks() -> None:
    beats = beat_times(rr_series(4, 600.0), 0.5)
    started = time.perf_counter()
    ten_minutes = ecg_waveform(beats, 1000.0, 600.0, seed=4)
    assert time.perf_counter() - started < 1.0
    assert ten_minutes.shape == (600_000,) and ten_minutes.dtype == np.float32
    assert np.array_equal(ten_minutes, ecg_waveform(beats, 1000.0, 600.0, seed=4))
    assert not np.array_equal(ten_minutes, ecg_waveform(beats, 1000.0, 600.0, seed=5))
    whole = ecg_waveform(beats, 500.0, 20.0, seed=4, noise_mv=0.0)
    halves = [ecg_waveform(beats, 500.0, 10.0, seed=4, noise_mv=0.0, start_s=s)
              for s in (0.0, 10.0)]
    np.testing.assert_allclose(np.concatenate(halves), whole, atol=1e-6)


# ------------------------------------------------------------------ LSL


def _inlet(name: str) -> Any:
    found = pylsl.resolve_byprop("name", name, 1, 5.0)
    assert found, f"no LSL stream {name!r}"
    inlet = pylsl.StreamInlet(found[0], max_buflen=60)
    inlet.open_stream(timeout=5.0)
    return inlet


def _pull_all(inlet: Any, count: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
    values: list[list[float]] = []
    stamps: list[float] = []
    deadline = time.monotonic() + timeout_s
    while len(stamps) < count and time.monotonic() < deadline:
        chunk, times = inlet.pull_chunk(timeout=0.1)
        values.extend(chunk)
        stamps.extend(times)
    return np.asarray(values, dtype=float).reshape(-1), np.asarray(stamps)


def test_streams_carry_the_ecg_and_the_true_rr_series(tmp_path: Path) -> None:
    rate, duration = 500.0, 12.0
    name = f"qst-test-{uuid.uuid4().hex[:8]}-ECG"
    truth = tmp_path / "truth.tsv"
    sim = EcgSimulator(rate, RrModel(72.0), seed=3, clock=SimulatedClock(speed=20.0),
                       name=name, truth_path=truth, duration_s=duration)
    try:
        ecg_inlet, rr_inlet = _inlet(name), _inlet(rr_stream_name(name))
        assert sim.wait_for_consumers(5.0)
        sim.start()
        assert sim.wait_done(30.0)
        samples, stamps = _pull_all(ecg_inlet, int(rate * duration), 10.0)
        beats_seen = len(sim.beats) - 1
        rr_values, rr_stamps = _pull_all(rr_inlet, beats_seen, 5.0)
        info = ecg_inlet.info(timeout=5.0)
    finally:
        sim.close()

    assert (info.type(), info.channel_count(), info.nominal_srate()) == ("ECG", 1, rate)
    assert info.channel_format() == pylsl.cf_float32
    assert info.source_id() == f"qst-station-sim-{name}"
    channel = info.desc().child("channels").child("channel")
    assert (channel.child_value("label"), channel.child_value("unit")) == ("ECG", "mV")

    assert samples.size == stamps.size == int(rate * duration)
    assert stamps[0] == pytest.approx(sim.t0, abs=1e-9)
    np.testing.assert_allclose(np.diff(stamps), 1.0 / rate, atol=1e-7)

    times, rr_ms = read_truth(truth)
    assert times.size == len(sim.beats) >= 12 and math.isnan(rr_ms[0])
    np.testing.assert_allclose(np.diff(times) * 1000.0, rr_ms[1:], atol=1e-5)
    expected = _inside(times - stamps[0], rate, samples.size)
    peaks = _peaks(samples.astype(np.float32), rate)
    assert peaks.size == expected.size
    assert np.abs(stamps[peaks] - stamps[0] - expected).max() <= 1.0 / rate

    assert rr_values.size == rr_stamps.size == times.size - 1
    np.testing.assert_allclose(rr_stamps, times[1:], atol=1e-6)
    np.testing.assert_allclose(rr_values * 1000.0, rr_ms[1:], atol=1e-5)


def test_truth_file_format(tmp_path: Path) -> None:
    truth = tmp_path / "truth.tsv"
    name = f"qst-test-{uuid.uuid4().hex[:8]}-ECG"
    with EcgSimulator(rr_stream=False, name=name, truth_path=truth, duration_s=2.0,
                      clock=SimulatedClock(speed=20.0)) as sim:
        assert sim.wait_done(10.0)
    lines = truth.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == list(TRUTH_COLUMNS)
    assert lines[1].split("\t")[0::2] == ["0", "n/a"]
    assert [int(line.split("\t")[0]) for line in lines[1:]] == list(range(len(lines) - 1))
    assert sim.rr_name is None and len(lines) - 1 == len(sim.beats) >= 2


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize(
    ("args", "bad"),
    [(["--rate", "50"], "--rate"), (["--hr", "10"], "--hr"), (["--duration", "0"], "--duration"),
     (["--seed", "-1"], "--seed"), (["--name", " "], "--name")],
)
def test_bad_arguments_are_one_line_errors(args: list[str], bad: str) -> None:
    result = CliRunner().invoke(main, ["sim", "ecg", *args])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and bad in errors[0], result.output


def test_unwritable_truth_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "truth.tsv"
    result = CliRunner().invoke(main, ["sim", "ecg", "--duration", "1", "--truth", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: cannot write {path}: "
                                                  "No such file or directory"]


def test_command_runs_for_its_duration(tmp_path: Path) -> None:
    truth = tmp_path / "truth.tsv"
    name = f"qst-test-{uuid.uuid4().hex[:8]}-ECG"
    result = CliRunner().invoke(main, ["sim", "ecg", "--duration", "3", "--speed", "10",
                                       "--hr", "80", "--truth", str(truth), "--name", name])
    assert result.exit_code == 0, result.output
    first, last = result.output.strip().splitlines()
    assert first.startswith(f"publishing LSL stream {name!r} (ECG, 1 channel mV, 500 Hz) and "
                            f"{rr_stream_name(name)!r}")
    assert "mean HR 80 bpm" in first and "for 3 s" in first and str(truth) in first
    assert last.startswith("ECG simulator stopped: 1500 samples, ")
    assert read_truth(truth)[0].size >= 3


def test_ctrl_c_stops_the_command(tmp_path: Path) -> None:
    name = f"qst-test-{uuid.uuid4().hex[:8]}-ECG"
    proc = subprocess.Popen([sys.executable, "-m", "qst_station.cli", "sim", "ecg", "--name",
                             name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"publishing LSL stream {name!r}"), line
        assert "until Ctrl-C" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        rest = proc.stdout.read()
        assert rest.startswith("ECG simulator stopped: "), rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
