"""Record LSL streams chosen in the station configuration into the run's :class:`Recording`.

:meth:`LslInletRecorder.connect` resolves the stream (before the run starts), learns its
channels, units and rate from its description and declares the streams it will fill:

* a numeric stream becomes the recording stream ``<name>`` (source ``lsl:<stream>@<host>``)
  whose ``time`` is the sender's own LSL timestamp, unchanged (no clock correction);
* a string stream (markers) becomes events of kind ``note`` (``event_kind``) with payload
  ``{"stream": <name>, "value": <text>, "lsl_time": <sender timestamp>}``, stamped on the
  program clock (sender timestamp + the latest clock offset), like every other event;
* ``<name>.clock_offset`` (1 channel ``offset``, s, irregular, float64) receives
  ``time_correction()`` every 5 s: sender time + offset = program clock, redone offline.

A thread per inlet pulls chunks (blocks of ``poll_s``) and pushes them into the recording.
When the outlet goes away (liblsl reports it lost, or a regular stream is silent for
``lost_after_s``) a ``stream_gap`` event ``{"stream", "state": "lost"}`` is recorded; the
stream is looked up again by its source_id and, when it is back, ``"state": "back"``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.errors import DeviceError, DeviceSilent
from drivers.notifier import Notifier
from qst_station.config import LslInletConfig
from qst_station.lsl_setup import pylsl_module
from qst_station.recording import EVENT_KINDS, Channel, Recording, StreamSpec

CORRECTION_EVERY_S = 5.0
OFFSET_SUFFIX = ".clock_offset"
_MAX_NAME = 64 - len(OFFSET_SUFFIX)
_DTYPES = {"cf_float32": "float32", "cf_double64": "float64", "cf_int8": "int8",
           "cf_int16": "int16", "cf_int32": "int32", "cf_int64": "int64"}


def recording_name(lsl_name: str) -> str:
    """A recording stream name for an LSL stream name (letters, digits, ``_.-``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", lsl_name)
    if not name[:1].isalpha():
        name = f"lsl_{name}"
    return name[:_MAX_NAME]


def channels_of(info: Any) -> tuple[Channel, ...]:
    """Channels from ``desc/channels/channel`` (label, unit), or ``ch1..`` if not described."""
    found: list[Channel] = []
    node = info.desc().child("channels").child("channel")
    while not node.empty():
        found.append(Channel(node.child_value("label"), node.child_value("unit")))
        node = node.next_sibling("channel")
    count = info.channel_count()
    if len(found) != count:
        found = [Channel("", "")] * count
    if count == 1 and not found[0].label:
        found = [Channel(info.type() or "ch1", found[0].unit)]
    return tuple(Channel(c.label or f"ch{i}", c.unit) for i, c in enumerate(found, start=1))


def _lsl_errors(pylsl: Any) -> tuple[type[Exception], type[Exception]]:
    """pylsl's ``LostError`` and ``TimeoutError`` (in ``pylsl.util`` since 1.17)."""
    home = getattr(pylsl, "util", getattr(pylsl, "pylsl", pylsl))
    return home.LostError, home.TimeoutError


class LslInletRecorder:
    """Records the LSL stream named ``stream`` (or with ``prop`` = ``value``) as ``name``."""

    def __init__(self, recording: Recording, stream: str | None = None, *,
                 prop: str | None = None, value: str | None = None, name: str | None = None,
                 resolve_timeout_s: float = 5.0, lost_after_s: float = 2.0,
                 event_kind: str = "note", poll_s: float = 0.1,
                 correction_every_s: float = CORRECTION_EVERY_S) -> None:
        if (stream is None) == (prop is None) or (prop is None) != (value is None):
            raise ValueError("choose the stream by name, or by prop and value")
        if event_kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event_kind!r}")
        self.recording = recording
        self.query = ("name", stream) if stream is not None else (str(prop), str(value))
        self.name = name
        self.resolve_timeout_s = resolve_timeout_s
        self.lost_after_s = lost_after_s
        self.event_kind = event_kind
        self.poll_s = poll_s
        self.correction_every_s = correction_every_s
        self.spec: StreamSpec | None = None  # None for a string stream (events)
        self.offset_spec: StreamSpec | None = None
        self.lost = False
        self.offset_s = 0.0
        self.gaps = 0
        self._pylsl = pylsl_module()
        self._lost_error, self._timeout_error = _lsl_errors(self._pylsl)
        self._dtypes = {getattr(self._pylsl, n): dtype for n, dtype in _DTYPES.items()}
        self._inlet: Any = None
        self._info: Any = None
        self._resolver: Any = None
        self._last_data = 0.0
        self._rows = 256
        self._misfit_told = False
        self._next_correction = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notifier = Notifier(f"lsl-inlet-{name or stream or value}")

    @classmethod
    def from_config(cls, recording: Recording, name: str,
                    config: LslInletConfig) -> LslInletRecorder:
        """The recorder for the station-configuration entry ``devices.<name>``."""
        return cls(recording, config.stream, prop=config.prop, value=config.value,
                   name=recording_name(name), resolve_timeout_s=config.resolve_timeout_s,
                   lost_after_s=config.lost_after_s)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """``callback(kind, message)``: connected, disconnected, lost, warning."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    @property
    def connected(self) -> bool:
        return self._thread is not None

    @property
    def strings(self) -> bool:
        return self.spec is None

    @property
    def _regular(self) -> bool:
        return self.spec is not None and self.spec.nominal_rate > 0

    @property
    def where(self) -> str:
        """``lsl:<stream>@<host>``, the source of what is recorded."""
        return f"lsl:{self._info.name()}@{self._info.hostname()}" if self._info else "lsl:?"

    # -- connect / disconnect ------------------------------------------------------------------
    def connect(self) -> None:
        """Find and open the stream, declare its recording streams, start reading."""
        if self.connected:
            raise DeviceError(f"LSL stream {self.query[1]!r}: already connected")
        prop, value = self.query
        found = self._pylsl.resolve_byprop(prop, value, 1, self.resolve_timeout_s)
        if not found:
            raise DeviceSilent(f"no LSL stream with {prop} {value!r} within "
                               f"{self.resolve_timeout_s:g} s")
        try:
            self._open(found[0])
        except (self._lost_error, self._timeout_error) as error:
            raise DeviceSilent(f"LSL stream with {prop} {value!r} went away while it was "
                               f"being opened ({error})") from None
        try:
            self._declare(self._info)
        except Exception:
            self._drop_inlet()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lsl-inlet-{self.name}",
                                        daemon=True)
        self._thread.start()
        self._notifier.post("connected", f"{self.where} -> {self.name} "
                                         f"(clock offset {self.offset_s * 1000:.3f} ms)")

    def disconnect(self) -> None:
        """Stop reading; the thread closes the inlet and is joined."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3 * self.resolve_timeout_s + self.poll_s + 1.0)
        self._thread = None
        self._notifier.post("disconnected", f"{self.where} closed")

    def _open(self, found: Any) -> None:
        inlet = self._pylsl.StreamInlet(found, max_buflen=60, recover=False)
        self._info = inlet.info(timeout=self.resolve_timeout_s)
        inlet.open_stream(timeout=self.resolve_timeout_s)
        self.offset_s = inlet.time_correction(timeout=self.resolve_timeout_s)
        self._rows = max(256, int(self._info.nominal_srate() * self.poll_s * 4))
        self._inlet, self._last_data = inlet, time.monotonic()

    def _declare(self, info: Any) -> None:
        self.name = self.name or recording_name(info.name())
        source, fmt = self.where, info.channel_format()
        if fmt != self._pylsl.cf_string:
            dtype = self._dtypes.get(fmt)
            if dtype is None:
                raise DeviceError(f"{source}: channel format {fmt} cannot be recorded")
            self.spec = StreamSpec(self.name, channels_of(info), max(0.0, info.nominal_srate()),
                                   source, dtype=dtype, lsl_type=info.type())
            self.recording.add_stream(self.spec)
        self.offset_spec = StreamSpec(self.name + OFFSET_SUFFIX, (Channel("offset", "s"),), 0.0,
                                      source, dtype="float64", lsl_type="ClockOffset")
        self.recording.add_stream(self.offset_spec)

    # -- the reading thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            self._drop_inlet()
            self._resolver = None

    def _read_until_stopped(self) -> None:
        while not self._stop.is_set():
            try:
                if self._inlet is None:
                    self._look_for_stream()
                else:
                    self._pull()
                    self._correct_clock()
            except self._lost_error:
                self._mark_lost("the outlet went away")
                self._drop_inlet()
            except Exception as exc:  # noqa: BLE001 - report, keep recording
                self._notifier.post("warning", f"{self.where}: {type(exc).__name__}: {exc}")
                self._stop.wait(self.poll_s)

    def _pull(self) -> None:
        samples, stamps = self._inlet.pull_chunk(timeout=self.poll_s, max_samples=self._rows)
        now = time.monotonic()
        if stamps:
            self._last_data = now
            if self.lost:
                self._mark_back()
            self._deliver(samples, stamps)
        elif self._regular and not self.lost and now - self._last_data > self.lost_after_s:
            self._mark_lost(f"no samples for {self.lost_after_s:g} s")

    def _deliver(self, samples: list[list[Any]], stamps: list[float]) -> None:
        if self.spec is not None:
            self.recording.push(self.spec.name, stamps, samples)
            return
        for sample, stamp in zip(samples, stamps, strict=True):
            value: Any = sample[0] if len(sample) == 1 else list(sample)
            self.recording.event(self.event_kind, {"stream": self.name, "value": value,
                                                   "lsl_time": stamp}, stamp + self.offset_s)

    def _correct_clock(self) -> None:
        """Every ``correction_every_s`` while the run records: store the clock offset."""
        if time.monotonic() < self._next_correction or self.recording.state != "recording":
            return
        try:
            self.offset_s = self._inlet.time_correction(timeout=min(1.0, self.resolve_timeout_s))
        except self._timeout_error:
            self._notifier.post("warning", f"{self.where}: no clock offset (time-out)")
            return
        finally:
            self._next_correction = time.monotonic() + self.correction_every_s
        assert self.offset_spec is not None
        self.recording.push(self.offset_spec.name, [self.recording.clock.now()],
                            np.array([[self.offset_s]]))

    # -- gaps ------------------------------------------------------------------------------
    def _mark_lost(self, why: str) -> None:
        if self.lost:
            return
        self.lost, self.gaps = True, self.gaps + 1
        self.recording.event("stream_gap", {"stream": self.name, "state": "lost",
                                            "reason": why})
        self._notifier.post("lost", f"{self.where}: {why}; recording continues without it")

    def _mark_back(self) -> None:
        self.lost = False
        self.recording.event("stream_gap", {"stream": self.name, "state": "back"})
        self._notifier.post("connected", f"{self.where}: back")

    def _look_for_stream(self) -> None:
        """While lost: watch for an outlet with the same source_id (or name) and reopen."""
        if self._resolver is None:
            sid = self._info.source_id()
            prop, value = ("source_id", sid) if sid else ("name", self._info.name())
            self._resolver = self._pylsl.ContinuousResolver(prop=prop, value=value,
                                                            forget_after=self.lost_after_s)
            self._misfit_told = False
        results = self._resolver.results()
        found = [i for i in results if self._fits(i)]
        if not found:
            if results and not self._misfit_told:
                self._misfit_told = True
                self._notifier.post("warning", f"{self.where}: back with other channels or "
                                               "format; not recorded (declare a new stream)")
            self._stop.wait(self.poll_s)
            return
        self._resolver = None
        self._open(found[0])
        self._next_correction = 0.0
        self._mark_back()

    def _fits(self, info: Any) -> bool:
        """The same shape as the stream declared (a changed stream cannot be appended)."""
        return (info.channel_count() == self._info.channel_count()
                and info.channel_format() == self._info.channel_format())

    def _drop_inlet(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            inlet.close_stream()
