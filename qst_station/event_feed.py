"""The run's events for the GUI: a recording subscriber that keeps them for readers to poll.

Device and runner threads record events; the GUI reads them on its own timer (about 30 Hz)
without ever waiting on those threads. Each reader keeps a cursor:

    feed = EventFeed()
    recording.subscribe(feed)
    cursor = 0
    ...                                  # in a QTimer slot
    events, cursor = feed.since(cursor)  # new events, in the order recorded

The newest ``capacity`` events are kept; a reader that fell further behind gets what is left
(``dropped`` counts what it missed). The run's start (session info) and stop (status, reason)
are kept too.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from qst_station.recording import Event, SessionInfo, Subscriber


@dataclass(frozen=True)
class RunState:
    """Where the run is: ``idle`` (not started), ``recording`` or ``stopped``."""

    state: str = "idle"
    info: SessionInfo | None = None
    start_time: float | None = None
    status: str = ""  # success | aborted | failed, once stopped
    reason: str = ""


class EventFeed(Subscriber):
    """Thread-safe, bounded store of a run's events with per-reader cursors."""

    def __init__(self, capacity: int = 20000) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        self._first = 0  # the number of the oldest event kept
        self._lock = threading.Lock()
        self._state = RunState()
        self.dropped = 0

    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
        with self._lock:
            self._state = RunState("recording", info, start_time)

    def on_event(self, event: Event) -> None:
        with self._lock:
            if len(self._events) == self._events.maxlen:
                self._first += 1
            self._events.append(event)

    def on_stop(self, status: str, reason: str, stop_time: float) -> None:
        with self._lock:
            s = self._state
            self._state = RunState("stopped", s.info, s.start_time, status, reason)

    @property
    def state(self) -> RunState:
        with self._lock:
            return self._state

    def since(self, cursor: int) -> tuple[list[Event], int]:
        """Events recorded since ``cursor`` (0 for all kept) and the cursor for next time."""
        with self._lock:
            end = self._first + len(self._events)
            start = max(cursor, self._first)
            if cursor < self._first:
                self.dropped += self._first - cursor
            items = list(self._events)[start - self._first:] if start < end else []
        return items, end

    def of_kind(self, *kinds: str) -> list[Event]:
        """Every kept event of these kinds (a copy)."""
        with self._lock:
            return [e for e in self._events if e.kind in kinds]
