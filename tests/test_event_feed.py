"""The GUI's event feed: cursors, bounded memory, run state."""

from __future__ import annotations

import threading

from qst_station.clock import SimulatedClock
from qst_station.event_feed import EventFeed
from qst_station.recording import Recording, SessionInfo


def test_readers_get_new_events_in_order_with_their_own_cursors() -> None:
    recording = Recording(SimulatedClock())
    feed = EventFeed()
    recording.subscribe(feed)
    assert feed.state.state == "idle"
    recording.start(SessionInfo("P01", "baseline"))
    recording.event("note", {"message": "a"})
    first, cursor_a = feed.since(0)
    recording.event("note", {"message": "b"})
    more, cursor_a = feed.since(cursor_a)
    everything, _ = feed.since(0)
    assert [e.payload["message"] for e in first] == ["a"]
    assert [e.payload["message"] for e in more] == ["b"]
    assert [e.payload["message"] for e in everything] == ["a", "b"]
    assert feed.since(cursor_a) == ([], cursor_a)
    recording.stop("aborted", "operator")
    state = feed.state
    assert (state.state, state.status, state.reason, state.info.participant) == (
        "stopped", "aborted", "operator", "P01")


def test_memory_is_bounded_and_a_late_reader_is_told_what_it_missed() -> None:
    feed = EventFeed(capacity=5)
    recording = Recording(SimulatedClock())
    recording.subscribe(feed)
    recording.start(SessionInfo("P01", "v"))
    threads = [threading.Thread(target=lambda k=k: [recording.event("note", {"n": k * 10 + i})
                                                    for i in range(10)]) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept, cursor = feed.since(0)
    assert len(kept) == 5 and cursor == 30 and feed.dropped == 25
    assert len(feed.of_kind("note")) == 5 and feed.of_kind("trial") == []
