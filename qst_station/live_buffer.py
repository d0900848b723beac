"""A bounded, thread-safe ring buffer of timestamped samples for live plots."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np


class LiveBuffer:
    """Keeps the newest ``capacity`` rows of (timestamp, channel values...).

    Producers (device reader threads) call :meth:`append`; the GUI pulls a copy with
    :meth:`snapshot` at its own frame rate. Memory is allocated once.
    """

    def __init__(self, channels: int, capacity: int = 12000) -> None:
        self._data = np.full((capacity, channels + 1), np.nan)
        self._capacity = capacity
        self._count = 0
        self._lock = threading.Lock()

    def append(self, timestamp: float, values: Sequence[float]) -> None:
        with self._lock:
            self._data[self._count % self._capacity] = (timestamp, *values)
            self._count += 1

    def __len__(self) -> int:
        return min(self._count, self._capacity)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, values[n, channels]) in time order, copied."""
        with self._lock:
            n = min(self._count, self._capacity)
            start = self._count % self._capacity if self._count > self._capacity else 0
            rows = np.roll(self._data, -start, axis=0)[:n] if start else self._data[:n].copy()
        return rows[:, 0], rows[:, 1:]

    def latest(self) -> np.ndarray | None:
        with self._lock:
            if not self._count:
                return None
            return self._data[(self._count - 1) % self._capacity].copy()
