"""HRV (qst_station.hrv) against the simulated ECG's true beats and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qst_station.hrv import (
    BeatSeries,
    beats_from_ecg,
    beats_from_rr,
    correct_beats,
    detect_r_peaks,
    epoch_metrics,
    frequency_domain,
    hrv_summary,
    rr_from_peaks,
    rr_scale,
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


# ---------------------------------------------------------------------------- second implementation


def test_time_domain_agrees_with_neurokit2_on_the_same_peaks(true_beats: np.ndarray) -> None:
    import neurokit2 as nk

    rate = 500.0
    ecg = ecg_waveform(true_beats, rate, DURATION_S, seed=SEED)
    ours = hrv_summary((np.arange(ecg.size) / rate, ecg))
    # the same (sub-sample) beats as whole microseconds: no ties at exactly 50 ms
    peaks = np.rint(ours["nn_times_s"] * 1e6).astype(np.int64)
    mine = time_domain(rr_from_peaks(peaks / 1e6))
    theirs = nk.hrv_time(peaks, sampling_rate=1_000_000).iloc[0]
    assert mine["rmssd_ms"] == pytest.approx(ours["rmssd_ms"], rel=1e-4)
    assert mine["mean_rr_ms"] == pytest.approx(theirs["HRV_MeanNN"], rel=1e-9)
    assert mine["sdnn_ms"] == pytest.approx(theirs["HRV_SDNN"], rel=1e-9)
    assert mine["rmssd_ms"] == pytest.approx(theirs["HRV_RMSSD"], rel=1e-9)
    # neurokit2 divides NN50 by the number of intervals, we by the number of differences
    n = mine["n_intervals"]
    assert mine["pnn50_pct"] * (n - 1) == pytest.approx(theirs["HRV_pNN50"] * n, rel=1e-9)


# ---------------------------------------------------------------------------- artifacts


def _with_artifacts(beats: np.ndarray, kinds: tuple[str, ...]) -> np.ndarray:
    """The beats an ECG would show: an early (ectopic) beat, a beat lost, a spurious one."""
    shown = beats.copy()
    if "ectopic" in kinds:
        shown[100] -= 0.3 * (beats[100] - beats[99])
    if "late" in kinds:
        shown[250] += 0.25 * (beats[251] - beats[250])
    if "extra" in kinds:
        shown = np.sort(np.append(shown, 0.5 * (beats[200] + beats[201]) - 0.1))
    if "missed" in kinds:
        shown = np.delete(shown, 150)
    return shown


@pytest.mark.parametrize("kinds, counted", [
    (("ectopic",), {"ectopic": 1}),
    (("late",), {"ectopic": 1}),
    (("missed",), {"missed": 1}),
    (("extra",), {"extra": 1}),
    (("ectopic", "missed", "extra"), {"ectopic": 1, "missed": 1, "extra": 1}),
])
def test_ecg_with_artifacts_gives_the_true_metrics_after_correction(
        true_beats: np.ndarray, kinds: tuple[str, ...], counted: dict[str, int]) -> None:
    rate = 500.0
    ecg = ecg_waveform(_with_artifacts(true_beats, kinds), rate, DURATION_S, seed=SEED)
    time_s = np.arange(ecg.size) / rate
    truth = time_domain(rr_from_peaks(true_beats))
    fixed = hrv_summary((time_s, ecg))
    raw = hrv_summary((time_s, ecg), correct=False)
    assert {k: v for k, v in fixed["corrected"].items() if v} == counted
    assert fixed["n_corrected"] == sum(counted.values())
    assert fixed["n_beats"] == true_beats.size  # NN beats: the series is whole again
    for key in ("rmssd_ms", "sdnn_ms", "mean_hr_bpm"):
        assert fixed[key] == pytest.approx(truth[key], rel=0.02), key
    assert abs(raw["rmssd_ms"] / truth["rmssd_ms"] - 1.0) > 0.1  # it did need correcting
    assert raw["n_corrected"] == 0


def test_clean_beats_are_left_alone(true_beats: np.ndarray) -> None:
    fixed, done = correct_beats(true_beats)
    assert done == [] and np.array_equal(fixed, true_beats)


def test_several_missed_beats_in_a_row_are_put_back(true_beats: np.ndarray) -> None:
    fixed, done = correct_beats(np.delete(true_beats, [150, 151]))
    assert [kind for _, kind in done] == ["missed", "missed"]
    assert fixed.size == true_beats.size
    truth = time_domain(rr_from_peaks(true_beats))
    assert time_domain(rr_from_peaks(fixed))["rmssd_ms"] == pytest.approx(truth["rmssd_ms"],
                                                                         rel=0.02)


def test_correction_of_short_series() -> None:
    for n in range(4):
        beats = np.arange(n, dtype=float)
        assert correct_beats(beats)[1] == []


# ---------------------------------------------------------------------------- RR input


def test_rr_stream_rebuilds_the_true_beats(true_beats: np.ndarray) -> None:
    rr = np.diff(true_beats)
    t0 = 5000.0
    series = beats_from_rr(t0 + true_beats[1:], rr * 1000.0, "ms")
    assert np.max(np.abs(series.times - (t0 + true_beats))) < 1e-9
    assert series.artifacts == () and len(series.spans) == 1
    metrics = epoch_metrics(series, t0, t0 + DURATION_S)
    truth = time_domain(rr)
    for key in ("rmssd_ms", "sdnn_ms", "pnn50_pct", "mean_hr_bpm"):
        assert metrics[key] == pytest.approx(truth[key], rel=1e-9)
    assert metrics["n_beats"] == true_beats.size
    assert metrics["covered_s"] == pytest.approx(true_beats[-1] - true_beats[0])  # 298.8 s
    assert metrics["lf_ms2"] > 0 and "LF/HF need >= 300 s" in metrics["not_computed"]
    seconds = beats_from_rr(t0 + true_beats[1:], rr, "s", correct=False)
    assert np.allclose(seconds.times, series.times)
    ble = np.round(rr * 1024.0)  # BLE heart-rate service units
    assert np.max(np.abs(beats_from_rr(t0 + true_beats[1:], ble, "1/1024 s").times
                         - (t0 + true_beats))) < 0.01


def test_rr_stream_with_lost_samples_keeps_its_timing(true_beats: np.ndarray) -> None:
    rr = np.diff(true_beats)
    keep = np.ones(rr.size, dtype=bool)
    keep[[80, 81, 82]] = False  # three samples lost: beats 81-83 unknown
    series = beats_from_rr(true_beats[1:][keep], rr[keep], "s")
    assert len(series.spans) == 2
    assert np.max(np.abs(series.times - true_beats[np.r_[0:81, 83:true_beats.size]])) < 1e-9
    metrics = epoch_metrics(series, 0.0, DURATION_S)
    assert metrics["n_intervals"] == rr.size - 3  # the lost ones; none across the gap
    truth = time_domain(rr)
    assert metrics["rmssd_ms"] == pytest.approx(truth["rmssd_ms"], rel=0.02)
    assert "gap-free stretches" in metrics["not_computed"]


def test_rr_units() -> None:
    assert rr_scale("ms", np.array([800.0])) == 0.001
    assert rr_scale("s", np.array([0.8])) == 1.0
    assert rr_scale("", np.array([810.0, 790.0])) == 0.001  # unknown: from the values
    assert rr_scale("au", np.array([0.8, 0.9])) == 1.0
    with pytest.raises(ValueError, match="neither"):
        rr_scale("au", np.array([50.0]))
    with pytest.raises(ValueError):
        beats_from_rr(np.arange(3.0), np.ones(2), "s")


# ---------------------------------------------------------------------------- gaps, epochs


def test_ecg_gap_splits_the_series(true_beats: np.ndarray) -> None:
    rate = 250.0
    ecg = ecg_waveform(true_beats, rate, DURATION_S, seed=SEED)
    time_s = np.arange(ecg.size) / rate
    lost = (time_s >= 100.0) & (time_s < 103.0)  # 3 s of ECG never arrived
    series = beats_from_ecg(time_s[~lost], ecg[~lost], rate)
    assert len(series.spans) == 2 and series.artifacts == ()
    assert series.coverage(0.0, DURATION_S) == pytest.approx(DURATION_S - 3.0, abs=0.01)
    metrics = epoch_metrics(series, 0.0, DURATION_S)
    inside = true_beats[(true_beats < 100.0 - 0.05) | (true_beats >= 103.0 + 0.05)]
    assert metrics["n_beats"] == inside.size
    assert metrics["n_intervals"] == inside.size - 2
    truth = time_domain(rr_from_peaks(true_beats))
    assert metrics["rmssd_ms"] == pytest.approx(truth["rmssd_ms"], rel=0.02)


def test_epoch_metrics_count_the_corrections_inside() -> None:
    beats = np.arange(0.0, 100.0, 1.0)
    series = BeatSeries(beats, np.zeros(beats.size, dtype=np.int64), ((0.0, 100.0),), beats,
                        ((10.0, "ectopic"), (50.0, "missed"), (50.5, "extra")))
    first = epoch_metrics(series, 0.0, 50.0)
    assert first["corrected"] == {"ectopic": 1, "missed": 0, "extra": 0, "longshort": 0}
    assert epoch_metrics(series, 50.0, 100.0)["n_corrected"] == 2
    assert first["covered_s"] == 50.0 and first["mean_hr_bpm"] == pytest.approx(60.0)
    with pytest.raises(ValueError):
        epoch_metrics(series, 5.0, 5.0)
