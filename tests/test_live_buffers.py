"""Live plot buffers: block appends wrap like single appends; a recording feeds them."""

from __future__ import annotations

import numpy as np

from qst_station.clock import LslClock
from qst_station.live_buffer import LiveBuffer, LiveBuffers
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec


def test_extend_matches_row_by_row_appends_across_the_wrap() -> None:
    rng = np.random.default_rng(4)
    by_rows, by_blocks = LiveBuffer(2, capacity=50), LiveBuffer(2, capacity=50)
    t = 0
    for size in (7, 30, 1, 49, 50, 3, 120):
        times = np.arange(t, t + size, dtype=float)
        values = rng.normal(size=(size, 2))
        for row in range(size):
            by_rows.append(times[row], values[row])
        by_blocks.extend(times, values)
        t += size
        a, b = by_rows.snapshot(), by_blocks.snapshot()
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert len(by_blocks) == 50 and by_blocks.latest()[0] == t - 1


def test_live_buffers_keep_the_newest_seconds_of_each_stream() -> None:
    recording = Recording(LslClock())
    live = LiveBuffers(seconds=2.0)
    recording.subscribe(live)
    recording.add_stream(StreamSpec("ecg", (Channel("ECG", "mV"),), 100.0, "t"))
    recording.start(SessionInfo("P1", "v1"))
    times = np.arange(1000) / 100.0
    recording.push("ecg", times, times[:, None])
    stamps, values = live.buffers["ecg"].snapshot()
    assert len(stamps) == 250 and stamps[-1] == 9.99 and values[0, 0] == stamps[0]
    recording.stop("success")
