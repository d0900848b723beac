"""Deliver driver status reports and samples to subscribers without letting them hurt.

Status reports go through a queue to a thread of their own, so a subscriber never runs
while a driver holds a lock, and a slow subscriber cannot stall the wire. A subscriber
that raises is logged and skipped; the driver's own threads carry on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def call_each(callbacks: list[Callable[..., Any]], *args: object) -> int:
    """Call every callback with ``args``; returns how many raised (each is logged)."""
    failed = 0
    for callback in list(callbacks):
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a subscriber's bug must not stop a device thread
            failed += 1
            log.exception("subscriber %r raised", callback)
    return failed


class Notifier:
    """Queues ``(kind, message)`` reports and calls the subscribers on its own thread.

    The thread starts with the first report and ends after a few idle seconds.
    """

    IDLE_S = 5.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.callbacks: list[Callable[[str, str], None]] = []
        self.failures = 0
        self._queue: queue.Queue[tuple[str, str] | threading.Event] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def subscribe(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def post(self, kind: str, message: str) -> None:
        self._put((kind, message))

    def drain(self, timeout: float = 2.0) -> bool:
        """Wait until every report posted so far has been delivered."""
        done = threading.Event()
        self._put(done)
        return done.wait(timeout)

    def _put(self, item: tuple[str, str] | threading.Event) -> None:
        with self._lock:
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self.name}-status",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if isinstance(item, threading.Event):
                item.set()
            else:
                self.failures += call_each(self.callbacks, *item)
