"""Session writer under load, next to plain h5py appending the same blocks in the same run.

Load: ``--scale`` (default 10) times a heavy session: 8-channel ECG at 1 kHz, 6 thermode
channels at 100 Hz, pressure + VAS at 100 Hz and 10 markers/s, produced in real time in
10 ms blocks by producer threads through the recording model into the SWMR writer.

Reports:

* ``sustained``: rows pushed vs rows in the file after the stop (must be equal: zero lost),
  the writer's queue-to-disk lag, and resident memory sampled every 0.5 s (first vs last
  quarter of the run: bounded memory means no growth).
* ``throughput``: the same blocks pushed as fast as possible, rows/s until the file is closed,
  vs plain h5py (no SWMR, no queue) appending the identical blocks to identical datasets, one
  by one and in 0.25 s batches (what the writer does with its queue).

Run: ``python bench/recording_throughput.py [--seconds 20] [--scale 10]``.
Results go to ``bench/results/recording_throughput.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from qst_station import session  # noqa: E402
from qst_station.clock import LslClock  # noqa: E402
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec  # noqa: E402
from qst_station.session_writer import SessionWriter  # noqa: E402

BLOCK_S = 0.01
STREAMS = {  # name: (channels, rate at scale 1)
    "ecg": (8, 1000.0),
    "thermode": (6, 100.0),
    "pressure": (2, 100.0),
}


def specs(scale: int) -> list[StreamSpec]:
    return [StreamSpec(f"{name}{copy}", tuple(Channel(f"ch{i}", "u") for i in range(width)),
                       rate, "bench")
            for copy in range(scale) for name, (width, rate) in STREAMS.items()]


def blocks(spec: StreamSpec, n_blocks: int, t0: float) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = int(round(spec.nominal_rate * BLOCK_S))
    rng = np.random.default_rng(len(spec.name))
    data = rng.normal(size=(rows, spec.width)).astype(np.float32)
    return [(t0 + (b * rows + np.arange(rows)) / spec.nominal_rate, data)
            for b in range(n_blocks)]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_recording(path: Path, scale: int) -> tuple[Recording, SessionWriter]:
    recording = Recording(LslClock())
    for spec in specs(scale):
        recording.add_stream(spec)
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(SessionInfo("BENCH", "v1", protocol="bench"))
    return recording, writer


def sustained(path: Path, seconds: float, scale: int) -> dict[str, object]:
    recording, writer = start_recording(path, scale)
    n_blocks = int(seconds / BLOCK_S)
    t0 = recording.clock.now()
    plan = {s.name: blocks(s, n_blocks, t0) for s in recording.streams.values()}
    memory: list[float] = []
    begin = time.perf_counter()
    for b in range(n_blocks):
        for name, stream_blocks in plan.items():
            recording.push(name, *stream_blocks[b])
        if b % 10 == 0:
            recording.event("note", {"block": b})
        if b % 50 == 0:
            memory.append(rss_mib())
        delay = begin + (b + 1) * BLOCK_S - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    stop_at = time.perf_counter()
    recording.stop("success")
    writer.wait(120)
    lag = time.perf_counter() - stop_at
    pushed = sum(recording.counts.values())
    stored = sum(len(s.time) for s in session.open(path).streams.values())
    quarter = max(1, len(memory) // 4)
    return {"seconds": seconds, "scale": scale, "rows_pushed": pushed, "rows_stored": stored,
            "lost": pushed - stored, "samples_per_s": pushed * 1.0 / seconds,
            "values_per_s": sum(recording.counts[s.name] * s.width
                                for s in recording.streams.values()) / seconds,
            "stop_to_closed_s": lag,
            "rss_first_quarter_mib": float(np.mean(memory[:quarter])),
            "rss_last_quarter_mib": float(np.mean(memory[-quarter:])),
            "writer_error": writer.error}


def writer_throughput(path: Path, n_blocks: int, scale: int) -> float:
    recording, writer = start_recording(path, scale)
    plan = {s.name: blocks(s, n_blocks, 0.0) for s in recording.streams.values()}
    begin = time.perf_counter()
    for b in range(n_blocks):
        for name, stream_blocks in plan.items():
            recording.push(name, *stream_blocks[b])
    recording.stop("success")
    writer.wait(300)
    return sum(recording.counts.values()) / (time.perf_counter() - begin)


def plain_h5py_throughput(path: Path, n_blocks: int, scale: int, batch: int = 1) -> float:
    """The same blocks appended with plain h5py (same chunking, no SWMR), ``batch`` at a time."""
    all_specs = specs(scale)
    plan = {s.name: _batched(blocks(s, n_blocks, 0.0), batch) for s in all_specs}
    n_blocks = len(next(iter(plan.values())))
    rows = 0
    begin = time.perf_counter()
    with h5py.File(path, "w") as handle:
        sets = {}
        for s in all_specs:
            chunk = max(64, 65536 // (4 * s.width))
            sets[s.name] = (
                handle.create_dataset(f"{s.name}/time", (0,), maxshape=(None,), dtype="f8",
                                      chunks=(8192,)),
                handle.create_dataset(f"{s.name}/values", (0, s.width),
                                      maxshape=(None, s.width), dtype="f4",
                                      chunks=(chunk, s.width)))
        for b in range(n_blocks):
            for name, stream_blocks in plan.items():
                times, values = stream_blocks[b]
                t_ds, v_ds = sets[name]
                n = t_ds.shape[0]
                v_ds.resize(n + len(times), axis=0)
                v_ds[n:] = values
                t_ds.resize(n + len(times), axis=0)
                t_ds[n:] = times
                rows += len(times)
    return rows / (time.perf_counter() - begin)


def _batched(items: list[tuple[np.ndarray, np.ndarray]], batch: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.concatenate([t for t, _ in items[i:i + batch]]),
             np.concatenate([v for _, v in items[i:i + batch]]))
            for i in range(0, len(items), batch)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--blocks", type=int, default=1000, help="blocks for the throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        result = {"sustained": sustained(tmpdir / "sustained.h5", args.seconds, args.scale)}
        writer_rate = writer_throughput(tmpdir / "writer.h5", args.blocks, args.scale)
        plain_rate = plain_h5py_throughput(tmpdir / "plain.h5", args.blocks, args.scale)
        batched_rate = plain_h5py_throughput(tmpdir / "batched.h5", args.blocks, args.scale,
                                             batch=25)
    result["throughput"] = {"writer_rows_per_s": writer_rate, "plain_h5py_rows_per_s": plain_rate,
                            "plain_h5py_batched_rows_per_s": batched_rate,
                            "ratio": writer_rate / plain_rate,
                            "ratio_to_batched": writer_rate / batched_rate}
    result["machine"] = {"python": platform.python_version(), "h5py": h5py.__version__,
                         "hdf5": h5py.version.hdf5_version, "when": datetime.now(UTC).isoformat()}
    s, t = result["sustained"], result["throughput"]
    print(f"sustained {s['seconds']:g} s at {s['scale']}x: {s['rows_pushed']} rows pushed, "
          f"{s['rows_stored']} stored, lost {s['lost']}; {s['values_per_s'] / 1e3:.0f} k values/s; "
          f"closed {s['stop_to_closed_s']:.2f} s after the stop; RSS "
          f"{s['rss_first_quarter_mib']:.0f} -> {s['rss_last_quarter_mib']:.0f} MiB")
    print(f"throughput: writer {t['writer_rows_per_s'] / 1e3:.0f} k rows/s, plain h5py "
          f"{t['plain_h5py_rows_per_s'] / 1e3:.0f} k rows/s appending the same 10 ms blocks "
          f"(ratio {t['ratio']:.2f}; target >= 0.5), "
          f"{t['plain_h5py_batched_rows_per_s'] / 1e3:.0f} k rows/s appending 0.25 s batches "
          f"as the writer does (ratio {t['ratio_to_batched']:.2f})")
    out = Path(__file__).parent / "results" / "recording_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
