"""Heart-rate variability from an ECG or an RR-interval stream: beats, NN intervals, metrics.

R-peak detection and the metrics are numpy/scipy. Artifacts (ectopic, missed, extra and
long/short beats) are classified by neurokit2's Lipponen & Tarvainen (2019) rules
(:func:`correct_beats`) and the beats corrected, so the metrics use the NN series.
:func:`beats_from_ecg` / :func:`beats_from_rr` give a :class:`BeatSeries`;
:func:`epoch_metrics` measures one epoch of it; :func:`hrv_summary` runs the whole chain on one
epoch of a recorded ECG. Definitions follow the Task Force (1996, Circulation 93:1043); see
``docs/hrv.md``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
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
ECG_GAP_S = 0.5  # a jump in ECG sample times this large splits the recording (no RR across it)
RR_GAP_FRACTION = 0.5  # timestamps off the summed RR by this part of an RR: samples were lost
RR_UNITS = {"s": 1.0, "ms": 0.001, "1/1024 s": 1.0 / 1024.0, "1/1024s": 1.0 / 1024.0}
ARTIFACT_KINDS = ("ectopic", "missed", "extra", "longshort")
MAX_CORRECTION_PASSES = 5
MEDIAN_BEATS = 11  # RR intervals around a long one that give its local median


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


# ---------------------------------------------------------------------------- artifacts


def correct_beats(beat_times_s: np.ndarray) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Beat times with ectopic, missed, extra and long/short beats corrected; and what was done.

    Each pass classifies the RR series with ``neurokit2.signal_fixpeaks(method="Kubios")``
    (Lipponen & Tarvainen 2019) and corrects it: an extra beat is removed, a missed beat is
    inserted halfway, a misplaced beat (ectopic, long/short) is moved to the time interpolated
    from its nearest good neighbours (an edge beat is removed). Passes repeat while they find
    fewer artifacts than the pass before (as neurokit2's ``iterative``), at most
    :data:`MAX_CORRECTION_PASSES`. Returns the times and one ``(time, kind)`` per correction.
    """
    times = np.asarray(beat_times_s, dtype=float).ravel()
    done: list[tuple[float, str]] = []
    previous: int | None = None
    for _ in range(MAX_CORRECTION_PASSES):
        flags = _kubios_flags(times)
        found = sum(len(v) for v in flags.values())
        if found == 0 or (previous is not None and found >= previous):
            break
        times, fixed = _apply_corrections(times, flags)
        done += fixed
        previous = found
    return times, done


def _kubios_flags(times: np.ndarray) -> dict[str, list[int]]:
    """neurokit2's classification; index j names RR j, the interval ending at beat j."""
    if times.size < 4:
        return {kind: [] for kind in ARTIFACT_KINDS}
    import neurokit2 as nk  # 3 s to import: only when correcting

    peaks = np.rint((times - times[0]) * 1e6).astype(np.int64)  # µs keeps sub-sample times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info, _ = nk.signal_fixpeaks(peaks, sampling_rate=1_000_000, iterative=False,
                                     method="Kubios")
    return {kind: sorted(int(j) for j in info[kind]) for kind in ARTIFACT_KINDS}


