"""Scanner drift: stimulus onsets against their volumes' triggers over a long real-time run.

A scanner-locked heat run as ``qst-station run <paradigm> --simulate`` does it, in real
time: a paradigm (``fmri-run``) with a heat stimulus every ``--every`` volumes, every other
one between volumes (``--offset`` seconds after its volume's trigger), runs through
``qst_station.protocol_session.ProtocolSession`` on the simulated scanner and TCS II, with
the HDF5 session writer, the LSL publisher and the simulated ECG (over LSL, this machine
only) running. The session file is then read with ``qst_station.session.open``. For every
stimulus (``stimulus_onset`` with its ``volume`` and ``delay_s``):

* onset minus its scheduled time: its volume's ``trigger`` event (the trigger reader's
  arrival stamp) plus its delay;
* onset minus the moment the simulated scanner wrote that volume's byte, plus the delay;
* the scanner's write minus the volume's place on the scanner's grid (its own lateness).

Each as max, median and p99 in ms, whether all are within 1 ms, and the trend over the run
(the median of each third of the run, and a linear fit of onset minus write against time
in µs per minute, which a few late wake-ups can dominate). All stamps are on
the program clock (``pylsl.local_clock``). ``--path demo`` measures the demo's stimulator
(``qst-station demo``) instead.

Run: ``python bench/scanner_drift.py [--minutes 10] [--tr 2] [--every 4] [--offset 0.5]``.
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

from protocols.files import parse_protocol  # noqa: E402
from qst_station import demo_session, session, simulated_scanner  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from qst_station.demo_session import DemoPlan, record_demo_session  # noqa: E402
from qst_station.protocol_session import ProtocolSession  # noqa: E402
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


def paradigm(volumes: int, tr_s: float, every: int, offset_s: float) -> str:
    """A heat trial on every ``every``-th volume from the 3rd; every other one ``offset_s``
    after its volume's trigger. No ratings: the trials may follow each other closely."""
    trials = "".join(
        f"[[trials]]\nonset_s = {(v - 1) * tr_s + (offset_s if k % 2 else 0.0):.6f}\n"
        "target_c = 45.0\n\n"
        for k, v in enumerate(range(3, volumes - every + 1, every)))
    return (f'[protocol]\nname = "drift-bench"\ntitle = "scanner drift bench"\n'
            f'kind = "fmri-run"\ndevice = "thermode"\n\n[scanner]\ntr_s = {tr_s}\n'
            f"dummy_volumes = 0\nvolumes = {volumes}\n\n[stimulus]\nrise_c_s = 20.0\n"
            f"return_c_s = 20.0\nplateau_s = 2.0\nrating = false\n\n{trials}")


def record(path: Path, minutes: float, tr_s: float, every: int, offset_s: float,
           product: bool) -> tuple[int, int]:
    """Record the run into ``path``; (volumes, stimuli planned)."""
    volumes = max(every + 2, round(minutes * 60.0 / tr_s))
    echo = lambda text: print(f"  {text}", flush=True)  # noqa: E731
    if not product:
        plan = DemoPlan(volumes=volumes, tr_s=tr_s, every=every)
        plan.check()
        demo_session.SimulatedScanner = TappedScanner  # type: ignore[misc]  # the tap
        try:
            record_demo_session(path, LslClock(), plan, participant="DRIFT01",
                                visit="bench", print_line=echo)
        finally:
            demo_session.SimulatedScanner = SimulatedScanner  # type: ignore[misc]
        return volumes, len(plan.stimulus_volumes())
    protocol = parse_protocol(paradigm(volumes, tr_s, every, offset_s), "drift-bench.toml")
    simulated_scanner.SimulatedScanner = TappedScanner  # type: ignore[misc]  # the tap
    try:
        ProtocolSession(protocol, LslClock(), path, seed=0, progress=echo,
                        options={"scanner": {"start_delay_s": 2.0}}).run()
    finally:
        simulated_scanner.SimulatedScanner = SimulatedScanner  # type: ignore[misc]
    return volumes, len(protocol.trials)


def run(minutes: float, tr_s: float, every: int, path: Path, offset_s: float = 0.5,
        product: bool = True) -> dict[str, Any]:
    TappedScanner.made.clear()
    volumes, planned = record(path, minutes, tr_s, every, offset_s, product)
    scanner = TappedScanner.made[-1]
    written = {s.index: s.time for s in scanner.sent}
    grid = scanner.scheduled
    recorded = session.open(path)
    triggers = {e.payload["volume"]: e for e in recorded.events_of("trigger")}
    rows = []
    for onset in recorded.events_of("stimulus_onset"):
        volume = int(onset.payload["volume"])
        delay = float(onset.payload.get("delay_s", 0.0))
        trigger = triggers.get(volume)
        rows.append({
            "volume": volume,
            "delay_s": delay,
            "onset": onset.timestamp,
            "trigger": None if trigger is None else trigger.timestamp + delay,
            "trigger_inferred": None if trigger is None else trigger.payload.get("inferred"),
            "written": None if volume not in written else written[volume] + delay,
            "scheduled": grid.get(volume),
            "written_raw": written.get(volume),
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
                 "offset_s": offset_s, "path": "fmri-run" if product else "demo",
                 "stimuli_planned": planned},
        "status": recorded.status,
        "stimuli": len(rows),
        "triggers_recorded": len(triggers),
        "onset_minus_trigger": stats_ms(lags("onset", "trigger")),
        "onset_minus_write": stats_ms(lags("onset", "written")),
        "write_minus_grid": stats_ms(lags("written_raw", "scheduled")),
        "drift_us_per_min": drift,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="run length, real time")
    parser.add_argument("--tr", type=float, default=2.0, help="TR in seconds")
    parser.add_argument("--every", type=int, default=4, help="a stimulus every N volumes")
    parser.add_argument("--offset", type=float, default=0.5,
                        help="every other stimulus this long after its volume's trigger (s)")
    parser.add_argument("--path", choices=("fmri-run", "demo"), default="fmri-run",
                        help="the scanner-run path measured")
    parser.add_argument("--keep", type=Path, help="keep the session file here")
    args = parser.parse_args(argv)
    print(f"scanner drift: {args.minutes:g} min of TR {args.tr:g} s in real time, "
          f"heat every {args.every} volumes", flush=True)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sub-DRIFT01_ses-bench.h5"
        result = run(args.minutes, args.tr, args.every, path, args.offset,
                     args.path == "fmri-run")
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
