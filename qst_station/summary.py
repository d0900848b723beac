"""What a session file holds, as a JSON-able dict and as text (``qst-station summary``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from qst_station.hrv_epochs import analyze
from qst_station.session import Session


def summarize(session: Session) -> dict[str, Any]:
    """Participant, visit, parts with exit status, measures, streams and event counts."""
    a = session.attrs
    return {
        "file": str(session.path),
        "format": f"{a.get('format')} {a.get('format_version')}",
        "participant": session.participant, "visit": session.visit,
        "site": a.get("site", ""), "session_id": a.get("session_id", ""),
        "status": session.status,
        "parts": [{"part": p.number, "status": p.status, "reason": p.reason,
                   "protocol": p.protocol, "operator": p.operator, "started_utc": p.started_utc,
                   "duration_s": None if p.stop_time is None
                   else round(p.stop_time - p.start_time, 3)}
                  for p in session.parts],
        "protocols": sorted({p.protocol for p in session.parts if p.protocol}),
        "measures": {name: {k: v for k, v in r.items() if k != "measure"}
                     for name, r in session.results().items()},
        "streams": {name: _stream(s) for name, s in session.streams.items()},
        "events": dict(sorted(Counter(e.kind for _, e in session.events).items())),
        "scanner": _scanner(session),
        **_hrv(session),
    }


HRV_KEYS = ("n_beats", "mean_hr_bpm", "sdnn_ms", "rmssd_ms", "pnn50_pct", "lf_ms2", "hf_ms2",
            "lf_hf", "not_computed")
EPOCH_KEYS = ("name", "kind", "part", "covered_s", *HRV_KEYS, "n_corrected")


def _hrv(session: Session) -> dict[str, Any]:
    """HRV of each ECG and RR stream (qst_station.hrv_epochs), artifacts corrected.

    ``hrv``: the whole recording per stream and part (``name``, or ``name@partN`` when the
    stream is in several parts, as before); ``hrv_epochs``: the resting baseline and protocol
    blocks; ``hrv_response``: the mean heart-rate response to the stimuli.
    """
    try:
        result = analyze(session)
    except ValueError as error:
        return {"hrv": {"error": {"not_computed": str(error)}}, "hrv_epochs": {},
                "hrv_response": {}}
    whole: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    response: dict[str, Any] = {}
    for name, src in result["sources"].items():
        for e in src["epochs"]:
            if e["kind"] == "recording":
                key = name if len(src["parts"]) == 1 else f"{name}@part{e['part']}"
                whole[key] = {**{k: _round(e.get(k)) for k in HRV_KEYS},
                              "corrected": e["corrected"]}
        blocks[name] = [{k: _round(e.get(k)) for k in EPOCH_KEYS} for e in src["epochs"]
                        if e["kind"] in ("baseline", "phase")]
        mean = src["mean_response"]
        response[name] = {"n": mean["n"], "hr_change_bpm": _round(mean["hr_change_bpm"]),
                          "stimuli": len(src["stimuli"])}
    return {"hrv": whole, "hrv_epochs": blocks, "hrv_response": response}


def _round(value: Any) -> Any:
    return round(float(value), 3) if isinstance(value, (float, np.floating)) else value


def _stream(stream: Any) -> dict[str, Any]:
    n = len(stream.time)
    duration = 0.0  # summed per part: parts of a continued session are apart in time
    for part in np.unique(stream.part):
        times = stream.time[stream.part == part]
        duration += float(times[-1] - times[0]) if len(times) > 1 else 0.0
    rate = (n - len(np.unique(stream.part))) / duration if duration > 0 else None
    return {"samples": n, "duration_s": round(duration, 3),
            "nominal_rate_hz": stream.nominal_rate,
            "measured_rate_hz": None if rate is None else round(rate, 3),
            "channels": stream.channels, "units": stream.units, "source": stream.source}


def _scanner(session: Session) -> dict[str, Any] | None:
    triggers = session.events_of("trigger")
    if not triggers:
        return None
    times = np.array([e.timestamp for e in triggers])
    inferred = sum(bool(e.payload.get("inferred")) for e in triggers)
    tr = float(np.median(np.diff(times))) if len(times) > 1 else None
    return {"volumes": len(triggers), "inferred": inferred,
            "tr_s": None if tr is None else round(tr, 4),
            "first_volume_time": float(times[0])}


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned text for the terminal."""
    lines = [f"{summary['file']}  ({summary['format']})",
             f"participant {summary['participant']}  visit {summary['visit']}  "
             f"site {summary['site'] or '-'}  status {summary['status'].upper()}"]
    for p in summary["parts"]:
        took = "-" if p["duration_s"] is None else f"{p['duration_s']:.1f} s"
        why = f" ({p['reason']})" if p["reason"] else ""
        lines.append(f"  part {p['part']}: {p['status']}{why}, {p['protocol'] or 'no protocol'}, "
                     f"started {p['started_utc']}, {took}")
    lines.append("measures:" if summary["measures"] else "measures: none")
    for name, m in summary["measures"].items():
        lines.append(f"  {name:<6} {_value(m.get('value'))} {m.get('unit', '')}".rstrip())
    lines.append("streams:" if summary["streams"] else "streams: none")
    for name, s in summary["streams"].items():
        units = ", ".join(f"{c} [{u}]" for c, u in zip(s["channels"], s["units"], strict=False))
        rate = f"{s['nominal_rate_hz']:g} Hz" if s["nominal_rate_hz"] else "irregular"
        lines.append(f"  {name:<12} {s['samples']:>9} samples  {s['duration_s']:>9.1f} s  "
                     f"{rate:>9}  {units}")
    if summary["scanner"]:
        sc = summary["scanner"]
        tr = "-" if sc["tr_s"] is None else f"{sc['tr_s']:g} s"
        lines.append(f"scanner: {sc['volumes']} volumes ({sc['inferred']} inferred), TR {tr}")
    for name, h in summary.get("hrv", {}).items():
        if h.get("rmssd_ms") is not None:
            fixed = sum(h.get("corrected", {}).values())
            lines.append(f"HRV {name}: {h['n_beats']} beats ({fixed} corrected), "
                         f"HR {h['mean_hr_bpm']:.1f} bpm, "
                         f"SDNN {h['sdnn_ms']:.1f} ms, RMSSD {h['rmssd_ms']:.1f} ms"
                         + (f" ({h['not_computed']})" if h.get("not_computed") else ""))
    for name, epochs in summary.get("hrv_epochs", {}).items():
        for e in epochs:
            if e.get("rmssd_ms") is not None:
                ratio = "" if e["lf_hf"] is None else f", LF/HF {e['lf_hf']:.2f}"
                lines.append(f"HRV {name} {e['name']}: {e['covered_s']:.1f} s, "
                             f"HR {e['mean_hr_bpm']:.1f} bpm, RMSSD {e['rmssd_ms']:.1f} ms"
                             f"{ratio}")
    for name, r in summary.get("hrv_response", {}).items():
        if r["n"]:
            lines.append(f"HR response {name}: {r['hr_change_bpm']:+.1f} bpm after the onset "
                         f"(mean of {r['n']} stimuli; details: qst-station hrv)")
    counts = ", ".join(f"{k} {v}" for k, v in summary["events"].items()) or "none"
    lines.append(f"events: {counts}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
