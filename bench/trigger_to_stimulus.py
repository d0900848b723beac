"""Trigger to stimulus: a scanner trigger byte on one pty to the TCS II ``L`` on another.

The real path of a scanner-locked run, with the recorder and the LSL outlets running: the
simulated scanner writes its trigger character on its pty; ``SerialTriggerSource`` stamps
and counts it; on scheduled volumes the demo's stimulator (a time-critical trigger
subscriber) sends ``L`` to the simulated TCS II (pre-configured and verified, so only
``L`` goes out); a tap on the TCS simulator's receive stamps the moment ``L`` is read from
the pty master. Both ends are stamped on the same system-wide monotonic clock
(``pylsl.local_clock``; ``time.perf_counter`` for the hops). Next to it, in the same run:
a bare pyserial one-byte write to a master thread reading it (``bench/tcs_latency.py``'s
bare loop).

Where the simulators run (``--sims``):

* ``process`` (the figure to judge): both simulators in a child process, as real devices
  are outside the program. In the program's process, simulator threads would share its
  GIL: the TCS simulator could not even read ``L`` until the program's thread let go of
  the interpreter, and the scanner's thread would compete with the trigger reader; both
  add latency that real devices do not.
* ``thread``: in the program's process, as ``qst-station demo`` runs them.

``--hops`` adds the time of each hop (it wraps a few calls, which costs microseconds).

Targets (issue 6): median <= 0.5 ms, p99 <= 2 ms.

Run: ``python bench/trigger_to_stimulus.py [--stimuli 200] [--tr 0.15] [--sims both] [--hops]``.
Results go to ``bench/results/trigger_to_stimulus.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tty  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import serial  # noqa: E402
from tcs_latency import WAIT_S, EchoMaster, bare_oneway, summarize  # noqa: E402

from drivers.tcs import TcsDriver  # noqa: E402
from drivers.trigger_box import SerialTriggerSource  # noqa: E402
from drivers.volumes import Volume, VolumeCounter  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from qst_station.demo_session import DemoPlan, _Stimulator  # noqa: E402
from qst_station.lsl_outlets import LslPublisher  # noqa: E402
from qst_station.recorders import record_thermode, record_triggers  # noqa: E402
from qst_station.recording import Recording, SessionInfo  # noqa: E402
from qst_station.session_writer import SessionWriter  # noqa: E402
from sim.scanner import SimulatedScanner  # noqa: E402
from sim.tcs import SimulatedTcs  # noqa: E402

EVERY = 3  # a stimulus on every 3rd volume
START_DELAY_S = 0.5
HOPS = (
    ("written_to_read", "scanner writes the trigger -> trigger reader's read returns"),
    ("read_to_subscriber", "read returns -> stamped, counted, stimulator called"),
    ("subscriber_to_write", "stimulator -> TcsDriver.try_start checks -> L write call"),
    ("write_call", "the write system call of L (call to return)"),
    ("write_to_sim_read", "L write call -> simulator has read L from the master"),
)


class LArrivals:
    """Wraps the TCS simulator's receive: when each ``L`` was read from the pty master."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.perf: list[float] = []

    def __call__(self, data: bytes, now: float) -> bytes:
        if b"L" in data:
            self.perf.append(time.perf_counter())
        return self._receive(data, now)


class Sims:
    """The scanner and the TCS II simulators in this process (threads)."""

    def __init__(self, tr_s: float, volumes: int) -> None:
        clock = LslClock()
        self.tcs = SimulatedTcs(clock)
        self.arrivals = LArrivals(self.tcs.pty._receive)
        self.tcs.pty._receive = self.arrivals  # wrap before start()
        self.scanner = SimulatedScanner(tr_s, volumes=volumes, clock=clock,
                                        start_delay_s=START_DELAY_S)
        self.tcs.start()
        self.ports = (self.scanner.port, self.tcs.port)

    def start_scan(self) -> None:
        self.scanner.start()

    def done(self, timeout: float) -> bool:
        return self.scanner.wait_done(timeout)

    def stop(self) -> tuple[dict[int, float], list[float]]:
        """(volume -> perf_counter of its write, perf_counter of each L read)."""
        self.scanner.stop()
        self.tcs.stop()
        return {s.index: s.perf for s in self.scanner.sent}, list(self.arrivals.perf)


