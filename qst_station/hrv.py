"""Heart-rate variability from an ECG: R-peak detection, RR intervals, time and frequency domain.

Pure numpy/scipy. :func:`hrv_summary` runs the whole chain on one epoch of a recorded ECG
(a :class:`qst_station.session.Stream` or ``(time_s, ecg_mv)`` arrays on the program clock).
Definitions follow the Task Force (1996, Circulation 93:1043); see ``docs/hrv.md``.
No ectopic/artifact correction is done yet: every detected beat counts as a normal beat.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, detrend, find_peaks, sosfiltfilt, welch

BANDPASS_HZ = (5.0, 20.0)
FILTER_ORDER = 2  # per pass; filtfilt doubles it
REFRACTORY_S = 0.3  # at most 200 bpm
REFINE_S = 0.05  # R is the raw maximum within this distance of the filtered peak
THRESHOLD_BLOCK_S = 2.0  # the adaptive threshold follows block maxima of this length ...
THRESHOLD_BLOCKS = 5  # ... as the median over this many neighbouring blocks
THRESHOLD_FRACTION = 0.35  # of that median maximum
MIN_RATE_HZ = 100.0

RESAMPLE_HZ = 4.0
WELCH_SEGMENT_S = 120.0  # 0.0083 Hz resolution; shorter epochs use one segment
VLF_HZ = (0.0, 0.04)  # DC (removed by detrending) excluded
LF_HZ = (0.04, 0.15)
HF_HZ = (0.15, 0.4)
MIN_HF_S = 60.0
MIN_LF_S = 120.0
MIN_LF_HF_S = 300.0  # also VLF and total power
EPOCH_PAD_S = 1.0  # ECG read beyond each epoch edge so the filter settles


# ---------------------------------------------------------------------------- R peaks


def detect_r_peaks(ecg_mv: np.ndarray, rate_hz: float) -> np.ndarray:
    """Sample indices of the R peaks of a single-lead ECG (R positive) sampled at ``rate_hz``.

    Band-pass 5-20 Hz (Butterworth, zero phase), peaks of the filtered signal above an adaptive
    threshold (a fraction of the median of the 2-s block maxima around each sample) at least
    0.3 s apart, each moved to the raw signal's maximum within +-50 ms.
    """
    if not rate_hz >= MIN_RATE_HZ:
        raise ValueError(f"need an ECG sampled at >= {MIN_RATE_HZ:g} Hz, got {rate_hz!r}")
    ecg = np.asarray(ecg_mv, dtype=float).ravel()
    if not np.all(np.isfinite(ecg)):
        raise ValueError("the ECG contains NaN or infinite samples")
    sos = butter(FILTER_ORDER, BANDPASS_HZ, btype="bandpass", fs=rate_hz, output="sos")
    if ecg.size <= 3 * (2 * sos.shape[0] + 1) or ecg.size < rate_hz * REFRACTORY_S:
        return np.zeros(0, dtype=np.int64)
    filtered = sosfiltfilt(sos, ecg)
    candidates, _ = find_peaks(filtered, height=_threshold(filtered, rate_hz),
                               distance=max(1, int(round(REFRACTORY_S * rate_hz))))
    reach = max(1, int(round(REFINE_S * rate_hz)))
    refined = [max(0, i - reach) + int(np.argmax(ecg[max(0, i - reach):i + reach + 1]))
               for i in candidates]
    return np.unique(np.asarray(refined, dtype=np.int64))


def _threshold(filtered: np.ndarray, rate_hz: float) -> np.ndarray:
    """Per-sample height threshold: a fraction of the local median of block maxima."""
    block = max(1, int(round(THRESHOLD_BLOCK_S * rate_hz)))
    n_blocks = math.ceil(filtered.size / block)
    padded = np.full(n_blocks * block, -np.inf)
    padded[:filtered.size] = filtered
    maxima = padded.reshape(n_blocks, block).max(axis=1)
    half = THRESHOLD_BLOCKS // 2
    local = np.array([np.median(maxima[max(0, b - half):b + half + 1]) for b in range(n_blocks)])
    centres = (np.arange(n_blocks) + 0.5) * block
    level = np.interp(np.arange(filtered.size), centres, local)
    return THRESHOLD_FRACTION * np.maximum(level, 0.0) + np.finfo(float).tiny


def _subsample_offsets(ecg: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Parabolic-interpolation offsets (samples, within +-0.5) of each peak's true maximum."""
    offsets = np.zeros(peaks.size)
    inner = (peaks > 0) & (peaks < ecg.size - 1)
    i = peaks[inner]
    left, mid, right = ecg[i - 1], ecg[i], ecg[i + 1]
    curvature = left - 2.0 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    offsets[inner] = np.clip(shift, -0.5, 0.5)
    return offsets