def _apply_corrections(times: np.ndarray, flags: dict[str, list[int]]
                       ) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """One pass of corrections. neurokit2 flags RR intervals; the beat to fix is chosen here.

    An ectopic or long/short flag at RR j means beat j - 1 or beat j is misplaced: the one
    further from the midpoint of its neighbours is moved (neurokit2's own correction always
    moves beat j, which for an early beat is the normal beat after the compensatory pause).
    Long/short flags next to an ectopic, missed or extra flag belong to the same artifact; a
    long/short interval of 2, 3, ... local median intervals is missed beats.
    """
    n = times.size
    extra, missed = set(flags["extra"]), set(flags["missed"])
    claimed = {j + d for j in extra | set(flags["ectopic"]) for d in (-1, 0, 1)}
    claimed |= {j + d for j in missed for d in (-1, 1)}
    misplaced: dict[int, str] = {}
    for j in flags["ectopic"]:
        if 1 <= j < n:
            misplaced.setdefault(_more_displaced(times, j - 1, j), "ectopic")
    fill: dict[int, int] = {}  # RR j -> beats missing in it (several missed in a row)
    for j in flags["longshort"]:
        if j in claimed or not 1 <= j < n:
            continue
        lost = _beats_missing(times, j)
        if lost:
            fill[j] = lost
        else:
            misplaced.setdefault(_more_displaced(times, j - 1, j), "longshort")
    extra = {j for j in extra if 0 <= j < n}
    bad = set(misplaced) | extra
    good = np.array([k for k in range(n) if k not in bad])
    out, done, removed = times.copy(), [], set(extra)
    for k, kind in sorted(misplaced.items()):
        if k in extra:
            continue
        before, after = good[good < k], good[good > k]
        if before.size == 0 or after.size == 0:
            removed.add(k)
        else:
            a, b = int(before[-1]), int(after[0])
            out[k] = times[a] + (times[b] - times[a]) * (k - a) / (b - a)
        done.append((float(out[k]), kind))
    done += [(float(times[j]), "extra") for j in sorted(extra)]
    fill.update({j: 1 for j in missed})
    added = [times[j - 1] + (times[j] - times[j - 1]) * i / (lost + 1)
             for j, lost in sorted(fill.items())
             if 1 <= j < n and j not in removed and j - 1 not in removed
             for i in range(1, lost + 1)]
    done += [(float(t), "missed") for t in added]
    keep = np.array([k not in removed for k in range(n)], dtype=bool)
    return np.sort(np.concatenate((out[keep], added))), done