def _serve_sims(conn: Any, tr_s: float, volumes: int) -> None:
    """Child process: the simulators, driven over ``conn``."""
    sims = Sims(tr_s, volumes)
    conn.send(sims.ports)
    conn.recv()  # start
    sims.start_scan()
    sims.done(volumes * tr_s + START_DELAY_S + 5.0)
    conn.send("done")
    conn.recv()  # stop
    conn.send(sims.stop())


class ProcessSims:
    """The same simulators in a child process: outside the program, as real devices are."""

    def __init__(self, tr_s: float, volumes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_sims, args=(child, tr_s, volumes),
                                        name="bench-sims", daemon=True)
        self._process.start()
        self.ports = self._conn.recv()
        self._done = False

    def start_scan(self) -> None:
        self._conn.send("start")

    def done(self, timeout: float) -> bool:
        if not self._done and self._conn.poll(timeout):
            self._done = self._conn.recv() == "done"
        return self._done

    def stop(self) -> tuple[dict[int, float], list[float]]:
        self.done(60.0)
        self._conn.send("stop")
        result = self._conn.recv()
        self._process.join(timeout=5.0)
        return result


class CountedStarts:
    """Counts the starts that could not go out at once (the stimulator's thread waited)."""

    def __init__(self, tcs: TcsDriver) -> None:
        self.count = 0
        start = tcs.start

        def counted(*args: Any, **kwargs: Any) -> None:
            self.count += 1
            start(*args, **kwargs)

        tcs.start = counted  # type: ignore[method-assign]


class HopStamps:
    """perf_counter stamps along the program's path (instance-level wrappers)."""

    def __init__(self) -> None:
        self.read: list[float] = []
        self.subscriber: dict[int, float] = {}
        self.writes: list[tuple[float, float]] = []

    def attach(self, triggers: SerialTriggerSource, stimulator: _Stimulator,
               tcs: TcsDriver) -> None:
        dispatch = triggers._dispatch

        def on_read(now: float, data: bytes) -> None:  # just after the read returned
            self.read.append(time.perf_counter())
            dispatch(now, data)

        triggers._dispatch = on_read  # type: ignore[method-assign]

        def on_volume(volume: Volume) -> None:
            if volume.index in stimulator.schedule and not volume.inferred:
                self.subscriber[volume.index] = time.perf_counter()
            stimulator.on_volume(volume)

        triggers.subscribe(on_volume, first=True)
        transport = tcs._link._transport  # the SerialTransport's one-character write
        write = transport._write_char  # type: ignore[union-attr]

        def timed_write(char: bytes) -> None:
            if char != b"L":
                return write(char)
            t0 = time.perf_counter()
            write(char)
            self.writes.append((t0, time.perf_counter()))
            return None

        transport._write_char = timed_write  # type: ignore[union-attr]

    def per_stimulus(self, sent: dict[int, float], arrivals: list[float]) -> dict[str, list]:
        read, writes = np.array(sorted(self.read)), sorted(self.writes)
        out: dict[str, list[float]] = {name: [] for name, _ in HOPS}
        for volume, sub in sorted(self.subscriber.items()):
            after_read = read[read >= sent.get(volume, np.inf)]
            write = next((w for w in writes if w[0] >= sub), None)
            if volume not in sent or not after_read.size or write is None:
                continue
            arrival = next((a for a in arrivals if a >= write[0]), None)
            if arrival is None:
                continue
            for name, value in zip(
                    [h for h, _ in HOPS],
                    [after_read[0] - sent[volume], sub - after_read[0], write[0] - sub,
                     write[1] - write[0], arrival - write[0]], strict=True):
                out[name].append(value)
        return out


