"""A bounded, thread-safe ring buffer of timestamped samples for live plots."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from qst_station.recording import StreamSpec, Subscriber


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

    def extend(self, timestamps: np.ndarray, values: np.ndarray) -> None:
        """Append a block of rows (``values[n, channels]``)."""
        rows = np.column_stack([timestamps, values])[-self._capacity:]
        with self._lock:
            start = self._count % self._capacity
            first = min(len(rows), self._capacity - start)
            self._data[start:start + first] = rows[:first]
            self._data[:len(rows) - first] = rows[first:]
            self._count += len(rows)

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


class LiveBuffers(Subscriber):
    """A recording subscriber keeping the newest ``seconds`` of every stream for live plots."""

    def __init__(self, seconds: float = 30.0, irregular_capacity: int = 12000) -> None:
        self.seconds = seconds
        self.irregular_capacity = irregular_capacity
        self.buffers: dict[str, LiveBuffer] = {}

    def on_stream(self, spec: StreamSpec) -> None:
        rate = spec.nominal_rate
        capacity = int(rate * self.seconds * 1.25) if rate > 0 else self.irregular_capacity
        self.buffers[spec.name] = LiveBuffer(spec.width, max(capacity, 16))

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        buffer = self.buffers.get(spec.name)
        if buffer is not None:
            buffer.extend(timestamps, values)
