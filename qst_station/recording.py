"""One recording model for a run: the HDF5 writer, LSL outlets and live plots subscribe to it.

A run is ``start(info)`` -> stream descriptors (:class:`StreamSpec`, before or after the
start) -> samples and events -> ``stop(status, reason)``. Producers (device threads, LSL
inlets, the protocol runner) call :meth:`Recording.push` and :meth:`Recording.event` from
any thread; each subscriber is called in the producer's thread and must only hand the data
on (queue it), never block. A subscriber that raises is logged and skipped.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from drivers.notifier import call_each
from qst_station import __version__
from qst_station.clock import Clock
from qst_station.privacy import identifying_reason

EXIT_STATUSES = ("success", "aborted", "failed")
EVENT_KINDS = frozenset({
    "stimulus_onset", "stimulus_offset", "rating", "response", "phase", "trigger",
    "trial", "result", "instruction", "note", "stream_gap", "device",
    "cue", "rating_prompt", "rating_timeout",  # scanner runs
})
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


class RecordingError(RuntimeError):
    """A recording was used out of order or fed data that does not fit its descriptor."""


def plain(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars and arrays to Python, NaN and infinities
    to None, mapping keys to strings, anything else unknown to its ``str``."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


@dataclass(frozen=True)
class Channel:
    label: str
    unit: str


@dataclass(frozen=True)
class StreamSpec:
    """One data stream: what its columns are, how fast it comes and where from."""

    name: str  # group name in the file, e.g. "thermode", "pressure", "ecg"
    channels: tuple[Channel, ...]
    nominal_rate: float  # Hz; 0 = irregular
    source: str  # device identity or "lsl:<name>@<host>"
    dtype: str = "float32"
    publish: bool = False  # also send it out as an LSL stream
    lsl_type: str = ""  # LSL content type when published, e.g. "Temperature"

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise RecordingError(f"stream name {self.name!r}: use letters, digits, '_', '.', '-'")
        if not self.channels:
            raise RecordingError(f"stream {self.name!r}: no channels")
        if not self.nominal_rate >= 0:
            raise RecordingError(f"stream {self.name!r}: nominal rate must be >= 0")
        if np.dtype(self.dtype).kind not in "fiu":
            raise RecordingError(f"stream {self.name!r}: dtype {self.dtype!r} is not numeric")

    @property
    def width(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class SessionInfo:
    """Who and what a run is about. Pseudonymous: codes, never names or birth dates."""

    participant: str
    visit: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    site: str = ""
    operator: str = ""
    protocol: str = ""
    station_config: str = ""  # the station configuration in effect (JSON)
    devices: tuple[Mapping[str, str], ...] = ()  # identity, firmware, port per device
    software_version: str = __version__
    simulation: Mapping[str, Any] | None = None  # a simulated participant's true parameters
    # for reference data (root attributes of a new file): sex, age (years), body_sites (JSON)
    participant_details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """Something that happened at ``timestamp`` (program clock), with a plain JSON payload
    (:func:`plain`: numbers, strings, booleans, None, lists and string-keyed mappings)."""

    timestamp: float
    kind: str
    payload: Mapping[str, Any]


class Subscriber:
    """Receives a run as it happens. Override what you need; each call must return quickly."""

    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None: ...

    def on_stream(self, spec: StreamSpec) -> None: ...

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        ...

    def on_event(self, event: Event) -> None: ...

    def on_stop(self, status: str, reason: str, stop_time: float) -> None: ...


class Recording:
    """The run's single source of truth; thread-safe."""

    def __init__(self, clock: Clock, refuse_identifying_codes: bool = False) -> None:
        self.clock = clock
        self.refuse_identifying_codes = refuse_identifying_codes
        self.info: SessionInfo | None = None
        self.state = "idle"  # idle -> recording -> stopped
        self.streams: dict[str, StreamSpec] = {}
        self.counts: dict[str, int] = {}
        self._subscribers: tuple[Subscriber, ...] = ()
        # One lock orders every hand-off: nothing is pushed after on_stop, and a stream
        # reaches the subscribers (on_stream) before any of its samples.
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber before the start; returns the call that removes it."""
        with self._lock:
            if self.state != "idle":
                raise RecordingError("subscribe before the run starts")
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def start(self, info: SessionInfo) -> None:
        """Start the run. Each subscriber first hears of the streams declared so far, then
        ``on_start``; a subscriber that cannot start (the file cannot be created) raises here
        and the run does not start."""
        with self._lock:
            if self.state != "idle":
                raise RecordingError(f"cannot start: the run is {self.state}")
            why = identifying_reason(info.participant) if self.refuse_identifying_codes else None
            if why:
                raise RecordingError(f"{why}; use a pseudonymous code")
            started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            now = self.clock.now()
            info = replace(info, simulation=plain(info.simulation) if info.simulation else None)
            done: list[Subscriber] = []
            for subscriber in self._subscribers:
                try:
                    for spec in self.streams.values():
                        subscriber.on_stream(spec)
                    subscriber.on_start(info, started, now)
                except Exception as error:
                    # the others that started are told the run failed, then the caller is
                    call_each([s.on_stop for s in done], "failed",
                              f"the run did not start: {error}", now)
                    raise
                done.append(subscriber)
            self.info, self.state = info, "recording"

    def add_stream(self, spec: StreamSpec) -> None:
        """Declare a stream (before the start is best: files are laid out then)."""
        with self._lock:
            if self.state == "stopped":
                raise RecordingError("the run has stopped")
            if spec.name in self.streams:
                raise RecordingError(f"stream {spec.name!r} is already declared")
            if self.state == "recording":
                self._each("on_stream", spec)
            self.streams[spec.name] = spec
            self.counts[spec.name] = 0

    def push(self, name: str, timestamps: Sequence[float] | np.ndarray,
             values: Sequence[Sequence[float]] | np.ndarray) -> None:
        """Rows of one stream: ``timestamps[n]`` on the program clock, ``values[n, channels]``."""
        spec = self.streams.get(name)
        if spec is None:
            raise RecordingError(f"no stream named {name!r}")
        times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        rows = np.asarray(values, dtype=spec.dtype).reshape(len(times), -1)
        if rows.shape[1] != spec.width:
            raise RecordingError(f"stream {name!r}: {rows.shape[1]} values per row, "
                                 f"expected {spec.width}")
        with self._lock:
            if self.state != "recording" or not len(times):
                return
            self.counts[name] += len(times)
            self._each("on_samples", spec, times, rows)

    def event(self, kind: str, payload: Mapping[str, Any] | None = None,
              timestamp: float | None = None) -> Event:
        """Record an event now (or at ``timestamp``) and return it."""
        if kind not in EVENT_KINDS:
            raise RecordingError(f"unknown event kind {kind!r} (one of {sorted(EVENT_KINDS)})")
        event = Event(self.clock.now() if timestamp is None else float(timestamp), kind,
                      plain(dict(payload or {})))
        with self._lock:
            if self.state == "recording":
                self._each("on_event", event)
        return event

    def stop(self, status: str, reason: str = "") -> None:
        if status not in EXIT_STATUSES:
            raise RecordingError(f"exit status must be one of {EXIT_STATUSES}, got {status!r}")
        with self._lock:
            if self.state != "recording":
                raise RecordingError(f"cannot stop: the run is {self.state}")
            self.state = "stopped"
            self._each("on_stop", status, reason, self.clock.now())

    def _each(self, method: str, *args: object) -> None:
        call_each([getattr(s, method) for s in self._subscribers], *args)