# ---------------------------------------------------------------------------- time domain


def rr_from_peaks(times_s: np.ndarray) -> np.ndarray:
    """RR intervals (s) between successive beat times (s): one fewer than beats."""
    times = np.asarray(times_s, dtype=float).ravel()
    if times.size > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("beat times must be strictly increasing")
    return np.diff(times)


def time_domain(rr_s: np.ndarray) -> dict[str, float | int | None]:
    """Mean RR, mean HR (60 / mean RR), SDNN (ddof=1), RMSSD, pNN50 of RR intervals in seconds.

    pNN50 is the percentage of successive differences larger than 50 ms. A measure needing
    more intervals than given (SDNN, RMSSD, pNN50: 2) is None.
    """
    rr = np.asarray(rr_s, dtype=float).ravel() * 1000.0
    if not np.all(np.isfinite(rr) & (rr > 0)):
        raise ValueError("RR intervals must be finite and positive")
    out: dict[str, float | int | None] = {
        "n_intervals": int(rr.size), "mean_rr_ms": None, "mean_hr_bpm": None,
        "sdnn_ms": None, "rmssd_ms": None, "pnn50_pct": None}
    if rr.size:
        out["mean_rr_ms"] = float(rr.mean())
        out["mean_hr_bpm"] = 60000.0 / float(rr.mean())
    if rr.size >= 2:
        diffs = np.diff(rr)
        out["sdnn_ms"] = float(rr.std(ddof=1))
        out["rmssd_ms"] = float(np.sqrt(np.mean(diffs * diffs)))
        out["pnn50_pct"] = 100.0 * float(np.count_nonzero(np.abs(diffs) > 50.0)) / diffs.size
    return out


# ---------------------------------------------------------------------------- frequency domain


