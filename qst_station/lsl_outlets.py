"""Publish a run on LSL: every event as a JSON marker, and the streams marked ``publish``.

:class:`LslPublisher` is a :class:`~qst_station.recording.Subscriber`. Outlets are created
when the run starts (streams declared later get theirs at once) and closed when it stops;
their ``source_id`` depends only on the station, the host and the stream, so a recorder
(LabRecorder, another station) picks them up again after a restart. Pushing is a
non-blocking liblsl call; samples and events keep their own timestamps (program clock =
LSL's ``local_clock()``). The streams are described in ``docs/lsl.md``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from drivers.notifier import Notifier
from qst_station import __version__
from qst_station.lsl_setup import pylsl_module
from qst_station.recording import Event, SessionInfo, StreamSpec, Subscriber

MARKER_STREAM = "qst-station-markers"
STREAM_PREFIX = "qst-station-"
DEFAULT_TYPES = {"thermode": "Temperature", "pressure": "Pressure", "cuff": "Pressure",
                 "algometer": "Force", "ecg": "ECG", "rr": "RR"}
FALLBACK_TYPE = "Misc"


def source_id(station: str, stream: str, host: str | None = None) -> str:
    """The stable LSL source_id of ``stream`` published by ``station`` on ``host``."""
    return f"qst-station/{station}@{host or socket.gethostname()}/{stream}"


def lsl_type(spec: StreamSpec) -> str:
    """The LSL content type of a published stream: ``spec.lsl_type`` or one by name."""
    return spec.lsl_type or DEFAULT_TYPES.get(spec.name.lower(), FALLBACK_TYPE)


def marker_text(event: Event) -> str:
    """``{"kind": ..., **payload}`` as compact JSON.

    A payload field itself named ``kind`` (the ``response`` event's press/release) is sent
    as ``payload_kind`` so it cannot hide the event's kind.
    """
    payload = dict(event.payload)
    if "kind" in payload:
        payload["payload_kind"] = payload.pop("kind")
    return json.dumps({"kind": event.kind, **payload}, separators=(",", ":"), default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _append_values(parent: Any, name: str, values: Mapping[str, str]) -> None:
    node = parent.append_child(name)
    for key, value in values.items():
        node.append_child_value(key, str(value))


def _append_channels(desc: Any, channels: Iterable[tuple[str, str, str]]) -> None:
    node = desc.append_child("channels")
    for label, unit, kind in channels:
        _append_values(node, "channel", {"label": label, "unit": unit, "type": kind})


def _session_fields(info: SessionInfo) -> dict[str, str]:
    return {"participant": info.participant, "visit": info.visit,
            "session_id": info.session_id, "site": info.site, "protocol": info.protocol}


class LslPublisher(Subscriber):
    """Publishes the run's events as markers and its ``publish=True`` streams as data."""

    def __init__(self, station: str = "qst-station", marker_name: str = MARKER_STREAM,
                 host: str | None = None) -> None:
        self.station = station
        self.marker_name = marker_name
        self.host = host or socket.gethostname()
        self._pylsl = pylsl_module()
        self._info: SessionInfo | None = None
        self._pending: list[StreamSpec] = []
        self._marker: Any = None
        self._outlets: dict[str, Any] = {}  # recording stream name -> StreamOutlet
        self._lock = threading.Lock()
        self._notifier = Notifier("lsl-publisher")

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    @property
    def published(self) -> list[str]:
        """Names of the LSL streams open now (markers first)."""
        with self._lock:
            names = [self.marker_name] if self._marker is not None else []
            return names + [self.stream_name(name) for name in self._outlets]

    def stream_name(self, name: str) -> str:
        """The LSL name of the recording stream ``name``."""
        return f"{STREAM_PREFIX}{name}"

    def source_id(self, lsl_name: str) -> str:
        return source_id(self.station, lsl_name, self.host)

    # -- subscriber --------------------------------------------------------------------------
    def on_stream(self, spec: StreamSpec) -> None:
        if not spec.publish:
            return
        with self._lock:
            info = self._info
            if info is None:
                self._pending.append(spec)
                return
        self._open_stream(spec, info)

    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
        """Open the marker outlet and the outlets of the streams declared so far."""
        marker = self._pylsl.StreamOutlet(self._marker_info(info))
        with self._lock:
            self._info, self._marker = info, marker
            pending, self._pending = self._pending, []
        for spec in pending:
            self._open_stream(spec, info)
        self._notifier.post("connected", f"LSL: publishing {', '.join(self.published)}")

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        with self._lock:
            outlet = self._outlets.get(spec.name)
            if outlet is not None:
                outlet.push_chunk(np.ascontiguousarray(values, dtype=np.float32),
                                  np.asarray(timestamps, dtype=np.float64).tolist())

    def on_event(self, event: Event) -> None:
        text = marker_text(event)
        with self._lock:
            if self._marker is not None:
                self._marker.push_sample([text], event.timestamp)

    def on_stop(self, status: str, reason: str, stop_time: float) -> None:
        """Close every outlet: inlets see the streams end."""
        with self._lock:
            self._marker, self._outlets, self._info = None, {}, None
        self._notifier.post("disconnected", "LSL: outlets closed")

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait until every open outlet has at least one inlet; False on timeout."""
        with self._lock:
            outlets = [o for o in (self._marker, *self._outlets.values()) if o is not None]
        end = time.monotonic() + timeout_s
        return all(o.wait_for_consumers(max(0.0, end - time.monotonic())) for o in outlets)

    # -- outlets -----------------------------------------------------------------------------
    def _open_stream(self, spec: StreamSpec, info: SessionInfo) -> None:
        outlet = self._pylsl.StreamOutlet(self._stream_info(spec, info))
        with self._lock:
            if self._info is not None:  # not stopped meanwhile
                self._outlets[spec.name] = outlet

    def _marker_info(self, info: SessionInfo) -> Any:
        pylsl = self._pylsl
        stream = pylsl.StreamInfo(self.marker_name, "Markers", 1, pylsl.IRREGULAR_RATE,
                                  pylsl.cf_string, self.source_id(self.marker_name))
        desc = stream.desc()
        _append_channels(desc, [("event", "json", "Markers")])
        self._describe(desc, "recording events", info)
        return stream

    def _stream_info(self, spec: StreamSpec, info: SessionInfo) -> Any:
        pylsl = self._pylsl
        name, kind = self.stream_name(spec.name), lsl_type(spec)
        stream = pylsl.StreamInfo(name, kind, spec.width, spec.nominal_rate, pylsl.cf_float32,
                                  self.source_id(name))
        desc = stream.desc()
        _append_channels(desc, [(c.label, c.unit, kind) for c in spec.channels])
        self._describe(desc, spec.source, info)
        return stream

    def _describe(self, desc: Any, source: str, info: SessionInfo) -> None:
        _append_values(desc, "acquisition", {
            "manufacturer": "qst-station", "source": source,
            "station": self.station, "host": self.host, "software_version": __version__})
        _append_values(desc, "session", _session_fields(info))
