"""Steering a run from another thread: pause/resume, skip a test, repeat a trial, stop."""

from __future__ import annotations

import threading
from pathlib import Path

from protocols.base import Stimulus
from protocols.files import parse_protocol
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.event_feed import EventFeed
from qst_station.protocol_session import ProtocolSession
from tests.test_simulated_run import SHORT, exact_participant


def protocol_session(path: Path, **kw: object) -> ProtocolSession:
    return ProtocolSession(parse_protocol(SHORT, "short.toml"), SimulatedClock(10.0), path,
                           exact_participant(), seed=5, progress=lambda line: None,
                           **kw)  # type: ignore[arg-type]


def on_stimulus(number: int, action: object) -> object:
    """A listener that calls ``action()`` when the ``number``-th stimulus is announced."""
    seen = [0]

    def listener(stimulus: Stimulus) -> None:
        seen[0] += 1
        if seen[0] == number:
            action()  # type: ignore[operator]

    return listener


def test_a_repeated_trial_is_kept_but_not_used(tmp_path: Path) -> None:
    box: list[ProtocolSession] = []
    run = protocol_session(tmp_path / "r.h5",
                           listeners=[on_stimulus(1, lambda: box[0].repeat_trial())])
    box.append(run)
    measures = run.run()
    trials = session.open(tmp_path / "r.h5").trials()
    assert [(t["test"], t.get("discarded", False)) for t in trials] == [
        ("CDT", True), ("CDT", False), ("CDT", False), ("HPT", False), ("HPT", False)]
    cdt = next(m for m in measures if m.name == "CDT")
    assert len(cdt.trials) == 2


def test_a_skipped_test_ends_and_the_next_one_runs(tmp_path: Path) -> None:
    box: list[ProtocolSession] = []
    run = protocol_session(tmp_path / "s.h5",
                           listeners=[on_stimulus(1, lambda: box[0].skip_test())])
    box.append(run)
    measures = run.run()
    s = session.open(tmp_path / "s.h5")
    assert [m.name for m in measures] == ["HPT"]
    assert [t["test"] for t in s.trials()] == ["CDT", "HPT", "HPT"]
    assert any("CDT skipped" in e.payload["message"] for e in s.events_of("note"))


def test_a_pause_holds_before_the_next_stimulus_until_resumed(tmp_path: Path) -> None:
    box: list[ProtocolSession] = []
    feed = EventFeed()
    run = protocol_session(tmp_path / "p.h5", subscribers=[feed],
                           listeners=[on_stimulus(1, lambda: box[0].pause())])
    box.append(run)
    worker = threading.Thread(target=run.run)
    worker.start()
    waited = threading.Event()

    def paused_and_idle() -> bool:
        pauses = [e for e in feed.of_kind("phase") if e.payload["name"] == "pause"]
        trials = feed.of_kind("trial")
        return len(pauses) == 1 and len(trials) == 1

    while not paused_and_idle():
        waited.wait(0.01)
    run.clock.sleep(2.0)  # paused: nothing more happens
    assert len(feed.of_kind("trial")) == 1 and len(feed.of_kind("stimulus_onset")) == 1
    run.resume()
    worker.join(60.0)
    s = session.open(tmp_path / "p.h5")
    assert s.status == "success" and len(s.trials()) == 4
    pauses = [e.payload["state"] for e in s.events_of("phase") if e.payload["name"] == "pause"]
    assert pauses == ["start", "end"]


def test_a_stop_ends_the_run_as_aborted_with_its_reason(tmp_path: Path) -> None:
    box: list[ProtocolSession] = []
    run = protocol_session(tmp_path / "x.h5",
                           listeners=[on_stimulus(2, lambda: box[0].stop("emergency stop"))])
    box.append(run)
    assert run.run() == []
    part = session.open(tmp_path / "x.h5").parts[0]
    assert (part.status, part.reason) == ("aborted", "emergency stop")


def test_a_full_disk_stops_the_run_keeps_what_was_written_and_the_device_safe(
        tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import errno

    import pytest

    from qst_station.session_writer import SessionWriter

    original = SessionWriter._append_events
    calls = [0]

    def append_events(self, events):  # noqa: ANN001, ANN202
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, events)

    monkeypatch.setattr(SessionWriter, "_append_events", append_events)
    run = protocol_session(tmp_path / "full.h5")
    with pytest.raises(RuntimeError, match="No space left on device"):
        run.run()
    assert run.status == "aborted" and "cannot be written" in run.reason
    device = run.station.drivers["thermode-sim"].device
    assert any(c.name == "abort" for c in device.log)  # the thermode was made safe
    s = session.open(tmp_path / "full.h5")  # what was written before is there
    assert s.parts[0].status in ("recording", "interrupted") and s.events


def test_lsl_streams_chosen_for_the_run_are_recorded_along(tmp_path: Path) -> None:
    import uuid

    from sim.ecg import EcgSimulator

    name = f"qst-test-ECG-{uuid.uuid4().hex[:8]}"
    clock = SimulatedClock(10.0)
    ecg = EcgSimulator(250.0, seed=1, clock=clock, name=name, rr_stream=False).start()
    try:
        run = ProtocolSession(parse_protocol(SHORT, "short.toml"), clock, tmp_path / "l.h5",
                              exact_participant(), seed=5, progress=lambda line: None,
                              options={"record_lsl": [name]})
        run.run()
    finally:
        ecg.close()
    s = session.open(tmp_path / "l.h5")
    (recorded,) = [st for n, st in s.streams.items()
                   if st.source.startswith(f"lsl:{name}") and not n.endswith(".clock_offset")]
    assert recorded.lsl_type == "ECG" and len(recorded.time) > 250