def frequency_domain(beat_times_s: np.ndarray, rr_s: np.ndarray,
                     epoch_s: float | None = None) -> dict[str, Any]:
    """Band powers (ms²) of the RR series: Welch PSD of the series resampled at 4 Hz.

    ``beat_times_s`` holds one more time than ``rr_s`` (RR k ends at beat k + 1) or as many
    (the time at which each RR ends). ``epoch_s`` is the analysed epoch's length; by default
    the span of the RR series (first interval's start to last beat). HF needs >= 60 s, LF
    >= 120 s, VLF, total power and LF/HF >= 300 s; what is missing is None and the reason is
    in ``not_computed`` (None when everything was computed).
    """
    times = np.asarray(beat_times_s, dtype=float).ravel()
    rr = np.asarray(rr_s, dtype=float).ravel() * 1000.0
    if times.size == rr.size + 1:
        times = times[1:]
    elif times.size != rr.size:
        raise ValueError(f"{times.size} beat times do not go with {rr.size} RR intervals")
    span = float(times[-1] - times[0] + rr[0] / 1000.0) if rr.size else 0.0
    duration = span if epoch_s is None else float(epoch_s)
    out: dict[str, Any] = {
        "duration_s": duration, "vlf_ms2": None, "lf_ms2": None, "hf_ms2": None,
        "total_ms2": None, "lf_hf": None, "lf_peak_hz": None, "hf_peak_hz": None,
        "not_computed": None}
    if rr.size < 4 or duration < MIN_HF_S:
        out["not_computed"] = (f"epoch of {duration:.1f} s with {rr.size} RR intervals: HF needs "
                               f">= {MIN_HF_S:g} s (LF {MIN_LF_S:g} s, LF/HF {MIN_LF_HF_S:g} s)"
                               " and >= 4 intervals")
        return out
    if not np.all(np.diff(times) > 0):
        raise ValueError("beat times must be strictly increasing")
    grid = np.arange(times[0], times[-1], 1.0 / RESAMPLE_HZ)
    series = detrend(CubicSpline(times, rr)(grid), type="linear")
    per_segment = min(series.size, int(round(WELCH_SEGMENT_S * RESAMPLE_HZ)))
    freqs, psd = welch(series, fs=RESAMPLE_HZ, window="hann", nperseg=per_segment,
                       noverlap=per_segment // 2, detrend="constant", scaling="density")
    df = float(freqs[1] - freqs[0])

    def band(lo: float, hi: float) -> tuple[float, float]:
        keep = (freqs > lo + 1e-9) if lo == 0 else (freqs >= lo - 1e-9)
        keep &= freqs < hi - 1e-9
        if not keep.any():
            return 0.0, math.nan
        return float(psd[keep].sum() * df), float(freqs[keep][np.argmax(psd[keep])])

    out["hf_ms2"], out["hf_peak_hz"] = band(*HF_HZ)
    if duration < MIN_LF_S:
        out["not_computed"] = (f"epoch of {duration:.1f} s: LF needs >= {MIN_LF_S:g} s, "
                               f"VLF, total power and LF/HF >= {MIN_LF_HF_S:g} s")
        return out
    out["lf_ms2"], out["lf_peak_hz"] = band(*LF_HZ)
    if duration < MIN_LF_HF_S:
        out["not_computed"] = (f"epoch of {duration:.1f} s: VLF, total power and LF/HF need "
                               f">= {MIN_LF_HF_S:g} s")
        return out
    out["vlf_ms2"] = band(*VLF_HZ)[0]
    out["total_ms2"] = band(0.0, HF_HZ[1])[0]
    out["lf_hf"] = out["lf_ms2"] / out["hf_ms2"] if out["hf_ms2"] > 0 else math.nan
    return out


# ---------------------------------------------------------------------------- summary


def hrv_summary(ecg_stream_or_arrays: Any, start: float | None = None,
                end: float | None = None, channel: str | None = None) -> dict[str, Any]:
    """HRV of the epoch ``[start, end)`` (program clock, s; None: the recording's edges).

    Takes a :class:`qst_station.session.Stream` (``channel``, or its only or ``ECG``
    channel) or ``(time_s, ecg_mv)`` arrays. Peaks are detected on the epoch plus 1 s on
    each side and kept when their (sub-sample, parabolic) time lies in the epoch. Returns the
    epoch, ``rate_hz``, ``n_beats``, ``beat_times_s`` (array), the :func:`time_domain` and the
    :func:`frequency_domain` entries (the epoch's length decides what is computed).
    """
    time_s, ecg, nominal = _ecg_arrays(ecg_stream_or_arrays, channel)
    if time_s.size < 2:
        raise ValueError("the ECG has fewer than 2 samples")
    if not np.all(np.diff(time_s) > 0):
        raise ValueError("ECG sample times must be strictly increasing")
    rate = nominal if nominal and nominal > 0 else 1.0 / float(np.median(np.diff(time_s)))
    lo = float(time_s[0]) if start is None else float(start)
    hi = float(time_s[-1]) + 1.0 / rate if end is None else float(end)
    if not hi > lo:
        raise ValueError(f"empty epoch [{lo}, {hi})")
    window = (time_s >= lo - EPOCH_PAD_S) & (time_s < hi + EPOCH_PAD_S)
    t, x = time_s[window], ecg[window]
    peaks = detect_r_peaks(x, rate) if t.size else np.zeros(0, dtype=np.int64)
    beats = t[peaks] + _subsample_offsets(x, peaks) / rate
    beats = beats[(beats >= lo) & (beats < hi)]
    rr = rr_from_peaks(beats)
    epoch = min(hi, float(time_s[-1]) + 1.0 / rate) - max(lo, float(time_s[0]))
    return {"start": lo, "end": hi, "rate_hz": rate, "n_beats": int(beats.size),
            "beat_times_s": beats, **time_domain(rr),
            **frequency_domain(beats, rr, epoch_s=epoch)}


def _ecg_arrays(source: Any, channel: str | None) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(time, one ECG column, nominal rate or None) from a Stream or a (time, values) pair."""
    if hasattr(source, "time") and hasattr(source, "values"):
        values = np.asarray(source.values)
        if values.ndim == 1:
            column = values
        elif channel is not None:
            column = source.column(channel)
        elif values.shape[1] == 1:
            column = values[:, 0]
        elif "ECG" in source.channels:
            column = source.column("ECG")
        else:
            raise ValueError(f"say which channel holds the ECG: {source.channels}")
        rate = float(getattr(source, "nominal_rate", 0.0) or 0.0)
        return np.asarray(source.time, dtype=float), np.asarray(column, dtype=float), rate
    time_s, ecg = source
    return np.asarray(time_s, dtype=float).ravel(), np.asarray(ecg, dtype=float).ravel(), None
