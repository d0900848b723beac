"""Export a session as the BIDS files of one fMRI run (events, stimulus traces, physio).

``export_bids(session, out_dir, subject, session_label, task, run)`` writes into the BIDS
dataset ``out_dir`` under ``sub-<S>/ses-<V>/func/``:

- ``*_events.tsv`` / ``.json``: stimuli (onset paired with offset), ratings, responses and
  protocol phases; ``onset`` in seconds from the first stored volume (negative before it);
- ``*_recording-<label>_stim.tsv.gz`` / ``.json``: continuous stimulus traces (thermode,
  pressure), one file per stream;
- ``*_recording-<label>_physio.tsv.gz`` / ``.json``: physiological waveforms (ECG as
  ``cardiac``, respiration as ``respiratory``) with a ``trigger`` column, one file per stream.

Time zero is the first stored volume: the first ``trigger`` event of the run that is not a
dummy volume. Streams are resampled onto a uniform grid at their nominal rate (linear
interpolation on the program clock). What each file holds is described in ``docs/exports.md``.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qst_station import __version__
from qst_station.recording import Event
from qst_station.session import Session, Stream

BIDS_VERSION = "1.9.0"
RUN_PHASE = "fmri-run"
_LABEL = re.compile(r"[A-Za-z0-9]+")
_RR_WORDS = {"rr", "rri", "ibi", "nn", "hr", "heartrate", "hrv", "bpm"}
_CARDIAC_WORDS = {"ecg", "ekg", "ppg", "cardiac", "pulse", "pleth"}
_RESP_WORDS = {"resp", "respiration", "respiratory", "breathing", "breath"}
_OTHER_WAVE_WORDS = {"emg", "eeg", "eog", "eda", "gsr", "scr"}
_STIM_WORDS = {"temperature", "thermode", "pressure", "cuff", "algometer", "force"}
_STIM_UNITS = {"degc", "°c", "c", "kpa", "pa", "n", "mmhg", "kgf", "lbf"}
_VOLT_UNITS = {"v", "mv", "uv", "µv"}
_BIDS_UNITS = {"degC": "oC", "°C": "oC", "µV": "uV"}  # CMIXF-12 spellings

EVENT_COLUMNS: dict[str, dict[str, str]] = {
    "onset": {"Description": "Time from the first stored volume (negative before it).",
              "Units": "s"},
    "duration": {"Description": "Stimulus: onset to offset; phase: start to end; rating and "
                                "response: 0. n/a if the end was not recorded.",
                 "Units": "s"},
    "trial_type": {"Description": "What happened (see Levels)."},
    "target": {"Description": "Stimulus target (temperature or pressure), in target_unit."},
    "target_unit": {"Description": "Unit of target as recorded (degC, kPa, ...)."},
    "device": {"Description": "Device that delivered the stimulus."},
    "zones": {"Description": "Thermode zones stimulated, separated by ';'."},
    "trial": {"Description": "Trial id of the stimulus; for a rating, the stimulus rated."},
    "value": {"Description": "Rating or response value, on the scale in 'scale'."},
    "scale": {"Description": "Rating scale (e.g. NRS 0-100)."},
    "response_source": {"Description": "Input the response came from (button box, keyboard)."},
    "response_kind": {"Description": "Kind of response (press, release, yes, no, vas)."},
    "phase": {"Description": "Protocol phase name (e.g. HPT) for trial_type 'phase'."},
    "level": {"Description": "Stimulus level as the paradigm named it (e.g. VAS50, 46C)."},
    "volume": {"Description": "Scanner volume (trigger count, dummies included) whose trigger "
                              "started the stimulus."},
}
_LEVELS = {
    "heat": "Heat stimulus (thermode).",
    "cold": "Cold stimulus (thermode).",
    "pressure": "Pressure stimulus (algometer or cuff).",
    "stimulus": "Stimulus of unrecorded modality.",
    "rating": "Participant rating.",
    "response": "Participant response (button, key).",
    "phase": "Protocol phase from start to end.",
    "cue": "Cue announcing the next stimulus.",
    "rating_prompt": "The rating scale appears (duration: until the rating or the timeout).",
}


# Stimulators stream sparsely at rest (the TCS II at 1 Hz between stimuli, 100 Hz during
# them): their traces are interpolated across such pauses, n/a only across longer gaps.
STIM_MAX_GAP_S = 2.5


class BidsExportError(ValueError):
    """The session cannot be exported as asked (no volumes, bad label, unknown run)."""


@dataclass(frozen=True)
class StreamRole:
    """How a stream is exported: ``stim``, ``physio`` or ``skip`` (with the reason)."""

    kind: str
    label: str  # BIDS column name (physio) or recording label (stim)
    reason: str = ""


@dataclass(frozen=True)
class _Trace:
    rate: float
    start: float  # program clock of the first grid sample
    values: np.ndarray  # [n, channels] on the grid; NaN inside gaps


def check_label(entity: str, value: str) -> str:
    """``value`` if it is a valid BIDS label (letters and digits only); else raise."""
    if not _LABEL.fullmatch(value or ""):
        raise BidsExportError(f"{entity} label {value!r} is not a valid BIDS label: "
                              "use letters and digits only")
    return value


def classify(stream: Stream) -> StreamRole:
    """Stimulus trace, physio waveform or skipped, from name, LSL type, channels and units."""
    text = " ".join([stream.name, getattr(stream, "lsl_type", ""), *stream.channels]).lower()
    words = set(re.split(r"[^a-z0-9]+", text)) - {""}
    units = {u.strip().lower() for u in stream.units}
    if stream.name.endswith(".clock_offset") or getattr(stream, "lsl_type", "") == "ClockOffset":
        return StreamRole("skip", "", "LSL clock offsets of a recorded stream (kept in the "
                                      "session file for re-alignment)")
    if words & _RR_WORDS:
        return StreamRole("skip", "", "beat-to-beat intervals or heart rate, not a physio "
                                      "waveform (see the CSV export)")
    if words & _CARDIAC_WORDS:
        return StreamRole("physio", "cardiac")
    if words & _RESP_WORDS:
        return StreamRole("physio", "respiratory")
    if words & _STIM_WORDS or units & _STIM_UNITS:
        return StreamRole("stim", _alnum(stream.name))
    if units and units <= _VOLT_UNITS and not words & _OTHER_WAVE_WORDS:
        return StreamRole("physio", "cardiac")
    return StreamRole("skip", "", "neither a stimulus trace nor a known physio waveform")


def export_bids(session: Session, out_dir: str | Path, subject: str, session_label: str,
                task: str, run: int | None = None) -> list[Path]:
    """Write the BIDS files of one run of ``session``; the paths written, in order."""
    for entity, value in (("subject", subject), ("session", session_label), ("task", task)):
        check_label(entity, value)
    if run is not None and (isinstance(run, bool) or not isinstance(run, int) or run < 0):
        raise BidsExportError(f"run {run!r} must be a non-negative integer")
    span = run_span(session, run)
    volumes = volume_times(session, span)
    out_dir = Path(out_dir)
    func = out_dir / f"sub-{subject}" / f"ses-{session_label}" / "func"
    func.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{subject}_ses-{session_label}_task-{task}"
    stem += f"_run-{run}" if run is not None else ""
    labels: set[str] = set()
    written = _dataset_description(out_dir)
    written += _write_events(func / f"{stem}_events", session.events, span, volumes[0])
    for stream in sorted(session.streams.values(), key=lambda s: s.name):
        written += _write_stream(func, stem, task, stream, span, volumes, labels)
    return written


def run_span(session: Session, run: int | None) -> tuple[float, float]:
    """Program-clock span of fMRI run ``run`` (``fmri-run`` phases); the whole session if
    there are none."""
    phases = [e for e in session.events_of("phase") if e.payload.get("name") == RUN_PHASE
              and _int(e.payload.get("run")) is not None]
    runs = sorted({_int(e.payload["run"]) for e in phases})
    if not runs:
        return -math.inf, math.inf
    if run is None:
        if len(runs) > 1:
            raise BidsExportError(f"the session has fMRI runs {runs}: choose one with --run")
        run = runs[0]
    starts = [e for e in phases if _int(e.payload["run"]) == run
              and e.payload.get("state") == "start"]
    if not starts:
        raise BidsExportError(f"no fMRI run {run} in the session (runs: {runs})")
    begin = starts[0].timestamp
    ends = [e.timestamp for e in phases if _int(e.payload["run"]) == run
            and e.payload.get("state") == "end" and e.timestamp >= begin]
    return begin, ends[0] if ends else _unended_run_end(session, starts[0], phases)


def _unended_run_end(session: Session, start: Event, phases: list[Event]) -> float:
    """A run without an end phase (the program was killed) ends with its part's data, or
    where the next run starts."""
    later = [e.timestamp for e in phases
             if e.payload.get("state") == "start" and e.timestamp > start.timestamp]
    part = next(p for p, e in session.events if e is start)
    last = max([e.timestamp for p, e in session.events if p == part]
               + [float(s.time[s.part == part].max()) for s in session.streams.values()
                  if np.any(s.part == part)])
    return min([last, *later])


def volume_times(session: Session, span: tuple[float, float]) -> np.ndarray:
    """Program-clock times of the stored volumes in ``span`` (dummy volumes left out)."""
    triggers = session.events_of("trigger")
    if not triggers:
        raise BidsExportError("the session has no scanner trigger events: an fMRI export "
                              "needs volume times")
    inside = [e for e in triggers if span[0] <= e.timestamp <= span[1]
              and not e.payload.get("dummy")]
    if not inside:
        raise BidsExportError("no scanner trigger events (other than dummy volumes) in the run")
    numbers = [_int(e.payload.get("volume")) for e in inside]
    numbers = [n for n in numbers if n is not None]
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise BidsExportError("trigger volume numbers restart within the run (several scanner "
                              "runs?): mark each with 'fmri-run' phase events and choose --run")
    return np.array(sorted(e.timestamp for e in inside))


# ---------------------------------------------------------------------------- events


def event_rows(events: Iterable[tuple[int, Event]], span: tuple[float, float], t0: float
               ) -> list[dict[str, Any]]:
    """Rows of events.tsv (values not yet formatted), sorted by onset."""
    ordered = [e for _, e in events]
    rows = _paired(ordered, "stimulus_onset", "stimulus_offset", _same_stimulus, _stimulus_row)
    phases = [e for e in ordered if e.kind == "phase" and e.payload.get("name") != RUN_PHASE]
    rows += _paired([_as_kind(e) for e in phases], "phase_start", "phase_end",
                    lambda a, b: a.payload.get("name") == b.payload.get("name"), _phase_row)
    rows += [_rating_row(e) for e in ordered if e.kind == "rating"]
    answers = [Event(e.timestamp, "answer", e.payload) if e.kind == "rating_timeout" else e
               for e in ordered if e.kind in ("rating_prompt", "rating", "rating_timeout")]
    answers = [Event(e.timestamp, "answer", e.payload) if e.kind == "rating" else e
               for e in answers]
    rows += _paired(answers, "rating_prompt", "answer", _same_rated, _prompt_row)
    rows += [{"onset": e.timestamp, "duration": 0.0, "trial_type": "cue",
              "trial": e.payload.get("trial"), "level": e.payload.get("level")}
             for e in ordered if e.kind == "cue"]
    rows += [_response_row(e) for e in ordered if e.kind == "response"]
    rows = [r for r in rows if span[0] <= r["onset"] <= span[1]]
    for row in rows:
        row["onset"] -= t0
    return sorted(rows, key=lambda r: (r["onset"], r["trial_type"]))


def _paired(events: list[Event], start: str, stop: str, same: Any, make: Any
            ) -> list[dict[str, Any]]:
    """Each ``start`` event with the first later ``stop`` event that ``same`` matches."""
    pending: list[Event] = []
    rows = []
    for event in events:
        if event.kind == start:
            pending.append(event)
        elif event.kind == stop:
            match = next((p for p in pending if same(p, event)), None)
            if match is not None:
                pending.remove(match)
                rows.append(make(match, event.timestamp - match.timestamp))
    return rows + [make(p, None) for p in pending]


def _same_stimulus(onset: Event, offset: Event) -> bool:
    a, b = onset.payload, offset.payload
    if a.get("device") != b.get("device"):
        return False
    return "trial" not in a or "trial" not in b or a["trial"] == b["trial"]


def _same_rated(prompt: Event, answer: Event) -> bool:
    return prompt.payload.get("trial") == answer.payload.get("stimulus",
                                                             answer.payload.get("trial"))


def _prompt_row(event: Event, duration: float | None) -> dict[str, Any]:
    return {"onset": event.timestamp, "duration": duration, "trial_type": "rating_prompt",
            "trial": event.payload.get("trial"), "scale": event.payload.get("scale")}


def _as_kind(event: Event) -> Event:
    return Event(event.timestamp, f"phase_{event.payload.get('state')}", event.payload)


def _stimulus_row(event: Event, duration: float | None) -> dict[str, Any]:
    p = event.payload
    modality = str(p.get("modality") or "stimulus")
    return {"onset": event.timestamp, "duration": duration, "trial_type": modality,
            "target": p.get("target"), "target_unit": p.get("unit"), "device": p.get("device"),
            "zones": p.get("zones"), "trial": p.get("trial"), "level": p.get("level"),
            "volume": p.get("volume")}


def _phase_row(event: Event, duration: float | None) -> dict[str, Any]:
    return {"onset": event.timestamp, "duration": duration, "trial_type": "phase",
            "phase": event.payload.get("name")}


def _rating_row(event: Event) -> dict[str, Any]:
    p = event.payload
    return {"onset": event.timestamp, "duration": 0.0, "trial_type": "rating",
            "value": p.get("value"), "scale": p.get("scale"), "trial": p.get("stimulus")}


def _response_row(event: Event) -> dict[str, Any]:
    p = event.payload
    return {"onset": event.timestamp, "duration": 0.0, "trial_type": "response",
            "value": p.get("value"), "response_source": p.get("source"),
            "response_kind": p.get("action")}


def _write_events(stem: Path, events: list[tuple[int, Event]], span: tuple[float, float],
                  t0: float) -> list[Path]:
    rows = event_rows(events, span, t0)
    tsv, sidecar = stem.with_name(stem.name + ".tsv"), stem.with_name(stem.name + ".json")
    lines = ["\t".join(EVENT_COLUMNS)]
    lines += ["\t".join(_cell(row.get(c), c) for c in EVENT_COLUMNS) for row in rows]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    described = {k: dict(v) for k, v in EVENT_COLUMNS.items()}
    kinds = sorted({r["trial_type"] for r in rows})
    described["trial_type"]["Levels"] = {
        k: _LEVELS.get(k, f"Stimulus of modality {k}.") for k in kinds}
    presentation = {"SoftwareName": "qst-station", "SoftwareVersion": __version__}
    _write_json(sidecar, {**described, "StimulusPresentation": presentation})
    return [tsv, sidecar]


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if column in ("onset", "duration"):
        return f"{value:.4f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, list | tuple):
        return ";".join(_cell(v, column) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"))
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text or "n/a"


# ---------------------------------------------------------------------------- streams


def _write_stream(func: Path, stem: str, task: str, stream: Stream,
                  span: tuple[float, float], volumes: np.ndarray, labels: set[str]
                  ) -> list[Path]:
    """The stim or physio pair of files of one stream (none if skipped or empty)."""
    role = classify(stream)
    max_gap = STIM_MAX_GAP_S if role.kind == "stim" else None
    trace = resample(stream, span, max_gap) if role.kind != "skip" else None
    if trace is None:
        return []
    label = role.label if role.label not in labels else role.label + _alnum(stream.name)
    labels.add(label)
    meta: dict[str, Any] = {"SamplingFrequency": trace.rate,
                            "StartTime": round(trace.start - volumes[0], 6)}
    if role.kind == "stim":
        columns, data = _stim_columns(stream), trace.values
    else:
        columns = _physio_columns(stream, role.label)
        data = np.column_stack([trace.values, trigger_column(trace, volumes)])
        meta["PhysioType"] = "generic"
    meta["Columns"] = columns
    meta.update({c: _channel_meta(stream, ch, unit)
                 for c, ch, unit in zip(columns, stream.channels, stream.units, strict=False)})
    if role.kind == "physio":
        meta["trigger"] = {"Description": "1 at the sample nearest each stored volume's "
                                          "scanner trigger, else 0."}
    meta["TaskName"] = task
    base = func / f"{stem}_recording-{label}_{role.kind}"
    return _write_trace(base, data, meta)


def resample(stream: Stream, span: tuple[float, float], max_gap_s: float | None = None
             ) -> _Trace | None:
    """The stream's samples in ``span`` on a uniform grid at its nominal rate (or its median
    rate if irregular); NaN inside gaps longer than ``max_gap_s`` (default: 10 periods, at
    least 0.1 s)."""
    inside = (stream.time >= span[0]) & (stream.time <= span[1])
    time, values = stream.time[inside], stream.values[inside].astype(np.float64)
    if len(time) < 2 or time[-1] <= time[0]:
        return None
    rate = stream.nominal_rate
    if not rate > 0:
        rate = float(f"{1.0 / np.median(np.diff(time)):.4g}")
    grid = time[0] + np.arange(int(math.floor((time[-1] - time[0]) * rate + 1e-6)) + 1) / rate
    out = np.column_stack([np.interp(grid, time, values[:, i])
                           for i in range(values.shape[1])])
    after = np.clip(np.searchsorted(time, grid, side="right") - 1, 0, len(time) - 2)
    limit = max(10.0 / rate, 0.1) if max_gap_s is None else max_gap_s
    gap = time[after + 1] - time[after] > limit
    out[gap & (grid > time[after])] = np.nan
    return _Trace(rate, float(grid[0]), out)


def trigger_column(trace: _Trace, volumes: np.ndarray) -> np.ndarray:
    """1 at the grid sample nearest each volume inside the trace, else 0."""
    column = np.zeros(len(trace.values))
    index = np.rint((volumes - trace.start) * trace.rate).astype(int)
    column[index[(index >= 0) & (index < len(column))]] = 1
    return column


def _stim_columns(stream: Stream) -> list[str]:
    return _unique([_alnum(c, keep="_") or f"channel{i + 1}"
                    for i, c in enumerate(stream.channels)])


def _physio_columns(stream: Stream, label: str) -> list[str]:
    if len(stream.channels) == 1:
        return [label, "trigger"]
    return [*_unique([f"{label}_{_alnum(c, keep='_')}" for c in stream.channels]), "trigger"]


def _write_trace(base: Path, data: np.ndarray, meta: Mapping[str, Any]) -> list[Path]:
    """``base``.tsv.gz (no header; NaN as n/a; reproducible gzip) and ``base``.json."""
    tsv = base.with_name(base.name + ".tsv.gz")
    sidecar = base.with_name(base.name + ".json")
    text = io.StringIO()
    np.savetxt(text, data, fmt="%.6g", delimiter="\t")
    with tsv.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                              mtime=0) as packed:
        packed.write(text.getvalue().replace("nan", "n/a").encode())
    _write_json(sidecar, meta)
    return [tsv, sidecar]


def _channel_meta(stream: Stream, channel: str, unit: str) -> dict[str, str]:
    rate = f"{stream.nominal_rate:g} Hz" if stream.nominal_rate > 0 else "irregular"
    meta = {"Description": f"Channel {channel!r} of stream {stream.name!r} ({stream.source}, "
                           f"recorded {rate}), linearly interpolated onto a uniform grid on "
                           "the program clock; n/a inside recording gaps."}
    if unit:
        meta["Units"] = _BIDS_UNITS.get(unit, unit)
    return meta


# ---------------------------------------------------------------------------- helpers


def _dataset_description(out_dir: Path) -> list[Path]:
    path = out_dir / "dataset_description.json"
    if path.exists():
        return []
    _write_json(path, {"Name": "qst-station export", "BIDSVersion": BIDS_VERSION,
                       "DatasetType": "raw",
                       "GeneratedBy": [{"Name": "qst-station", "Version": __version__}]})
    return [path]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _alnum(text: str, keep: str = "") -> str:
    return re.sub(rf"[^A-Za-z0-9{keep}]", "", text)


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        out.append(name if name not in out else f"{name}{len(out) + 1}")
    return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
