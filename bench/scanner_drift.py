"""Scanner drift: stimulus onsets against their volumes' triggers over a long real-time run.

A simulated fMRI heat run (``qst_station.demo_session.record_demo_session``) in real time:
the simulated scanner writes a trigger per volume on its pty, heat stimuli start on
scheduled volumes (the demo's stimulator, a time-critical trigger subscriber, sends the
pre-programmed TCS II ``L``), with the HDF5 session writer, the LSL publisher and the
simulated ECG (over LSL, this machine only) running. The session file is then read with
``qst_station.session.open``. For every stimulus (``stimulus_onset`` with its ``volume``):

* onset minus its volume's ``trigger`` event (the trigger reader's arrival stamp);
* onset minus the moment the simulated scanner wrote that volume's byte;
* the scanner's write minus the volume's place on the scanner's grid (its own lateness).

Each as max, median and p99 in ms, whether all are within 1 ms, and the trend over the run
(the median of each third of the run, and a linear fit of onset minus write against time
in µs per minute, which a few late wake-ups can dominate). All stamps are on
the program clock (``pylsl.local_clock``).

Run: ``python bench/scanner_drift.py [--minutes 10] [--tr 2] [--every 4]``.
Results (every stimulus) go to ``bench/results/scanner_drift.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from qst_station import demo_session, session  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from qst_station.demo_session import DemoPlan, record_demo_session  # noqa: E402
from sim.scanner import SimulatedScanner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "scanner_drift.json"
WITHIN_S = 0.001


class TappedScanner(SimulatedScanner):
    """The demo's scanner, kept so that its write times can be read after the run."""

    made: list[SimulatedScanner] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        TappedScanner.made.append(self)


def stats_ms(values_s: list[float]) -> dict[str, Any]:
    ms = np.asarray(values_s, dtype=float) * 1000.0
    if not ms.size:
        return {"n": 0}
    thirds = [float(np.median(part)) for part in np.array_split(ms, 3) if part.size]
    return {"n": int(ms.size), "min_ms": float(ms.min()), "median_ms": float(np.median(ms)),
            "median_by_third_ms": thirds,
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "over_1ms": int(np.sum(np.abs(ms) > WITHIN_S * 1000.0)),
            "within_1ms": bool(np.all(np.abs(ms) <= WITHIN_S * 1000.0))}


def run(minutes: float, tr_s: float, every: int, path: Path) -> dict[str, Any]:
    volumes = max(every + 2, round(minutes * 60.0 / tr_s))
    plan = DemoPlan(volumes=volumes, tr_s=tr_s, every=every)
    plan.check()
    clock = LslClock()
    TappedScanner.made.clear()
    demo_session.SimulatedScanner = TappedScanner  # type: ignore[misc]  # the bench's tap
    try:
        record_demo_session(path, clock, plan, participant="DRIFT01", visit="bench",
                            print_line=lambda text: print(f"  {text}", flush=True))
    finally:
        demo_session.SimulatedScanner = SimulatedScanner  # type: ignore[misc]
    scanner = TappedScanner.made[-1]
    written = {s.index: s.time for s in scanner.sent}
    grid = scanner.scheduled
    recorded = session.open(path)
    triggers = {e.payload["volume"]: e for e in recorded.events_of("trigger")}
    rows = []
    for onset in recorded.events_of("stimulus_onset"):
        volume = int(onset.payload["volume"])
        trigger = triggers.get(volume)
        rows.append({
            "volume": volume,
            "onset": onset.timestamp,
            "trigger": None if trigger is None else trigger.timestamp,
            "trigger_inferred": None if trigger is None else trigger.payload.get("inferred"),
            "written": written.get(volume),
            "scheduled": grid.get(volume),
        })

    def lags(a: str, b: str) -> list[float]:
        return [r[a] - r[b] for r in rows if r[a] is not None and r[b] is not None]

    t0 = rows[0]["onset"] if rows else 0.0
    to_write = [(r["onset"] - t0, r["onset"] - r["written"]) for r in rows
                if r["written"] is not None]
    drift = (float(np.polyfit([t for t, _ in to_write], [d for _, d in to_write], 1)[0])
             * 60.0 * 1e6 if len(to_write) > 2 else float("nan"))
    return {
        "plan": {"minutes": minutes, "volumes": volumes, "tr_s": tr_s, "every": every,
                 "stimuli_planned": len(plan.stimulus_volumes())},
        "status": recorded.status,
        "stimuli": len(rows),
        "triggers_recorded": len(triggers),
        "onset_minus_trigger": stats_ms(lags("onset", "trigger")),
        "onset_minus_write": stats_ms(lags("onset", "written")),
        "write_minus_grid": stats_ms(lags("written", "scheduled")),
        "drift_us_per_min": drift,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run length, real time")
    parser.add_argument("--tr", type=float, default=2.0, help="TR in seconds")
    parser.add_argument("--every", type=int, default=4, help="a stimulus every N volumes")
    parser.add_argument("--keep", type=Path, help="keep the session file here")
    args = parser.parse_args(argv)
    print(f"scanner drift: {args.minutes:g} min of TR {args.tr:g} s in real time, "
          f"heat every {args.every} volumes", flush=True)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub-DRIFT01_ses-bench.h5"
        result = run(args.minutes, args.tr, args.every, path)
        if args.keep:
            shutil.copy(path, args.keep)
    result["env"] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                     "cpus": os.cpu_count(), "load_start": load_start,
                     "load_end": os.getloadavg()}
    print(f"{result['stimuli']} stimuli of {result['plan']['stimuli_planned']} planned, "
          f"{result['triggers_recorded']} triggers recorded, run {result['status']}")
    for name in ("onset_minus_trigger", "onset_minus_write", "write_minus_grid"):
        s = result[name]
        if not s["n"]:
            print(f"{name:<20} no data")
            continue
        within = "yes" if s["within_1ms"] else f"NO ({s['over_1ms']} over)"
        thirds = " / ".join(f"{m:.3f}" for m in s["median_by_third_ms"])
        print(f"{name:<20} n={s['n']:4d}  median {s['median_ms']:.3f} ms  p99 "
              f"{s['p99_ms']:.3f} ms  max {s['max_ms']:.3f} ms  all within 1 ms: {within}"
              f"  (medians of the run's thirds: {thirds} ms)")
    print(f"drift of onset minus write: {result['drift_us_per_min']:+.2f} µs per minute; "
          f"load average {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
          f"({os.cpu_count()} CPUs)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
