"""Marker latency: from an event in the program to the sample in a separate pylsl inlet.

The program side is the real path: ``Recording.event()`` -> ``LslPublisher`` (a recording
subscriber) -> LSL marker outlet, with the HDF5 writer subscribed too. A second process
opens a plain ``pylsl.StreamInlet`` on the marker stream and stamps each marker with
``pylsl.local_clock()`` when ``pull_sample`` returns; both processes share the machine's
clock, so latency = arrival - event timestamp. Next to it, in the same run, a bare pylsl
outlet pushing the same strings without the recording model.

Run: ``python bench/marker_latency.py [--n 500] [--interval-ms 5]``.
Results go to ``bench/results/marker_latency.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from qst_station.clock import LslClock  # noqa: E402
from qst_station.lsl_outlets import LslPublisher  # noqa: E402
from qst_station.lsl_setup import pylsl_module  # noqa: E402
from qst_station.recording import Recording, SessionInfo  # noqa: E402
from qst_station.session_writer import SessionWriter  # noqa: E402

INLET = r"""
import sys
from qst_station.lsl_setup import pylsl_module
pylsl = pylsl_module()
name, n = sys.argv[1], int(sys.argv[2])
found = pylsl.resolve_byprop("name", name, 1, 10.0)
if not found:
    sys.exit(f"no stream {name}")
inlet = pylsl.StreamInlet(found[0], max_buflen=60)
inlet.open_stream(timeout=10.0)
print("ready", flush=True)
for _ in range(n):
    sample, stamp = inlet.pull_sample(timeout=30.0)
    arrived = pylsl.local_clock()
    if sample is None:
        break
    print(f"{stamp!r} {arrived!r}", flush=True)
"""


def _inlet(name: str, n: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", INLET, name, str(n)], text=True,
                            stdout=subprocess.PIPE, env=os.environ.copy())
    return proc


def _collect(proc: subprocess.Popen[str]) -> np.ndarray:
    out, _ = proc.communicate(timeout=120)
    rows = [line.split() for line in out.splitlines() if line.strip()]  # after "ready"
    return np.array([float(b) - float(a) for a, b in rows]) * 1000.0


def _wait_ready(proc: subprocess.Popen[str], outlet_wait: object) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit("the inlet process did not start")
    outlet_wait()  # type: ignore[operator]


def through_recording(n: int, interval_s: float, tmp: Path) -> np.ndarray:
    name = f"bench-markers-{uuid.uuid4().hex[:8]}"
    recording = Recording(LslClock())
    publisher = LslPublisher(station="bench", marker_name=name)
    writer = SessionWriter(tmp / "markers.h5")
    recording.subscribe(writer)
    recording.subscribe(publisher)
    recording.start(SessionInfo("BENCH", "v1", protocol="marker-latency"))
    proc = _inlet(name, n)
    _wait_ready(proc, lambda: publisher.wait_for_consumers(10.0))
    time.sleep(0.2)
    for i in range(n):
        recording.event("stimulus_onset", {"trial": i, "target": 45.0, "unit": "degC"})
        time.sleep(interval_s)
    latencies = _collect(proc)
    recording.stop("success")
    writer.wait(10)
    return latencies


def bare_outlet(n: int, interval_s: float) -> np.ndarray:
    pylsl = pylsl_module()
    name = f"bench-bare-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                                 pylsl.cf_string, name))
    proc = _inlet(name, n)
    _wait_ready(proc, lambda: outlet.wait_for_consumers(10.0))
    time.sleep(0.2)
    text = json.dumps({"kind": "stimulus_onset", "trial": 0, "target": 45.0, "unit": "degC"})
    for _ in range(n):
        outlet.push_sample([text], pylsl.local_clock())
        time.sleep(interval_s)
    return _collect(proc)


def stats(ms: np.ndarray) -> dict[str, float]:
    return {"n": int(len(ms)), "median_ms": float(np.median(ms)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--interval-ms", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        program = stats(through_recording(args.n, args.interval_ms / 1000, Path(tmp)))
    bare = stats(bare_outlet(args.n, args.interval_ms / 1000))
    for label, s in (("event -> inlet (recording model)", program),
                     ("bare pylsl outlet -> inlet", bare)):
        print(f"{label:<34} n={s['n']:4d}  median {s['median_ms']:.3f} ms  "
              f"p99 {s['p99_ms']:.3f} ms  max {s['max_ms']:.3f} ms")
    out = Path(__file__).parent / "results" / "marker_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"recording_model": program, "bare_outlet": bare,
                               "when": datetime.now(UTC).isoformat()}, indent=2))


if __name__ == "__main__":
    main()
