"""A process that records a synthetic session until it is killed (for the kill -9 test).

Prints ``<program-clock time of the newest row pushed> <rows pushed>`` after every push.
"""

from __future__ import annotations

import sys

import numpy as np

from qst_station.clock import LslClock
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
from qst_station.session_writer import SessionWriter


def main(path: str, resume: bool) -> None:
    clock = LslClock()
    recording = Recording(clock)
    recording.add_stream(StreamSpec("ecg", (Channel("ECG", "mV"),), 1000.0, "test"))
    recording.add_stream(StreamSpec("thermode", tuple(Channel(f"zone{i}", "degC")
                                                       for i in range(1, 6)), 100.0, "test"))
    recording.subscribe(SessionWriter(path, resume=resume, flush_interval_s=0.25))
    recording.start(SessionInfo(participant="P001", visit="baseline", protocol="kill-test"))
    rng = np.random.default_rng(1)
    n = 0
    while True:
        t0 = clock.now()
        times = t0 + np.arange(20) / 1000.0
        recording.push("ecg", times, rng.normal(size=(20, 1)))
        recording.push("thermode", times[:2], np.full((2, 5), 32.0))
        recording.event("trigger", {"volume": n})
        n += 20
        print(f"{times[-1]:.6f} {n}", flush=True)
        clock.sleep(0.02)


if __name__ == "__main__":
    main(sys.argv[1], "--resume" in sys.argv)
