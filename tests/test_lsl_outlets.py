"""Publishing a run on LSL (confined to this machine by conftest): markers and data streams."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import numpy as np
import pytest

from qst_station.clock import LslClock
from qst_station.lsl_outlets import LslPublisher, lsl_type, marker_text, source_id
from qst_station.lsl_setup import pylsl_module
from qst_station.recording import Channel, Event, Recording, SessionInfo, StreamSpec
from tests.helpers import wait_for

pylsl = pylsl_module()
LOST = pylsl.util.LostError


def _unique() -> str:
    return uuid.uuid4().hex[:8]


def _thermode(tag: str, publish: bool = True) -> StreamSpec:
    return StreamSpec(f"thermode-{tag}", tuple(Channel(f"zone{i}", "degC") for i in range(1, 6)),
                      100.0, "TCS II sim", publish=publish, lsl_type="Temperature")


def _inlet(name: str, recover: bool = True) -> Any:
    found = pylsl.resolve_byprop("name", name, 1, 5.0)
    assert found, f"LSL stream {name!r} not found"
    inlet = pylsl.StreamInlet(found[0], recover=recover)
    inlet.open_stream(timeout=5.0)
    return inlet


def _channels(info: Any) -> list[tuple[str, str]]:
    node, found = info.desc().child("channels").child("channel"), []
    while not node.empty():
        found.append((node.child_value("label"), node.child_value("unit")))
        node = node.next_sibling("channel")
    return found


def _pull_rows(inlet: Any, n: int, clock: LslClock) -> tuple[list[list[float]], list[float]]:
    rows: list[list[float]] = []
    stamps: list[float] = []

    def more() -> bool:
        samples, times = inlet.pull_chunk(timeout=0.05)
        rows.extend(samples)
        stamps.extend(times)
        return len(rows) >= n

    assert wait_for(more, clock, 5.0)
    return rows, stamps


def test_events_and_published_streams_reach_an_independent_inlet() -> None:
    tag, clock = _unique(), LslClock()
    recording = Recording(clock)
    thermode = _thermode(tag)
    recording.add_stream(thermode)
    recording.add_stream(StreamSpec(f"ecg-{tag}", (Channel("ECG", "mV"),), 500.0, "lsl:x"))
    publisher = LslPublisher(station=f"bench-{tag}", marker_name=f"qst-test-markers-{tag}")
    recording.subscribe(publisher)
    info = SessionInfo("P001", "baseline", session_id=f"sid-{tag}")
    recording.start(info)
    try:
        lsl_name = f"qst-station-thermode-{tag}"
        assert publisher.published == [publisher.marker_name, lsl_name]
        markers, data = _inlet(publisher.marker_name), _inlet(lsl_name, recover=False)
        assert publisher.wait_for_consumers(5.0)

        when = clock.now() - 0.25  # an event stamped when it happened, not when it was sent
        recording.event("response", {"source": "buttons", "kind": "press", "value": 1}, when)
        sample, stamp = markers.pull_sample(timeout=5.0)
        assert json.loads(sample[0]) == {"kind": "response", "source": "buttons",
                                         "payload_kind": "press", "value": 1}
        assert stamp == pytest.approx(when, abs=1e-3)

        times = clock.now() - 1.0 + np.arange(20) / 100.0
        values = np.column_stack([32.0 + np.arange(20) / 10 + z for z in range(5)])
        recording.push(thermode.name, times, values)
        rows, stamps = _pull_rows(data, 20, clock)
        assert np.allclose(stamps, times, atol=1e-6)
        assert np.allclose(rows, values, atol=1e-4)

        full = data.info(timeout=5.0)
        assert (full.type(), full.channel_count(), full.nominal_srate()) == ("Temperature", 5, 100)
        assert full.channel_format() == pylsl.cf_float32
        assert full.source_id() == source_id(f"bench-{tag}", lsl_name, socket.gethostname())
        assert _channels(full) == [(f"zone{i}", "degC") for i in range(1, 6)]
        assert full.desc().child("acquisition").child_value("source") == "TCS II sim"
        session = markers.info(timeout=5.0).desc().child("session")
        assert [session.child_value(k) for k in ("participant", "visit", "session_id")] == [
            "P001", "baseline", f"sid-{tag}"]
    finally:
        recording.stop("success")
    assert publisher.published == []
    with pytest.raises(LOST):  # the outlet is gone: an inlet without recovery says so
        for _ in range(50):
            data.pull_chunk(timeout=0.05)


def test_a_stream_declared_after_the_start_gets_its_outlet() -> None:
    tag = _unique()
    recording = Recording(LslClock())
    recording.add_stream(_thermode(tag, publish=False))
    publisher = LslPublisher(station=f"bench-{tag}", marker_name=f"qst-test-markers-{tag}")
    recording.subscribe(publisher)
    recording.start(SessionInfo("P002", "v1"))
    try:
        assert publisher.published == [publisher.marker_name]
        recording.add_stream(StreamSpec(f"pressure-{tag}", (Channel("cuff", "kPa"),), 10.0,
                                        "cuff sim", publish=True))
        assert publisher.published == [publisher.marker_name, f"qst-station-pressure-{tag}"]
    finally:
        recording.stop("aborted", "test")
    assert publisher.published == []


def test_source_ids_depend_on_station_host_and_stream_only() -> None:
    first = LslPublisher(station="bench-2", host="lab-pc")
    again = LslPublisher(station="bench-2", host="lab-pc")
    assert first.source_id("qst-station-markers") == again.source_id("qst-station-markers")
    assert first.source_id("qst-station-markers") == (
        "qst-station/bench-2@lab-pc/qst-station-markers")
    assert source_id("bench-3", "qst-station-markers", "lab-pc") != first.source_id(
        "qst-station-markers")
    assert first.source_id("qst-station-thermode") != first.source_id("qst-station-markers")


def test_marker_json_and_default_types() -> None:
    event = Event(1.5, "trial", {"test": "HPT", "value": np.float32(44.5), "zones": np.arange(2)})
    assert json.loads(marker_text(event)) == {"kind": "trial", "test": "HPT", "value": 44.5,
                                              "zones": [0, 1]}
    assert lsl_type(StreamSpec("thermode", (Channel("z", "degC"),), 1.0, "s")) == "Temperature"
    assert lsl_type(StreamSpec("eda", (Channel("z", "uS"),), 1.0, "s")) == "Misc"
    assert lsl_type(StreamSpec("eda", (Channel("z", "uS"),), 1.0, "s", lsl_type="EDA")) == "EDA"