def trigger_to_l(stimuli: int, tr_s: float, tmp: Path, in_process: bool,
                 hops: bool) -> dict[str, Any]:
    """Latencies (s) from each trigger's write to the ``L`` it caused, and the hops."""
    clock = LslClock()
    plan = DemoPlan(volumes=stimuli * EVERY + 2, tr_s=tr_s, every=EVERY, first=EVERY,
                    hold_ms=40, rate_c_per_s=200.0, targets_c=(33.0,))
    recording = Recording(clock)
    writer = SessionWriter(tmp / "bench.h5")
    for subscriber in (writer, LslPublisher(station="bench-trigger")):
        recording.subscribe(subscriber)
    sims = Sims(tr_s, plan.volumes) if in_process else ProcessSims(tr_s, plan.volumes)
    scanner_port, tcs_port = sims.ports
    stamps = HopStamps() if hops else None
    tcs = TcsDriver(tcs_port, clock=clock)
    tcs.connect()
    triggers = SerialTriggerSource(scanner_port, character=b"5", clock=clock,
                                   counter=VolumeCounter(tr_s=tr_s))
    record_thermode(recording, tcs, "TCS II (simulated)")
    record_triggers(recording, triggers)
    stimulator = _Stimulator(tcs, recording, plan)
    waited = CountedStarts(tcs)
    recording.start(SessionInfo("BENCH", "v1", protocol="trigger-to-stimulus"))
    triggers.connect()
    if stamps is not None:
        stamps.attach(triggers, stimulator, tcs)
    else:
        triggers.subscribe(stimulator.on_volume)
    tcs.set_streaming(idle=True, stimulation=True)
    tcs.enable_zones([1, 2, 3, 4, 5])
    stimulator.prepare(33.0)
    sims.start_scan()
    given = 0
    while given < stimuli and not sims.done(0.0):
        stimulator.changed.wait(0.02)  # as the demo waits: no busy loop next to the path
        stimulator.changed.clear()
        if len(stimulator.given) > given:  # program the next one once it is over
            given = len(stimulator.given)
            while tcs.busy:
                clock.sleep(0.005)
            stimulator.prepare(33.0)
    sims.done(10.0)
    stimulator.close()
    triggers.disconnect()
    sent, arrivals = sims.stop()
    recording.stop("success")
    tcs.disconnect()
    writer.wait(10.0)
    times = np.array(sorted(sent.values()))
    latencies = []
    for arrival in arrivals:  # each L answers the newest trigger written before it
        before = times[times <= arrival]
        if before.size:
            latencies.append(arrival - before[-1])
    missed = max(0, len(stimulator.given) - len(latencies))
    result: dict[str, Any] = {"trigger_to_L": summarize(latencies, missed),
                              "started_by_the_waiting_thread": waited.count}
    if stamps is not None:
        result["hops"] = {name: summarize(values)
                          for name, values in stamps.per_stimulus(sent, arrivals).items()}
    return result


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


def line(name: str, s: dict[str, Any]) -> str:
    return (f"{name:<34} n={s['n']:4d} missed={s['missed']}  median {s['median_ms']:.3f} ms"
            f"  p99 {s['p99_ms']:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=200)
    parser.add_argument("--tr", type=float, default=0.15, help="TR in s (short: a fast bench)")
    parser.add_argument("--sims", choices=("process", "thread", "both"), default="both",
                        help="simulators in a child process, in this process, or both runs")
    parser.add_argument("--hops", action="store_true", help="also time each hop")
    args = parser.parse_args()
    result: dict[str, Any] = {"when": datetime.now(UTC).isoformat(), "stimuli": args.stimuli,
                              "tr_s": args.tr, "cpus": os.cpu_count()}
    where = {"process": [False], "thread": [True], "both": [False, True]}[args.sims]
    for in_process in where:
        label = "sims_in_process" if in_process else "sims_in_child_process"
        with tempfile.TemporaryDirectory() as tmp:
            result[label] = trigger_to_l(args.stimuli, args.tr, Path(tmp), in_process,
                                         args.hops)
        print(line(f"trigger_to_L ({label})", result[label]["trigger_to_L"])
              + f"  (waited for the wire: {result[label]['started_by_the_waiting_thread']})")
        for name, text in HOPS if args.hops else ():
            print(line(f"  {name}", result[label]["hops"][name]) + f"  ({text})")
    result["bare_oneway"] = summarize(bare(300))
    print(line("bare_oneway", result["bare_oneway"]))
    print("targets: trigger_to_L median <= 0.5 ms, p99 <= 2 ms")
    out = Path(__file__).parent / "results" / "trigger_to_stimulus.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
