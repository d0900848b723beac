"""HRV per epoch of a session: whole parts, resting baseline, protocol blocks, stimulus windows.

Pure functions over a :class:`qst_station.session.Session`: :func:`heart_sources` finds the
ECG and RR streams and turns each into one corrected :class:`~qst_station.hrv.BeatSeries`,
:func:`session_epochs` lists the epochs from the part boundaries and the ``phase`` and
``stimulus_onset`` events, :func:`analyze` measures every epoch of every source and the
heart-rate response to each stimulus. :func:`store_hrv` writes the analysis into the closed
session file as the group ``/analysis/hrv`` (:func:`read_stored_hrv` reads it back); recorded
data is never touched. See ``docs/hrv.md`` and ``docs/session-format.md``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qst_station import __version__
from qst_station import session as session_file
from qst_station.h5_recovery import lock_path
from qst_station.hrv import (
    ARTIFACT_KINDS,
    BeatSeries,
    beats_from_ecg,
    beats_from_rr,
    epoch_metrics,
    join_series,
)
from qst_station.session import Session, Stream

PRE_S = 5.0  # stimulus pre window [-PRE_S, 0) s
POST_S = 10.0  # stimulus post window [0, POST_S) s
CURVE_STEP_S = 1.0  # the per-stimulus HR curve: one value per bin of this length
BASELINE_WORDS = ("rest", "baseline")
RR_TYPES = frozenset({"RR", "RRI", "IBI"})
OFFSET_SUFFIX = ".clock_offset"


@dataclass(frozen=True)
class HeartSource:
    """One recorded heart signal: the stream, its kind and its beats (all parts joined)."""

    name: str
    kind: str  # "ecg" | "rr"
    channel: str
    unit: str
    series: BeatSeries
    parts: tuple[int, ...]
    part_spans: dict[int, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Epoch:
    name: str
    kind: str  # recording | baseline | phase | stimulus-pre | stimulus-post
    part: int
    start: float
    end: float
    open_ended: bool = False  # a phase that started but never ended (ends with the part)


# ---------------------------------------------------------------------------- sources


def source_kind(stream: Stream) -> str:
    """"ecg", "rr" or "" (not a heart signal)."""
    name = stream.name.lower()
    if stream.lsl_type == "ECG" or name == "ecg":
        return "ecg"
    if stream.lsl_type.upper() in RR_TYPES or name in ("rr", "rri", "ibi"):
        return "rr"
    return ""


def heart_sources(session: Session, correct: bool = True,
                  skipped: dict[str, str] | None = None) -> dict[str, HeartSource]:
    """Every ECG and RR stream of the session, beats found and corrected per part.

    Sample times of a stream recorded from another LSL outlet are moved onto the program
    clock with its ``<name>.clock_offset`` companion when there is one (about 0 on one
    machine). A stream that cannot be used is left out (why: in ``skipped``, if given).
    """
    out: dict[str, HeartSource] = {}
    for name, stream in session.streams.items():
        kind = source_kind(stream)
        if not kind:
            continue
        try:
            label = _channel(stream, "ECG" if kind == "ecg" else "RR")
        except ValueError as error:
            if skipped is not None:
                skipped[name] = str(error)
            continue
        column = stream.column(label).astype(float)
        unit = stream.units[stream.channels.index(label)] if stream.units else ""
        time_s = _program_time(session, stream)
        pieces, spans = [], {}
        for part in (int(p) for p in np.unique(stream.part)):
            rows = stream.part == part
            if np.count_nonzero(rows) < 2:
                continue
            try:
                if kind == "ecg":
                    rate = stream.nominal_rate if stream.nominal_rate > 0 else None
                    piece = beats_from_ecg(time_s[rows], column[rows], rate, correct)
                else:
                    piece = beats_from_rr(time_s[rows], column[rows], unit, correct)
            except ValueError as error:
                if skipped is not None:
                    skipped[f"{name}@part{part}"] = str(error)
                continue
            if piece.spans:
                pieces.append(piece)
                spans[part] = (piece.spans[0][0], piece.spans[-1][1])
        if pieces:
            out[name] = HeartSource(name, kind, label, unit, join_series(pieces),
                                    tuple(spans), spans)
    return out


def _channel(stream: Stream, preferred: str) -> str:
    if len(stream.channels) == 1:
        return stream.channels[0]
    if preferred in stream.channels:
        return preferred
    raise ValueError(f"stream {stream.name!r}: which channel is {preferred}? {stream.channels}")


def _program_time(session: Session, stream: Stream) -> np.ndarray:
    """Sample times plus the recorded LSL clock offset (interpolated; none: unchanged)."""
    offsets = session.streams.get(stream.name + OFFSET_SUFFIX)
    if offsets is None or offsets.time.size == 0:
        return stream.time
    return stream.time + np.interp(stream.time, offsets.time, offsets.values[:, 0])


# ---------------------------------------------------------------------------- epochs


def session_epochs(session: Session, source: HeartSource, pre_s: float = PRE_S,
                   post_s: float = POST_S) -> list[Epoch]:
    """Epochs of one source: each part it covers, each phase block, each stimulus window."""
    epochs = [Epoch("recording", "recording", part, a, b)
              for part, (a, b) in source.part_spans.items()]
    epochs += _phase_epochs(session, source)
    for index, (part, onset, _) in enumerate(stimuli(session), start=1):
        if part in source.part_spans:
            epochs.append(Epoch(f"stimulus {index} pre", "stimulus-pre", part,
                                onset - pre_s, onset))
            epochs.append(Epoch(f"stimulus {index} post", "stimulus-post", part,
                                onset, onset + post_s))
    return epochs


def _phase_epochs(session: Session, source: HeartSource) -> list[Epoch]:
    """``phase`` start/end pairs (same part, name and run); an unended one ends with the part."""
    opened: dict[tuple[int, str, Any], list[float]] = {}
    found: list[tuple[int, str, Any, float, float, bool]] = []
    for part, event in session.events:
        if event.kind != "phase" or part not in source.part_spans:
            continue
        run = event.payload.get("run")
        key = (part, str(event.payload.get("name", "")), None if run is None else str(run))
        state = event.payload.get("state")
        if state == "start":
            opened.setdefault(key, []).append(event.timestamp)
        elif state == "end" and opened.get(key):
            found.append((*key, opened[key].pop(), event.timestamp, False))
    for (part, name, run), starts in opened.items():
        found += [(part, name, run, t, source.part_spans[part][1], True) for t in starts]
    found.sort(key=lambda f: f[3])
    seen: dict[str, int] = {}
    epochs = []
    for part, name, run, start, end, open_ended in found:
        label = name + (f" run {run}" if run not in (None, "") else "")
        seen[label] = seen.get(label, 0) + 1
        kind = "baseline" if any(w in name.lower() for w in BASELINE_WORDS) else "phase"
        if end > start:
            epochs.append(Epoch(label, kind, part, start, end, open_ended))
    counts = {label: n for label, n in seen.items() if n > 1}
    numbered: dict[str, int] = {}
    for i, epoch in enumerate(epochs):
        if epoch.name in counts:
            numbered[epoch.name] = numbered.get(epoch.name, 0) + 1
            epochs[i] = replace(epoch, name=f"{epoch.name} #{numbered[epoch.name]}")
    return epochs


def stimuli(session: Session) -> list[tuple[int, float, dict[str, Any]]]:
    """(part, onset, payload) of every ``stimulus_onset`` event in time order."""
    return [(part, e.timestamp, dict(e.payload)) for part, e in session.events
            if e.kind == "stimulus_onset"]


# ---------------------------------------------------------------------------- HR response


def hr_curve(series: BeatSeries, onset: float, pre_s: float = PRE_S, post_s: float = POST_S,
             step_s: float = CURVE_STEP_S) -> tuple[np.ndarray, np.ndarray]:
    """Bin starts (s from onset) and the heart rate (bpm) in each bin around ``onset``.

    Instantaneous HR (60 / RR) holds over each NN interval; a bin's value is its time-weighted
    mean (Velden & Wölk 1987), i.e. 60 x the (fractional) beats in the bin per second. A bin
    not wholly inside one gap-free stretch of beats is NaN.
    """
    starts = np.arange(-round(pre_s / step_s), round(post_s / step_s)) * step_s
    a, b = onset + starts, onset + starts + step_s
    values = np.full(starts.size, np.nan)
    for k in np.unique(series.segment):
        beats = series.times[series.segment == k]
        if beats.size < 2:
            continue
        inside = (a >= beats[0]) & (b <= beats[-1])
        count = np.arange(beats.size, dtype=float)
        values[inside] = 60.0 * (np.interp(b[inside], beats, count)
                                 - np.interp(a[inside], beats, count)) / step_s
    return starts, values


def responses(session: Session, source: HeartSource, pre_s: float = PRE_S,
              post_s: float = POST_S, step_s: float = CURVE_STEP_S) -> list[dict[str, Any]]:
    """Per stimulus: mean HR before and after the onset, their difference and the HR curve."""
    rows, previous = [], -math.inf
    for index, (part, onset, payload) in enumerate(stimuli(session), start=1):
        if part not in source.part_spans:
            continue
        starts, curve = hr_curve(source.series, onset, pre_s, post_s, step_s)
        pre, post = curve[starts < 0], curve[starts >= 0]
        complete = bool(np.all(np.isfinite(curve)))
        pre_hr = float(pre.mean()) if complete else None
        post_hr = float(post.mean()) if complete else None
        rows.append({
            "stimulus": index, "part": part, "onset": onset,
            "trial": payload.get("trial"), "modality": payload.get("modality"),
            "target": payload.get("target"), "unit": payload.get("unit"),
            "pre_hr_bpm": pre_hr, "post_hr_bpm": post_hr,
            "hr_change_bpm": None if pre_hr is None else post_hr - pre_hr,
            "overlaps_previous": bool(previous + post_s > onset - pre_s),
            "not_computed": None if complete else "the windows are not wholly covered by beats",
            "curve_bpm": [None if not math.isfinite(v) else float(v) for v in curve]})
        previous = onset
    return rows


def mean_response(rows: list[dict[str, Any]], n_bins: int) -> dict[str, Any]:
    """Mean over the stimuli with a complete response: HR change and the HR curve."""
    done = [r for r in rows if r["hr_change_bpm"] is not None]
    if not done:
        return {"n": 0, "hr_change_bpm": None, "curve_bpm": [None] * n_bins,
                "curve_change_bpm": [None] * n_bins}
    curves = np.array([r["curve_bpm"] for r in done], dtype=float)
    change = curves - np.array([r["pre_hr_bpm"] for r in done])[:, None]
    return {"n": len(done), "hr_change_bpm": float(np.mean([r["hr_change_bpm"] for r in done])),
            "curve_bpm": curves.mean(axis=0).tolist(),
            "curve_change_bpm": change.mean(axis=0).tolist()}


# ---------------------------------------------------------------------------- analysis


def analyze(session: Session, pre_s: float = PRE_S, post_s: float = POST_S,
            step_s: float = CURVE_STEP_S, correct: bool = True) -> dict[str, Any]:
    """Every epoch of every heart source and the stimulus responses, as plain data."""
    out: dict[str, Any] = {
        "settings": {"pre_s": pre_s, "post_s": post_s, "curve_step_s": step_s,
                     "correction": "neurokit2 Kubios classification" if correct else "none"},
        "parts": [p.number for p in session.parts], "sources": {}, "skipped": {}}
    for name, source in heart_sources(session, correct, out["skipped"]).items():
        epochs = []
        for epoch in session_epochs(session, source, pre_s, post_s):
            metrics = epoch_metrics(source.series, epoch.start, epoch.end)
            epochs.append({"name": epoch.name, "kind": epoch.kind, "part": epoch.part,
                           "open_ended": epoch.open_ended, **metrics})
        rows = responses(session, source, pre_s, post_s, step_s)
        bins = np.arange(-round(pre_s / step_s), round(post_s / step_s)) * step_s
        series = source.series
        out["sources"][name] = {
            "kind": source.kind, "channel": source.channel, "unit": source.unit,
            "parts": list(source.parts), "n_beats": int(series.times.size),
            "n_detected": int(series.detected.size),
            "corrected": series.corrected(-math.inf, math.inf),
            "epochs": epochs, "stimuli": rows, "curve_bin_start_s": bins.tolist(),
            "mean_response": mean_response(rows, bins.size)}
    return out


EPOCH_COLUMNS = ("mean_hr_bpm", "sdnn_ms", "rmssd_ms", "pnn50_pct", "lf_ms2", "hf_ms2", "lf_hf")


def format_hrv(result: dict[str, Any]) -> str:
    """The analysis as text: one table of epochs per source, then the stimulus responses."""
    lines: list[str] = []
    heads = ("HR bpm", "SDNN ms", "RMSSD ms", "pNN50 %", "LF ms²", "HF ms²", "LF/HF")
    for name, src in result["sources"].items():
        fixed = ", ".join(f"{k} {v}" for k, v in src["corrected"].items())
        lines.append(f"{name} ({src['kind'].upper()}): {src['n_beats']} NN beats, "
                     f"corrected: {fixed}")
        lines.append(f"  {'epoch':<22} {'part':>4} {'s':>7} {'beats':>5} "
                     + " ".join(f"{h:>8}" for h in heads) + "  fixed")
        notes: list[str] = []
        for e in src["epochs"]:
            cells = " ".join(f"{_cell(e[c]):>8}" for c in EPOCH_COLUMNS)
            mark = ""
            if e["not_computed"]:
                if e["not_computed"] not in notes:
                    notes.append(e["not_computed"])
                mark = f" [{notes.index(e['not_computed']) + 1}]"
            lines.append(f"  {e['name'][:22]:<22} {e['part']:>4} {e['covered_s']:>7.1f} "
                         f"{e['n_beats']:>5} {cells}  {e['n_corrected']:>5}{mark}")
        lines += [f"  [{i}] not computed: {note}" for i, note in enumerate(notes, start=1)]
        for r in src["stimuli"]:
            change = "-" if r["hr_change_bpm"] is None else f"{r['hr_change_bpm']:+.1f} bpm"
            target = "" if r["target"] is None else f" {r['target']} {r['unit'] or ''}".rstrip()
            lines.append(f"  stimulus {r['stimulus']}{target}: HR change {change}"
                         + (" (windows overlap the previous stimulus)"
                            if r["overlaps_previous"] else ""))
        mean = src["mean_response"]
        if mean["n"]:
            curve = " ".join(_cell(v) for v in mean["curve_change_bpm"])
            lines.append(f"  mean response of {mean['n']} stimuli: "
                         f"{mean['hr_change_bpm']:+.1f} bpm; per second from "
                         f"{src['curve_bin_start_s'][0]:g} s: {curve}")
    lines += [f"{name}: not analysed: {why}" for name, why in result["skipped"].items()]
    return "\n".join(lines) if lines else "no ECG or RR stream in this session"


def _cell(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


# ---------------------------------------------------------------------------- storage

GROUP = "analysis/hrv"
STORE_FORMAT = "qst-station-hrv"
STORE_VERSION = "1.0"
_FLOAT_COLUMNS = ("start", "end", "covered_s", "duration_s", "mean_rr_ms", "mean_hr_bpm",
                  "sdnn_ms", "rmssd_ms", "pnn50_pct", "vlf_ms2", "lf_ms2", "hf_ms2",
                  "total_ms2", "lf_hf", "lf_peak_hz", "hf_peak_hz")
_INT_COLUMNS = ("part", "n_beats", "n_detected", "n_intervals", "n_corrected")
_STIMULUS_FLOATS = ("onset", "pre_hr_bpm", "post_hr_bpm", "hr_change_bpm")


class HrvStoreError(RuntimeError):
    """The analysis cannot be written into this file (a writer holds it, or it is not ours)."""


def store_hrv(path: str | Path, **options: Any) -> dict[str, Any]:
    """Analyse the session file at ``path`` and write the result as ``/analysis/hrv``.

    An earlier ``/analysis/hrv`` is replaced; nothing under ``/parts`` is changed. Refused
    while a writer records into the file: the writer's sidecar lock is taken for the write,
    so no writer can start meanwhile. ``options`` go to :func:`analyze`. Returns the result.
    """
    path = Path(path)
    s = session_file.open(path)  # clears the flags a killed writer left
    if s.live:
        raise HrvStoreError(f"{path}: a writer is still recording into it; store the HRV "
                            "analysis after the run")
    result = analyze(s, **options)
    with _writer_lock(path), h5py.File(path, "r+", locking=False) as handle:
        if GROUP in handle:
            del handle[GROUP]
        _write(handle.require_group("analysis").create_group("hrv"), result)
    return result


@contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    """Hold the session writer's sidecar lock (``<file>.writing``) for a short write."""
    lock = lock_path(path)
    handle = open(lock, "a")  # noqa: SIM115 - closed below, after the unlink (as the writer)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HrvStoreError(f"{path}: a writer is recording into it") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        handle.close()