def _beats_missing(times: np.ndarray, j: int) -> int:
    """Beats missing in RR ``j`` if it is 2, 3, ... local medians long (within 20 %), else 0."""
    rr = np.diff(times)
    near = rr[max(0, j - 1 - MEDIAN_BEATS // 2):j - 1 + MEDIAN_BEATS // 2 + 1]
    median = float(np.median(near))
    ratio = rr[j - 1] / median
    whole = round(ratio)
    return whole - 1 if whole >= 2 and abs(ratio / whole - 1.0) < 0.2 else 0


def _more_displaced(times: np.ndarray, a: int, b: int) -> int:
    """Of beats ``a`` and ``b``, the one further from the midpoint of its neighbours."""
    def off(k: int) -> float:
        if k <= 0 or k >= times.size - 1:
            return math.inf
        return abs(times[k] - 0.5 * (times[k - 1] + times[k + 1]))
    return a if off(a) >= off(b) else b


# ---------------------------------------------------------------------------- beat series


@dataclass(frozen=True)
class BeatSeries:
    """Beats of one source on the program clock: NN beats after correction, by segment.

    Segments are stretches without a gap in the data: intervals are only taken between beats
    of one segment. ``spans`` are the covered time ranges (one per segment), ``detected`` the
    beats before correction, ``artifacts`` one ``(time, kind)`` per corrected beat.
    """

    times: np.ndarray
    segment: np.ndarray
    spans: tuple[tuple[float, float], ...]
    detected: np.ndarray
    artifacts: tuple[tuple[float, str], ...] = ()

    def within(self, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
        """NN beat times in ``[start, end)`` and their segment numbers."""
        keep = (self.times >= start) & (self.times < end)
        return self.times[keep], self.segment[keep]

    def coverage(self, start: float, end: float) -> float:
        """Seconds of ``[start, end)`` that the source covered."""
        return float(sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.spans))

    def corrected(self, start: float, end: float) -> dict[str, int]:
        """Corrections (by kind) of beats in ``[start, end)``."""
        counts = dict.fromkeys(ARTIFACT_KINDS, 0)
        for t, kind in self.artifacts:
            if start <= t < end:
                counts[kind] += 1
        return counts


def join_series(pieces: list[BeatSeries]) -> BeatSeries:
    """One series of pieces in time order (their segments kept apart)."""
    times, segments, offset = [], [], 0
    for piece in pieces:
        times.append(piece.times)
        segments.append(piece.segment + offset)
        offset += len(piece.spans)
    return BeatSeries(np.concatenate(times) if times else np.zeros(0),
                      np.concatenate(segments) if segments else np.zeros(0, dtype=np.int64),
                      tuple(s for p in pieces for s in p.spans),
                      np.concatenate([p.detected for p in pieces]) if pieces else np.zeros(0),
                      tuple(a for p in pieces for a in p.artifacts))


def _series(segments: list[np.ndarray], spans: list[tuple[float, float]],
            correct: bool) -> BeatSeries:
    """A BeatSeries from the detected beats of each segment, corrected per segment."""
    fixed, artifacts = [], []
    for beats in segments:
        nn, done = correct_beats(beats) if correct else (beats, [])
        fixed.append(nn)
        artifacts += done
    numbers = [np.full(b.size, i, dtype=np.int64) for i, b in enumerate(fixed)]
    empty = np.zeros(0)
    return BeatSeries(np.concatenate(fixed) if fixed else empty,
                      np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64),
                      tuple(spans), np.concatenate(segments) if segments else empty,
                      tuple(artifacts))


def beats_from_ecg(time_s: np.ndarray, ecg_mv: np.ndarray, rate_hz: float | None = None,
                   correct: bool = True) -> BeatSeries:
    """R peaks of an ECG (program-clock sample times) as a BeatSeries.

    The recording is split where sample times jump by >= :data:`ECG_GAP_S`; in each piece
    the peaks are detected, timed to sub-sample precision (parabola through the apex) and,
    with ``correct``, artifacts corrected. ``rate_hz``: by default from the median interval.
    """
    time_s = np.asarray(time_s, dtype=float).ravel()
    ecg = np.asarray(ecg_mv, dtype=float).ravel()
    if time_s.size < 2:
        raise ValueError("the ECG has fewer than 2 samples")
    if not np.all(np.diff(time_s) > 0):
        raise ValueError("ECG sample times must be strictly increasing")
    rate = float(rate_hz) if rate_hz else 1.0 / float(np.median(np.diff(time_s)))
    cuts = np.flatnonzero(np.diff(time_s) >= ECG_GAP_S) + 1
    segments, spans = [], []
    for t, x in zip(np.split(time_s, cuts), np.split(ecg, cuts), strict=True):
        peaks = detect_r_peaks(x, rate)
        segments.append(t[peaks] + _subsample_offsets(x, peaks) / rate)
        spans.append((float(t[0]), float(t[-1]) + 1.0 / rate))
    return _series(segments, spans, correct)


def rr_scale(unit: str, rr: np.ndarray) -> float:
    """Seconds per unit of an RR column: its unit (s, ms, 1/1024 s) or, if unknown, its size."""
    key = unit.strip().lower()
    if key in RR_UNITS:
        return RR_UNITS[key]
    finite = rr[np.isfinite(rr)]
    median = float(np.median(finite)) if finite.size else math.nan
    if 0.2 <= median <= 3.0:
        return 1.0
    if 200.0 <= median <= 3000.0:
        return 0.001
    raise ValueError(f"RR unit {unit!r} unknown and the values (median {median:g}) are neither "
                     "seconds nor milliseconds")


def beats_from_rr(time_s: np.ndarray, rr: np.ndarray, unit: str = "s",
                  correct: bool = True) -> BeatSeries:
    """Beats from an RR-interval stream: one interval per sample, stamped at the beat ending it.

    Beat times are rebuilt by summing the intervals (not from the timestamps) and anchored on
    the timestamps' median offset within each segment; a new segment starts where the
    timestamps move away from the summed intervals by more than half an interval (samples
    lost). The first beat of a segment is its first interval's start; a segment covers the
    time from its first to (just after) its last beat.
    """
    time_s = np.asarray(time_s, dtype=float).ravel()
    values = np.asarray(rr, dtype=float).ravel()
    if time_s.size != values.size:
        raise ValueError(f"{time_s.size} timestamps do not go with {values.size} RR values")
    rr_s = values * rr_scale(unit, values)
    keep = np.isfinite(rr_s) & (rr_s > 0)
    time_s, rr_s = time_s[keep], rr_s[keep]
    if time_s.size == 0:
        return _series([], [], correct)
    ends = np.cumsum(rr_s)  # each interval's end, summed from the first interval's start
    offset = time_s - ends
    cuts = np.flatnonzero(np.abs(np.diff(offset)) > RR_GAP_FRACTION * rr_s[1:]) + 1
    segments, spans = [], []
    for piece, off, end in zip(np.split(rr_s, cuts), np.split(offset, cuts),
                               np.split(ends, cuts), strict=True):
        beats = float(np.median(off)) + np.concatenate(([end[0] - piece[0]], end))
        segments.append(beats)
        spans.append((float(beats[0]), float(np.nextafter(beats[-1], math.inf))))
    return _series(segments, spans, correct)


# ---------------------------------------------------------------------------- epochs


def epoch_metrics(series: BeatSeries, start: float, end: float) -> dict[str, Any]:
    """HRV of the beats in ``[start, end)``: time and frequency domain plus corrections.

    Intervals are taken between successive NN beats of one segment. The epoch's length for
    the frequency rules is the time the source covered in it; with a gap in the epoch the
    spectrum is computed on its longest gap-free stretch (its own length then decides).
    """
    if not end > start:
        raise ValueError(f"empty epoch [{start}, {end})")
    t, seg = series.within(start, end)
    same = seg[1:] == seg[:-1]
    rr = np.diff(t)[same]
    covered = series.coverage(start, end)
    stretches = np.unique(seg)
    if stretches.size <= 1:
        spectrum = frequency_domain(t, np.diff(t), epoch_s=covered)
    else:
        spans = [(series.spans[k], t[seg == k]) for k in stretches]
        (a, b), beats = max(spans, key=lambda sb: min(end, sb[0][1]) - max(start, sb[0][0]))
        spectrum = frequency_domain(beats, np.diff(beats), epoch_s=min(end, b) - max(start, a))
        note = f"spectrum of the longest of {stretches.size} gap-free stretches"
        spectrum["not_computed"] = "; ".join(filter(None, [spectrum["not_computed"], note]))
    corrected = series.corrected(start, end)
    detected = series.detected
    return {"start": float(start), "end": float(end), "covered_s": covered,
            "n_beats": int(t.size),
            "n_detected": int(np.count_nonzero((detected >= start) & (detected < end))),
            "corrected": corrected, "n_corrected": sum(corrected.values()),
            **time_domain(rr), **spectrum}


# ---------------------------------------------------------------------------- summary


def hrv_summary(ecg_stream_or_arrays: Any, start: float | None = None,
                end: float | None = None, channel: str | None = None,
                correct: bool = True) -> dict[str, Any]:
    """HRV of the epoch ``[start, end)`` (program clock, s; None: the recording's edges).

    Takes a :class:`qst_station.session.Stream` (``channel``, or its only or ``ECG``
    channel) or ``(time_s, ecg_mv)`` arrays. Peaks are detected (and, with ``correct``,
    artifacts corrected) on the epoch plus 1 s on each side; beats count when their time lies
    in the epoch. Returns :func:`epoch_metrics` plus ``rate_hz``, ``beat_times_s`` (detected)
    and ``nn_times_s`` (corrected) arrays.
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
    if np.count_nonzero(window) < 2:
        series = _series([], [], correct)
    else:
        series = beats_from_ecg(time_s[window], ecg[window], rate, correct)
    detected = series.detected[(series.detected >= lo) & (series.detected < hi)]
    return {**epoch_metrics(series, lo, hi), "rate_hz": rate, "beat_times_s": detected,
            "nn_times_s": series.within(lo, hi)[0]}


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
