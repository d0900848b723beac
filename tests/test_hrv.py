"""HRV (qst_station.hrv) against the simulated ECG's true beats and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qst_station.hrv import (
    detect_r_peaks,
    frequency_domain,
    hrv_summary,
    rr_from_peaks,
    time_domain,
)
from qst_station.session import Stream
from sim.ecg import beat_times, ecg_waveform, rr_series

SEED = 11
DURATION_S = 300.0


@pytest.fixture(scope="module")
def true_beats() -> np.ndarray:
    """Beat times of a seeded 5-minute RR series, the first 0.5 s into the recording."""
    return beat_times(rr_series(SEED, DURATION_S - 1.0), first_s=0.5)


def _hand_sdnn_rmssd(rr_ms: list[float]) -> tuple[float, float]:
    n = len(rr_ms)
    mean = sum(rr_ms) / n
    sdnn = math.sqrt(sum((x - mean) ** 2 for x in rr_ms) / (n - 1))
    rmssd = math.sqrt(sum((rr_ms[i + 1] - rr_ms[i]) ** 2 for i in range(n - 1)) / (n - 1))
    return sdnn, rmssd


# ---------------------------------------------------------------------------- R peaks


@pytest.mark.parametrize("rate_hz", [250.0, 500.0, 1000.0])
def test_every_true_beat_is_detected_and_rr_metrics_match(true_beats: np.ndarray,
                                                          rate_hz: float) -> None:
    ecg = ecg_waveform(true_beats, rate_hz, DURATION_S, seed=SEED)
    peaks = detect_r_peaks(ecg, rate_hz)
    assert peaks.size == true_beats.size  # no missed and no extra peaks
    assert np.max(np.abs(peaks - true_beats * rate_hz)) <= 2.0  # each within 2 samples
    truth = time_domain(rr_from_peaks(true_beats))
    found = time_domain(rr_from_peaks(peaks / rate_hz))
    for key in ("rmssd_ms", "sdnn_ms"):
        assert found[key] == pytest.approx(truth[key], rel=0.02)


@pytest.mark.parametrize("rate_hz", [100.0, 2000.0])
def test_detection_at_the_rate_limits(true_beats: np.ndarray, rate_hz: float) -> None:
    beats = true_beats[true_beats < 60.0]
    ecg = ecg_waveform(beats, rate_hz, 60.0, seed=SEED)
    peaks = detect_r_peaks(ecg, rate_hz)
    assert peaks.size == beats.size
    assert np.max(np.abs(peaks / rate_hz - beats)) <= 0.002 + 0.5 / rate_hz


def test_adaptive_threshold_follows_amplitude_changes(true_beats: np.ndarray) -> None:
    rate = 500.0
    ecg = ecg_waveform(true_beats, rate, DURATION_S, seed=SEED, wander_mv=0.0)
    ecg[ecg.size // 2:] *= 0.2  # a lead losing contact: R at 0.22 mV
    ecg[ecg.size // 4] += 5.0  # one huge spike does not hide the beats around it
    peaks = detect_r_peaks(ecg, rate)
    near = np.min(np.abs(peaks[:, None] / rate - true_beats[None, :]), axis=0)
    assert np.all(near <= 2.0 / rate)
    assert peaks.size <= true_beats.size + 1


def test_detect_r_peaks_edge_cases() -> None:
    assert detect_r_peaks(np.zeros(5000), 500.0).size == 0
    assert detect_r_peaks(np.zeros(10), 500.0).size == 0
    with pytest.raises(ValueError):
        detect_r_peaks(np.zeros(5000), 50.0)
    with pytest.raises(ValueError):
        detect_r_peaks(np.full(5000, np.nan), 500.0)


# ---------------------------------------------------------------------------- time domain


def test_time_domain_against_hand_formulas() -> None:
    rr_ms = [800.0, 810.0, 790.0, 850.0]
    result = time_domain(np.array(rr_ms) / 1000.0)
    sdnn, rmssd = _hand_sdnn_rmssd(rr_ms)
    # by hand: mean 812.5; squared deviations 156.25 + 6.25 + 506.25 + 1406.25 = 2075, / 3;
    # successive differences 10, -20, 60: squares 4100, / 3; one of three exceeds 50 ms
    assert sdnn == pytest.approx(math.sqrt(2075.0 / 3.0))
    assert rmssd == pytest.approx(math.sqrt(4100.0 / 3.0))
    assert result["n_intervals"] == 4
    assert result["mean_rr_ms"] == pytest.approx(812.5)
    assert result["mean_hr_bpm"] == pytest.approx(60000.0 / 812.5)
    assert result["sdnn_ms"] == pytest.approx(sdnn)
    assert result["rmssd_ms"] == pytest.approx(rmssd)
    assert result["pnn50_pct"] == pytest.approx(100.0 / 3.0)


def test_time_domain_on_a_longer_series_matches_hand_formulas() -> None:
    rr_s = rr_series(3, 120.0)
    rr_ms = [float(x) * 1000.0 for x in rr_s]
    sdnn, rmssd = _hand_sdnn_rmssd(rr_ms)
    over = sum(1 for a, b in zip(rr_ms, rr_ms[1:], strict=False) if abs(b - a) > 50.0)
    result = time_domain(rr_s)
    assert result["sdnn_ms"] == pytest.approx(sdnn)
    assert result["rmssd_ms"] == pytest.approx(rmssd)
    assert result["pnn50_pct"] == pytest.approx(100.0 * over / (len(rr_ms) - 1))


def test_time_domain_with_too_few_intervals() -> None:
    assert time_domain(np.array([]))["mean_rr_ms"] is None
    one = time_domain(np.array([0.8]))
    assert one["mean_hr_bpm"] == pytest.approx(75.0)
    assert one["sdnn_ms"] is None and one["rmssd_ms"] is None and one["pnn50_pct"] is None
    with pytest.raises(ValueError):
        time_domain(np.array([0.8, -0.1]))


def test_rr_from_peaks() -> None:
    assert rr_from_peaks(np.array([1.0, 1.8, 2.7])) == pytest.approx([0.8, 0.9])
    assert rr_from_peaks(np.array([1.0])).size == 0
    with pytest.raises(ValueError):
        rr_from_peaks(np.array([1.0, 0.9]))


# ---------------------------------------------------------------------------- frequency domain


def _modulated(lf_ms: float, hf_ms: float, duration_s: float = 300.0) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    rr = rr_series(5, duration_s, lf_ms=lf_ms, hf_ms=hf_ms, noise_ms=3.0)
    return beat_times(rr), rr


def test_frequency_domain_finds_the_lf_and_hf_modulations() -> None:
    lf_heavy = frequency_domain(*_modulated(lf_ms=40.0, hf_ms=15.0), epoch_s=300.0)
    hf_heavy = frequency_domain(*_modulated(lf_ms=15.0, hf_ms=40.0), epoch_s=300.0)
    for result in (lf_heavy, hf_heavy):
        assert result["not_computed"] is None
        assert 0.15 <= result["hf_peak_hz"] < 0.4
        assert result["hf_peak_hz"] == pytest.approx(0.25, abs=0.01)
        assert result["lf_peak_hz"] == pytest.approx(0.1, abs=0.01)
        assert result["vlf_ms2"] < 0.1 * result["lf_ms2"]
        parts = result["vlf_ms2"] + result["lf_ms2"] + result["hf_ms2"]
        assert result["total_ms2"] == pytest.approx(parts)
    assert lf_heavy["lf_hf"] > 2.0
    assert hf_heavy["lf_hf"] < 0.5
    # a sine of amplitude A ms has power A^2 / 2 (amplitudes are given at 65 bpm, the default)
    assert hf_heavy["hf_ms2"] == pytest.approx(40.0 ** 2 / 2, rel=0.2)


def test_short_epochs_say_what_was_not_computed() -> None:
    times, rr = _modulated(30.0, 30.0)
    keep = times[1:] < 50.0
    short = frequency_domain(times[:keep.sum() + 1], rr[keep])
    assert short["hf_ms2"] is None and short["lf_ms2"] is None and short["lf_hf"] is None
    assert "HF needs >= 60 s" in short["not_computed"]
    keep = times[1:] < 90.0
    hf_only = frequency_domain(times[:keep.sum() + 1], rr[keep])
    assert hf_only["hf_ms2"] > 0 and hf_only["lf_ms2"] is None and hf_only["lf_hf"] is None
    assert "LF needs >= 120 s" in hf_only["not_computed"]
    keep = times[1:] < 200.0
    no_ratio = frequency_domain(times[:keep.sum() + 1], rr[keep])
    assert no_ratio["lf_ms2"] > 0 and no_ratio["hf_ms2"] > 0
    assert no_ratio["lf_hf"] is None and no_ratio["vlf_ms2"] is None
    assert "LF/HF need >= 300 s" in no_ratio["not_computed"]
    # the beats of a 5-minute epoch span a little less: the epoch's length decides
    assert frequency_domain(times, rr)["lf_hf"] is None
    assert frequency_domain(times, rr, epoch_s=300.0)["lf_hf"] > 0


def test_frequency_domain_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError):
        frequency_domain(np.arange(10.0), np.ones(5))


# ---------------------------------------------------------------------------- summary


def test_hrv_summary_on_arrays_and_on_a_stream(true_beats: np.ndarray) -> None:
    rate = 500.0
    t0 = 1000.0  # program-clock time of the first sample
    ecg = ecg_waveform(true_beats, rate, DURATION_S, seed=SEED)
    time_s = t0 + np.arange(ecg.size) / rate
    whole = hrv_summary((time_s, ecg))
    assert whole["n_beats"] == true_beats.size
    assert np.max(np.abs(whole["beat_times_s"] - (t0 + true_beats))) < 1.0 / rate
    truth = time_domain(rr_from_peaks(true_beats))
    assert whole["rmssd_ms"] == pytest.approx(truth["rmssd_ms"], rel=0.01)
    assert whole["sdnn_ms"] == pytest.approx(truth["sdnn_ms"], rel=0.01)
    assert whole["duration_s"] == pytest.approx(DURATION_S)
    assert whole["not_computed"] is None and whole["lf_hf"] > 0

    stream = Stream("ecg", time_s, ecg.reshape(-1, 1), ["ECG"], ["mV"], rate, "lsl",
                    np.zeros(ecg.size, dtype=int))
    start, end = t0 + 100.0, t0 + 190.0
    epoch = hrv_summary(stream, start, end)
    inside = true_beats[(t0 + true_beats >= start) & (t0 + true_beats < end)]
    assert epoch["n_beats"] == inside.size
    assert epoch["n_intervals"] == inside.size - 1
    assert epoch["mean_rr_ms"] == pytest.approx(np.diff(inside).mean() * 1000.0, rel=1e-3)
    assert epoch["duration_s"] == pytest.approx(90.0)
    assert epoch["hf_ms2"] > 0 and epoch["lf_ms2"] is None
    assert "LF needs" in epoch["not_computed"]


def test_hrv_summary_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        hrv_summary((np.array([0.0]), np.array([0.0])))
    with pytest.raises(ValueError):
        hrv_summary((np.arange(1000) / 500.0, np.zeros(1000)), start=1.0, end=1.0)
