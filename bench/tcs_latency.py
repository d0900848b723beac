"""TCS II command latency over a real pty, next to a bare pyserial loop on the same machine.

Measures (all on ``time.perf_counter``, in ms):

* ``tcs_E_roundtrip``: ``TcsDriver.temperatures()`` call to return, against ``SimulatedTcs``.
* ``tcs_start_to_L``: ``TcsDriver.start()`` call to the simulator reading ``L`` from the master.
* ``bare_roundtrip``: pyserial writes 1 byte, a thread on the master echoes it, pyserial reads it.
* ``bare_oneway``: pyserial writes 1 byte to the moment a thread on the master reads it.

Run: ``python bench/tcs_latency.py [--n 300]``. Results go to ``bench/results/tcs_latency.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import select  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tty  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import serial  # noqa: E402

from drivers.tcs import TcsDriver  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from sim.pty_link import Receive  # noqa: E402
from sim.tcs import SimulatedTcs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tcs_latency.json"
WARMUP = 10
WAIT_S = 1.0  # give up on one sample after this long (counted as missed, never asserted)
# Idle before each measured call: the driver keeps >= 1 ms between any two characters on the
# wire (the TCS II scans its port once per ms), including across commands, so a call right
# after the previous command would measure that deliberate spacing rather than the latency.
GAP_S = 0.002


# ---------------------------------------------------------------------- statistics


def summarize(samples_s: list[float], missed: int = 0) -> dict[str, float | int]:
    """Median and p99 in ms of samples given in seconds."""
    ms = np.asarray(samples_s) * 1000.0
    return {
        "n": int(ms.size),
        "missed": missed,
        "median_ms": float(np.median(ms)) if ms.size else float("nan"),
        "p99_ms": float(np.percentile(ms, 99)) if ms.size else float("nan"),
    }


# ---------------------------------------------------------------------- driver + simulator


class LTap:
    """Wraps the simulator's receive; stamps the first data with ``L`` after :meth:`arm`."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._armed = False
        self.seen = threading.Event()
        self.stamp = 0.0

    def arm(self) -> None:
        self.seen.clear()
        self._armed = True

    def __call__(self, data: bytes, now: float) -> bytes:
        t = time.perf_counter()
        if self._armed and b"L" in data:
            self._armed = False
            self.stamp = t
            self.seen.set()
        return self._receive(data, now)


def time_call(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds per call of ``fn``, ``n`` times after a short warm-up."""
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(n):
        time.sleep(GAP_S)
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def start_to_l(driver: TcsDriver, tap: LTap) -> float | None:
    """One ``start()``; seconds until the simulator read ``L`` (None if it never did)."""
    tap.arm()
    while driver.busy:  # the previous stimulus is still returning to baseline
        time.sleep(0.001)
    time.sleep(GAP_S)
    t0 = time.perf_counter()
    driver.start()
    seen = tap.seen.wait(WAIT_S)
    driver.abort()
    return tap.stamp - t0 if seen else None


def bench_tcs(n: int) -> dict[str, dict[str, float | int]]:
    """E round trip and start-to-L against the simulator on a pty."""
    clock = LslClock()
    sim = SimulatedTcs(clock)
    tap = LTap(sim.pty._receive)
    sim.pty._receive = tap  # PtyLink keeps its own reference: wrap it before start()
    with sim:
        driver = TcsDriver(sim.port, clock=clock)
        driver.connect()
        try:
            roundtrip = time_call(driver.temperatures, n)
            driver.enable_zones([1])
            driver.configure(1, target=33.0, rise=100.0, ret=100.0, duration_ms=50)
            for _ in range(WARMUP):
                start_to_l(driver, tap)
            raw = [start_to_l(driver, tap) for _ in range(n)]
        finally:
            driver.disconnect()
    oneway = [s for s in raw if s is not None]
    return {
        "tcs_E_roundtrip": summarize(roundtrip),
        "tcs_start_to_L": summarize(oneway, missed=len(raw) - len(oneway)),
    }


# ---------------------------------------------------------------------- bare pyserial


class EchoMaster:
    """A thread on a pty master: stamps each arrival and, if ``echo`` is set, answers it."""

    def __init__(self, master: int) -> None:
        self._master = master
        self.echo = False
        self.seen = threading.Event()
        self.stamp = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bare-master", daemon=True)

    def __enter__(self) -> EchoMaster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            data = os.read(self._master, 4096)
            self.stamp = time.perf_counter()
            if self.echo:
                os.write(self._master, data)
            self.seen.set()


def bare_roundtrip(port: serial.Serial) -> None:
    port.write(b"x")
    port.read(1)


def bare_oneway(port: serial.Serial, master: EchoMaster) -> float | None:
    """Seconds from writing one byte to the master thread reading it (None if it never did)."""
    master.seen.clear()
    time.sleep(GAP_S)
    t0 = time.perf_counter()
    port.write(b"x")
    return master.stamp - t0 if master.seen.wait(WAIT_S) else None


def bench_bare(n: int) -> dict[str, dict[str, float | int]]:
    """The same two measurements over a fresh pty with nothing but pyserial in between."""
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    try:
        with (
            EchoMaster(master_fd) as master,
            serial.Serial(os.ttyname(slave_fd), 115200, timeout=WAIT_S) as port,
        ):
            master.echo = True
            roundtrip = time_call(lambda: bare_roundtrip(port), n)
            master.echo = False
            for _ in range(WARMUP):
                bare_oneway(port, master)
            raw = [bare_oneway(port, master) for _ in range(n)]
    finally:
        os.close(master_fd)
        os.close(slave_fd)
    oneway = [s for s in raw if s is not None]
    return {
        "bare_roundtrip": summarize(roundtrip),
        "bare_oneway": summarize(oneway, missed=len(raw) - len(oneway)),
    }


# ---------------------------------------------------------------------- report


def table(results: dict[str, dict[str, float | int]]) -> str:
    rows = [f"{'measurement':<18} {'n':>5} {'missed':>6} {'median ms':>10} {'p99 ms':>8}"]
    rows.append("-" * len(rows[0]))
    for name, r in results.items():
        rows.append(
            f"{name:<18} {r['n']:>5} {r['missed']:>6} {r['median_ms']:>10.3f} {r['p99_ms']:>8.3f}"
        )
    return "\n".join(rows)


def environment(n: int) -> dict[str, object]:
    return {
        "n": n,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "pyserial": serial.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="iterations per measurement")
    args = parser.parse_args(argv)
    results = {**bench_tcs(args.n), **bench_bare(args.n)}
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"env": environment(args.n), "results": results}, indent=2))
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
