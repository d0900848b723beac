"""Trigger to stimulus: a scanner trigger byte on one pty to the TCS II ``L`` on another.

The real path of a scanner-locked run, with the recorder and the LSL outlets running: the
simulated scanner writes its trigger character on its pty; ``SerialTriggerSource`` stamps
and counts it; on scheduled volumes the demo's stimulator thread sends ``L`` to the
simulated TCS II (pre-configured and verified, so only ``L`` goes out); a tap on the TCS
simulator's receive stamps the moment ``L`` arrives. Both ends are stamped on the same
clock (``pylsl.local_clock``). Next to it, in the same run: a bare pyserial one-byte write
to a master thread reading it (``bench/tcs_latency.py``'s bare loop).

Targets (issue 6): median <= 0.5 ms, p99 <= 2 ms.

Run: ``python bench/trigger_to_stimulus.py [--stimuli 200] [--tr 0.15]``.
Results go to ``bench/results/trigger_to_stimulus.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import tty  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import serial  # noqa: E402
from tcs_latency import WAIT_S, EchoMaster, bare_oneway, summarize  # noqa: E402

from drivers.tcs import TcsDriver  # noqa: E402
from drivers.trigger_box import SerialTriggerSource  # noqa: E402
from drivers.volumes import VolumeCounter  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from qst_station.demo_session import DemoPlan, _Stimulator  # noqa: E402
from qst_station.lsl_outlets import LslPublisher  # noqa: E402
from qst_station.recorders import record_thermode, record_triggers  # noqa: E402
from qst_station.recording import Recording, SessionInfo  # noqa: E402
from qst_station.session_writer import SessionWriter  # noqa: E402
from sim.scanner import SimulatedScanner  # noqa: E402
from sim.tcs import SimulatedTcs  # noqa: E402

EVERY = 3  # a stimulus on every 3rd volume


class LArrivals:
    """Wraps the TCS simulator's receive: the clock time of every ``L`` that arrives."""

    def __init__(self, receive, clock: LslClock) -> None:  # noqa: ANN001
        self._receive, self._clock = receive, clock
        self.times: list[float] = []

    def __call__(self, data: bytes, now: float) -> bytes:
        if b"L" in data:
            self.times.append(self._clock.now())
        return self._receive(data, now)


def trigger_to_l(stimuli: int, tr_s: float, tmp: Path) -> tuple[list[float], int]:
    """Latencies (s) from each trigger's write to the ``L`` it caused; how many are missing."""
    clock = LslClock()
    plan = DemoPlan(volumes=stimuli * EVERY + 2, tr_s=tr_s, every=EVERY, first=EVERY,
                    hold_ms=40, rate_c_per_s=200.0, targets_c=(33.0,))
    recording = Recording(clock)
    writer = SessionWriter(tmp / "bench.h5")
    for subscriber in (writer, LslPublisher(station="bench-trigger")):
        recording.subscribe(subscriber)
    tcs_sim = SimulatedTcs(clock)
    arrivals = LArrivals(tcs_sim.pty._receive, clock)
    tcs_sim.pty._receive = arrivals  # wrap before start()
    scanner = SimulatedScanner(tr_s, volumes=plan.volumes, clock=clock, start_delay_s=0.5)
    with tcs_sim:
        tcs = TcsDriver(tcs_sim.port, clock=clock)
        tcs.connect()
        triggers = SerialTriggerSource(scanner.port, character=b"5", clock=clock,
                                       counter=VolumeCounter(tr_s=tr_s))
        record_thermode(recording, tcs, "TCS II (simulated)")
        record_triggers(recording, triggers)
        stimulator = _Stimulator(tcs, recording, plan)
        triggers.subscribe(stimulator.on_volume)
        recording.start(SessionInfo("BENCH", "v1", protocol="trigger-to-stimulus"))
        triggers.connect()
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        stimulator.prepare(33.0)
        done = threading.Event()
        scanner.start()
        given = 0
        while given < stimuli and not done.wait(0.002):
            if len(stimulator.given) > given:  # program the next one once it is over
                given = len(stimulator.given)
                while tcs.busy:
                    clock.sleep(0.002)
                stimulator.prepare(33.0)
            if scanner.wait_done(0.0):
                break
        scanner.wait_done(10.0)
        stimulator.close()
        triggers.disconnect()
        scanner.stop()
        recording.stop("success")
        tcs.disconnect()
    writer.wait(10.0)
    sent = np.array(sorted(scanner.send_times.values()))
    latencies = []
    for arrival in arrivals.times:  # each L answers the newest trigger written before it
        before = sent[sent <= arrival]
        if before.size:
            latencies.append(arrival - before[-1])
    return latencies, max(0, len(stimulator.given) - len(latencies))


def bare(n: int) -> list[float]:
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    try:
        with (EchoMaster(master_fd) as master,
              serial.Serial(os.ttyname(slave_fd), 115200, timeout=WAIT_S) as port):
            samples = [bare_oneway(port, master) for _ in range(n)]
    finally:
        os.close(master_fd)
        os.close(slave_fd)
    return [s for s in samples if s is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=200)
    parser.add_argument("--tr", type=float, default=0.15, help="TR in s (short: a fast bench)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        latencies, missed = trigger_to_l(args.stimuli, args.tr, Path(tmp))
    result = {"trigger_to_L": summarize(latencies, missed), "bare_oneway": summarize(bare(300)),
              "when": datetime.now(UTC).isoformat()}
    for name, s in result.items():
        if isinstance(s, dict):
            print(f"{name:<14} n={s['n']:4d} missed={s['missed']}  median {s['median_ms']:.3f} ms"
                  f"  p99 {s['p99_ms']:.3f} ms")
    print("targets: trigger_to_L median <= 0.5 ms, p99 <= 2 ms")
    out = Path(__file__).parent / "results" / "trigger_to_stimulus.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
