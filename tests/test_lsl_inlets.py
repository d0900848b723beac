"""Recording LSL streams chosen in the station configuration (LSL confined by conftest)."""

from __future__ import annotations

import gc
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.errors import DeviceSilent
from qst_station import session
from qst_station.clock import LslClock
from qst_station.config import parse_config
from qst_station.lsl_inlets import LslInletRecorder, channels_of, recording_name
from qst_station.lsl_setup import pylsl_module
from qst_station.recording import Channel, Event, Recording, SessionInfo, StreamSpec, Subscriber
from qst_station.session_writer import SessionWriter
from tests.helpers import wait_for

pylsl = pylsl_module()
FAST = {"resolve_timeout_s": 2.0, "poll_s": 0.05}


class Collect(Subscriber):
    """Keeps what the recording hands on."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.times: dict[str, list[float]] = {}

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        self.times.setdefault(spec.name, []).extend(timestamps.tolist())

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def gaps(self) -> list[str]:
        return [e.payload["state"] for e in self.events if e.kind == "stream_gap"]


def _info(name: str, kind: str = "ECG", channels: int = 2, rate: float = 100.0,
          fmt: Any = None) -> Any:
    info = pylsl.StreamInfo(name, kind, channels, rate,
                            pylsl.cf_float32 if fmt is None else fmt, f"test-{name}")
    node = info.desc().append_child("channels")
    for i in range(channels):
        channel = node.append_child("channel")
        channel.append_child_value("label", f"lead{i + 1}")
        channel.append_child_value("unit", "mV")
    return info


@pytest.fixture
def name() -> str:
    return f"qst-test-ecg-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def clock() -> LslClock:
    return LslClock()


@pytest.fixture
def outlet(name: str) -> Iterator[Any]:
    yield pylsl.StreamOutlet(_info(name))


def _start(recording: Recording, recorder: LslInletRecorder, *subscribers: Subscriber) -> None:
    recorder.connect()
    for subscriber in subscribers:
        recording.subscribe(subscriber)
    recording.start(SessionInfo("P001", "baseline"))


def test_samples_keep_sender_timestamps_and_clock_offsets_are_stored(
        tmp_path: Path, name: str, outlet: Any, clock: LslClock) -> None:
    recording = Recording(clock)
    recorder = LslInletRecorder(recording, name, correction_every_s=0.2, **FAST)
    writer = SessionWriter(tmp_path / "s.h5", flush_interval_s=0.05)
    _start(recording, recorder, writer)
    spec = recorder.spec
    assert spec is not None and spec.name == name
    assert spec.channels == (Channel("lead1", "mV"), Channel("lead2", "mV"))
    assert (spec.nominal_rate, spec.lsl_type) == (100.0, "ECG")
    assert spec.source == f"lsl:{name}@{socket.gethostname()}"
    try:
        assert outlet.wait_for_consumers(5.0)
        sent = clock.now() - 30.0 + np.arange(50) / 100.0  # the sender's own stamps
        values = np.column_stack([np.arange(50), -np.arange(50)]).astype(np.float32)
        outlet.push_chunk(values, sent.tolist())
        assert wait_for(lambda: recording.counts[name] == 50, clock, 5.0)
        assert wait_for(lambda: recording.counts[f"{name}.clock_offset"] >= 2, clock, 5.0)
    finally:
        recorder.disconnect()
        recording.stop("success")
    assert writer.wait(10) and writer.error is None
    s = session.open(tmp_path / "s.h5")
    ecg, offsets = s.streams[name], s.streams[f"{name}.clock_offset"]
    assert np.allclose(ecg.time, sent, rtol=0, atol=1e-9)
    assert np.array_equal(ecg.values, values)
    assert (ecg.units, ecg.nominal_rate) == (["mV", "mV"], 100.0)
    assert (offsets.channels, offsets.units, offsets.nominal_rate) == (["offset"], ["s"], 0.0)
    assert offsets.values.dtype == np.float64
    assert np.all(np.abs(offsets.values) < 1e-3)  # one machine: one clock
    assert not recorder.connected and s.events_of("stream_gap") == []


def test_a_vanished_stream_is_a_gap_and_is_recorded_again_when_it_is_back(
        name: str, clock: LslClock) -> None:
    outlet = pylsl.StreamOutlet(_info(name))
    recording, collect = Recording(clock), Collect()
    recorder = LslInletRecorder(recording, name, lost_after_s=0.5, **FAST)
    statuses: list[str] = []
    recorder.on_status(lambda kind, _message: statuses.append(kind))
    _start(recording, recorder, collect)
    try:
        assert outlet.wait_for_consumers(5.0)
        outlet.push_chunk(np.ones((5, 2)), (clock.now() + np.arange(5) / 100).tolist())
        assert wait_for(lambda: recording.counts[name] == 5, clock, 5.0)
        del outlet
        gc.collect()  # the sender stops: its outlet is destroyed
        assert wait_for(lambda: collect.gaps() == ["lost"], clock, 5.0)
        outlet = pylsl.StreamOutlet(_info(name))  # restarted: same source_id
        assert wait_for(lambda: collect.gaps() == ["lost", "back"], clock, 5.0)
        assert outlet.wait_for_consumers(5.0)
        outlet.push_chunk(np.ones((5, 2)), (clock.now() + np.arange(5) / 100).tolist())
        assert wait_for(lambda: recording.counts[name] == 10, clock, 5.0)
    finally:
        recorder.disconnect()
        recording.stop("success")
    gap = [e for e in collect.events if e.kind == "stream_gap"]
    assert gap[0].payload["stream"] == name and gap[0].timestamp < gap[1].timestamp
    assert recorder.gaps == 1 and not recorder.lost
    assert recorder.drain_status() and {"lost", "connected"} <= set(statuses)


def test_a_silent_regular_stream_is_a_gap_until_samples_come_again(
        name: str, outlet: Any, clock: LslClock) -> None:
    recording, collect = Recording(clock), Collect()
    recorder = LslInletRecorder(recording, name, lost_after_s=0.3, **FAST)
    _start(recording, recorder, collect)
    try:
        assert outlet.wait_for_consumers(5.0)
        assert wait_for(lambda: collect.gaps() == ["lost"], clock, 5.0)
        outlet.push_sample([1.0, 2.0], clock.now())
        assert wait_for(lambda: collect.gaps() == ["lost", "back"], clock, 5.0)
    finally:
        recorder.disconnect()
        recording.stop("success")
    assert collect.events[0].payload["reason"] == "no samples for 0.3 s"


def test_a_marker_stream_becomes_note_events_on_the_program_clock(clock: LslClock) -> None:
    name = f"qst-test-markers-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, 0, pylsl.cf_string,
                                                 f"test-{name}"))
    recording, collect = Recording(clock), Collect()
    recorder = LslInletRecorder(recording, prop="source_id", value=f"test-{name}",
                                name="cues", **FAST)
    _start(recording, recorder, collect)
    try:
        assert recorder.strings and list(recording.streams) == ["cues.clock_offset"]
        assert outlet.wait_for_consumers(5.0)
        when = clock.now() - 0.5
        outlet.push_sample(["fixation cross"], when)
        assert wait_for(lambda: any(e.kind == "note" for e in collect.events), clock, 5.0)
    finally:
        recorder.disconnect()
        recording.stop("success")
    note = next(e for e in collect.events if e.kind == "note")
    assert note.payload == {"stream": "cues", "value": "fixation cross", "lsl_time": when}
    assert note.timestamp == pytest.approx(when, abs=1e-3)


def test_a_missing_stream_is_a_clear_error() -> None:
    recording = Recording(LslClock())
    recorder = LslInletRecorder(recording, prop="type", value=f"none-{uuid.uuid4().hex}",
                                resolve_timeout_s=0.3)
    with pytest.raises(DeviceSilent, match="no LSL stream with type 'none-"):
        recorder.connect()
    assert not recorder.connected and recording.streams == {}


def test_names_channels_and_the_configuration_entry() -> None:
    assert recording_name("Polar H10 (ECG)") == "Polar_H10__ECG_"
    assert recording_name("1-ecg") == "lsl_1-ecg"
    assert len(recording_name("x" * 100) + ".clock_offset") == 64
    bare = pylsl.StreamInfo("x", "EDA", 1, 10, pylsl.cf_float32, "x")
    assert channels_of(bare) == (Channel("EDA", ""),)
    assert channels_of(pylsl.StreamInfo("x", "", 2, 10, pylsl.cf_float32, "x")) == (
        Channel("ch1", ""), Channel("ch2", ""))
    config = parse_config('[devices.ecg]\ndriver = "lsl-inlet"\nprop = "type"\nvalue = "ECG"\n'
                          "lost_after_s = 1.5\n")
    recorder = LslInletRecorder.from_config(Recording(LslClock()), "ecg", config.devices["ecg"])
    assert (recorder.query, recorder.name, recorder.lost_after_s) == (("type", "ECG"), "ecg", 1.5)
    with pytest.raises(ValueError, match="by name, or by prop and value"):
        LslInletRecorder(Recording(LslClock()), "x", prop="type", value="ECG")
