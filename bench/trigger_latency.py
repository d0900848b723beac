"""Scanner trigger latency over a real pty, next to a bare pyserial loop on the same machine.

Measures (all on ``time.perf_counter``, in ms, one process):

* ``trigger_to_subscriber``: ``SimulatedScanner`` writes the trigger byte on the pty master
  until a ``SerialTriggerSource`` subscriber receives the volume.
* ``stamp_minus_send``: the volume's timestamp minus the scanner's send time, both on the
  program clock (real time here): how late the driver's arrival stamp is.
* ``bare_write_to_read``: a thread writes 1 byte on the master of a fresh pty until a blocking
  pyserial ``read(1)`` on the slave returns it.

Run: ``python bench/trigger_latency.py [--n 250] [--tr 0.04]``.
Results go to ``bench/results/trigger_latency.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tty  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import serial  # noqa: E402

from drivers.trigger_box import SerialTriggerSource  # noqa: E402
from drivers.volumes import Volume, VolumeCounter  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from sim.scanner import SimulatedScanner  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "trigger_latency.json"
WARMUP = 10  # volumes sent but not measured
WAIT_S = 2.0  # after the last volume is due (a late volume counts as missed, never asserted)


def summarize(samples_s: list[float], missed: int = 0) -> dict[str, float | int]:
    """Median and p99 in ms of samples given in seconds."""
    ms = np.asarray(samples_s) * 1000.0
    return {
        "n": int(ms.size),
        "missed": missed,
        "median_ms": float(np.median(ms)) if ms.size else float("nan"),
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else float("nan"),
    }


def bench_driver(n: int, tr: float) -> dict[str, dict[str, float | int]]:
    """The scanner simulator and the driver, sharing the real clock."""
    clock = LslClock()
    total = WARMUP + n
    received: dict[int, tuple[float, Volume]] = {}

    def on_volume(volume: Volume) -> None:
        received[volume.index] = (time.perf_counter(), volume)

    scanner = SimulatedScanner(tr, total, clock=clock, start_delay_s=0.1)
    source = SerialTriggerSource(scanner.port, clock=clock, counter=VolumeCounter(tr_s=tr))
    source.subscribe(on_volume)
    source.connect()
    try:
        with scanner:
            scanner.wait_done(total * tr + WAIT_S)
            deadline = time.monotonic() + WAIT_S
            while len(received) < total and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        source.disconnect()
    latency, stamp = [], []
    for send in scanner.sent:
        if send.index <= WARMUP or send.index not in received:
            continue
        arrival, volume = received[send.index]
        if not volume.inferred:
            latency.append(arrival - send.perf)
            stamp.append(volume.timestamp - send.time)
    return {
        "trigger_to_subscriber": summarize(latency, missed=n - len(latency)),
        "stamp_minus_send": summarize(stamp, missed=n - len(stamp)),
    }


def bench_bare(n: int, tr: float) -> dict[str, dict[str, float | int]]:
    """The same path with nothing but a master write and a blocking pyserial read."""
    master, slave = os.openpty()
    tty.setraw(slave)
    total = WARMUP + n
    writes: list[float] = []
    reads: list[float] = []

    def writer() -> None:
        for _ in range(total):
            time.sleep(tr)
            writes.append(time.perf_counter())
            os.write(master, b"5")

    try:
        with serial.Serial(os.ttyname(slave), 57600, timeout=0.1) as port:
            thread = threading.Thread(target=writer, name="bare-writer", daemon=True)
            thread.start()
            deadline = time.monotonic() + total * tr + WAIT_S
            while len(reads) < total and time.monotonic() < deadline:
                if port.read(1):
                    reads.append(time.perf_counter())
            thread.join(timeout=WAIT_S)
    finally:
        os.close(master)
        os.close(slave)
    samples = [r - w for w, r in zip(writes[WARMUP:], reads[WARMUP:], strict=False)]
    return {"bare_write_to_read": summarize(samples, missed=n - len(samples))}


def table(results: dict[str, dict[str, float | int]]) -> str:
    rows = [f"{'measurement':<22} {'n':>5} {'missed':>6} {'median ms':>10} {'p99 ms':>8}"]
    rows.append("-" * len(rows[0]))
    for name, r in results.items():
        rows.append(
            f"{name:<22} {r['n']:>5} {r['missed']:>6} {r['median_ms']:>10.3f} {r['p99_ms']:>8.3f}"
        )
    return "\n".join(rows)


def environment(n: int, tr: float) -> dict[str, object]:
    return {
        "n": n,
        "tr_s": tr,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pyserial": serial.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=250, help="measured triggers per loop")
    parser.add_argument("--tr", type=float, default=0.04,
                        help="seconds between triggers (well above any latency spike)")
    args = parser.parse_args(argv)
    results = {**bench_driver(args.n, args.tr), **bench_bare(args.n, args.tr)}
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"env": environment(args.n, args.tr), "results": results},
                                  indent=2))
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