def _write(group: h5py.Group, result: dict[str, Any]) -> None:
    group.attrs.update({
        "format": STORE_FORMAT, "version": STORE_VERSION, "software_version": __version__,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "parts": json.dumps(result["parts"]), "settings": json.dumps(result["settings"])})
    text = h5py.string_dtype()
    for name, src in result["sources"].items():
        g = group.create_group(name)
        g.attrs.update({"kind": src["kind"], "channel": src["channel"], "unit": src["unit"],
                        "parts": json.dumps(src["parts"]), "n_beats": src["n_beats"],
                        "n_detected": src["n_detected"],
                        "corrected": json.dumps(src["corrected"]),
                        "curve_bin_start_s": json.dumps(src["curve_bin_start_s"])})
        epochs = np.zeros(len(src["epochs"]), dtype=[
            ("name", text), ("kind", text), ("open_ended", "u1"),
            *[(c, "i4") for c in _INT_COLUMNS], *[(c, "f8") for c in _FLOAT_COLUMNS],
            *[(k, "i4") for k in ARTIFACT_KINDS], ("not_computed", text)])
        for i, e in enumerate(src["epochs"]):
            epochs[i] = (e["name"], e["kind"], e["open_ended"],
                         *[e[c] for c in _INT_COLUMNS], *[_num(e[c]) for c in _FLOAT_COLUMNS],
                         *[e["corrected"][k] for k in ARTIFACT_KINDS], e["not_computed"] or "")
        g.create_dataset("epochs", data=epochs)
        rows = src["stimuli"]
        table = np.zeros(len(rows), dtype=[
            ("stimulus", "i4"), ("part", "i4"), ("trial", text), ("modality", text),
            ("target", "f8"), ("unit", text), *[(c, "f8") for c in _STIMULUS_FLOATS],
            ("overlaps_previous", "u1"), ("not_computed", text)])
        for i, r in enumerate(rows):
            table[i] = (r["stimulus"], r["part"], _text(r["trial"]), _text(r["modality"]),
                        _num(r["target"]), _text(r["unit"]),
                        *[_num(r[c]) for c in _STIMULUS_FLOATS], r["overlaps_previous"],
                        r["not_computed"] or "")
        g.create_dataset("stimuli", data=table)
        bins = len(src["curve_bin_start_s"])
        curves = np.array([[_num(v) for v in r["curve_bpm"]] for r in rows]).reshape(-1, bins)
        g.create_dataset("stimulus_curves", data=curves)
        mean = src["mean_response"]
        mean_ds = g.create_dataset("mean_curve_bpm",
                                   data=np.array([_num(v) for v in mean["curve_bpm"]]))
        mean_ds.attrs.update({"n": mean["n"], "hr_change_bpm": _num(mean["hr_change_bpm"]),
                              "curve_change_bpm": json.dumps(mean["curve_change_bpm"])})


def read_stored_hrv(path: str | Path) -> dict[str, Any] | None:
    """The stored ``/analysis/hrv`` as plain data (NaN as None), or None if there is none."""
    with h5py.File(path, "r", swmr=True, libver="latest", locking=False) as handle:
        if GROUP not in handle:
            return None
        group = handle[GROUP]
        out: dict[str, Any] = {k: _attr(v) for k, v in group.attrs.items()}
        out["sources"] = {}
        for name, g in group.items():
            src = {k: _attr(v) for k, v in g.attrs.items()}
            src["epochs"] = [_row(r) for r in g["epochs"][:]]
            src["stimuli"] = [_row(r) for r in g["stimuli"][:]]
            src["stimulus_curves"] = [[_plain(v) for v in c] for c in g["stimulus_curves"][:]]
            mean = g["mean_curve_bpm"]
            src["mean_response"] = {**{k: _attr(v) for k, v in mean.attrs.items()},
                                    "curve_bpm": [_plain(v) for v in mean[:]]}
            out["sources"][name] = src
    return out


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _attr(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def _row(row: np.void) -> dict[str, Any]:
    return {k: _plain(row[k]) for k in row.dtype.names}
