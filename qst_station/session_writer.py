"""The HDF5 session writer: a :class:`~qst_station.recording.Subscriber` with its own thread.

Producers only queue; the writer thread appends in blocks and flushes every
``flush_interval_s`` (0.25 s), in HDF5's SWMR mode, so a killed process leaves a valid file
holding everything up to the last flush. A run is one *part* of the session file; continuing
an interrupted session (``resume=True``) adds the next part and overwrites nothing. The
layout is documented in ``docs/session-format.md``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import h5py
import numpy as np

from qst_station import __version__
from qst_station.h5_recovery import clear_status_flags, lock_path, opens_plainly, writer_alive
from qst_station.recording import Event, SessionInfo, StreamSpec, Subscriber

log = logging.getLogger(__name__)

FORMAT_NAME = "qst-station-session"
FORMAT_VERSION = "1.0"
EVENT_DTYPE = np.dtype([("time", "f8"), ("kind", "S24"), ("offset", "i8"), ("length", "i4")])
_CHUNK_BYTES = 64 * 1024


class SessionFileError(RuntimeError):
    """The session file cannot be created or continued."""


class SessionWriter(Subscriber):
    """Writes a run into ``path``; ``resume`` continues an existing file of the same visit."""

    def __init__(self, path: str | Path, resume: bool = False, flush_interval_s: float = 0.25,
                 compression: int | None = None) -> None:
        self.path = Path(path)
        self.resume = resume
        self.flush_interval_s = flush_interval_s
        self.compression = compression  # gzip level, None = uncompressed
        self.part_name = ""
        self.error: str | None = None
        self.rows_written: dict[str, int] = {}
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._file: h5py.File | None = None
        self._lock_handle: IO[str] | None = None
        self._thread: threading.Thread | None = None
        self._datasets: dict[str, tuple[h5py.Dataset, h5py.Dataset]] = {}
        self._pending: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._events: list[Event] = []
        self._done = threading.Event()

    # -- subscriber side (producer threads) -----------------------------------------------
    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
        """Create (or continue) the file and start the writer thread; raises if it cannot."""
        self._take_lock()
        try:
            self._file = self._open_file(info)
            self.part_name = self._new_part(info, started_utc, start_time).name
            self._layout_streams(self._declared_streams())
        except Exception:
            if self._file is not None:
                self._file.close()
            self._release_lock()
            raise
        self._thread = threading.Thread(target=self._run, name="session-writer", daemon=True)
        self._thread.start()

    def on_stream(self, spec: StreamSpec) -> None:
        self._queue.put(("stream", spec))

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        self._queue.put(("samples", (spec.name, timestamps, values)))

    def on_event(self, event: Event) -> None:
        self._queue.put(("event", event))

    def on_stop(self, status: str, reason: str, stop_time: float) -> None:
        self._queue.put(("stop", (status, reason, stop_time)))

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until the writer has finished after ``on_stop``; False on timeout."""
        return self._done.wait(timeout)

    # -- file layout -----------------------------------------------------------------------
    def _open_file(self, info: SessionInfo) -> h5py.File:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = h5py.File(self.path, "x", libver="latest")
            handle.attrs.update({
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "software_version": info.software_version, "session_id": info.session_id,
                "participant": info.participant, "visit": info.visit, "site": info.site})
            handle.create_group("parts")
            return handle
        if not self.resume:
            raise SessionFileError(f"{self.path} exists: continue it with resume, "
                                   "or choose another file")
        if not opens_plainly(self.path):
            clear_status_flags(self.path, lock_is_mine=True)
        handle = h5py.File(self.path, "a", libver="latest")
        same = (handle.attrs.get("format") == FORMAT_NAME
                and handle.attrs.get("participant") == info.participant
                and handle.attrs.get("visit") == info.visit)
        if not same:
            handle.close()
            raise SessionFileError(f"{self.path} is not a session of participant "
                                   f"{info.participant!r}, visit {info.visit!r}")
        return handle

    def _new_part(self, info: SessionInfo, started_utc: str, start_time: float) -> h5py.Group:
        assert self._file is not None
        parts = self._file["parts"]
        part = parts.create_group(f"{len(parts) + 1:03d}")
        part.attrs.update({
            "status": "recording", "started_utc": started_utc, "start_time": start_time,
            "protocol": info.protocol, "operator": info.operator,
            "station_config": info.station_config, "software_version": __version__,
            "devices": json.dumps([dict(d) for d in info.devices]),
            "simulation": json.dumps(info.simulation) if info.simulation else ""})
        part.create_group("streams")
        events = part.create_group("events")
        events.create_dataset("table", shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE,
                              chunks=(1024,))
        events.create_dataset("payload", shape=(0,), maxshape=(None,), dtype="u1",
                              chunks=(_CHUNK_BYTES,))
        return part

    def _create_stream(self, spec: StreamSpec) -> None:
        assert self._file is not None
        group = self._file["parts"][self.part_name]["streams"].create_group(spec.name)
        group.attrs.update({
            "channels": json.dumps([c.label for c in spec.channels]),
            "units": json.dumps([c.unit for c in spec.channels]),
            "nominal_rate": spec.nominal_rate, "source": spec.source, "lsl_type": spec.lsl_type})
        rows = max(64, _CHUNK_BYTES // (np.dtype(spec.dtype).itemsize * spec.width))
        options: dict[str, Any] = {}
        if self.compression is not None:
            options = {"compression": "gzip", "compression_opts": self.compression,
                       "shuffle": True}
        times = group.create_dataset("time", shape=(0,), maxshape=(None,), dtype="f8",
                                     chunks=(max(64, _CHUNK_BYTES // 8),), **options)
        values = group.create_dataset("values", shape=(0, spec.width),
                                      maxshape=(None, spec.width), dtype=spec.dtype,
                                      chunks=(rows, spec.width), **options)
        self._datasets[spec.name] = (times, values)
        self.rows_written[spec.name] = 0

    # -- writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # noqa: BLE001 - reported, and the file is closed
            log.exception("session writer failed")
            self.error = f"{type(error).__name__}: {error}"
            self._close(None)
        finally:
            self._done.set()

    def _declared_streams(self) -> list[StreamSpec]:
        """Streams declared before the start (queued just before ``on_start``)."""
        specs: list[StreamSpec] = []
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return specs
            if kind == "stream":
                specs.append(item)

    def _layout_streams(self, specs: list[StreamSpec]) -> None:
        assert self._file is not None
        for spec in specs:
            self._create_stream(spec)
        self._file.swmr_mode = True

    def _loop(self) -> None:
        next_flush = time.monotonic() + self.flush_interval_s
        while not self._done.is_set():
            timeout = max(0.0, next_flush - time.monotonic())
            try:
                kind, item = self._queue.get(timeout=timeout)
            except queue.Empty:
                kind = ""
            if kind and self._handle(kind, item):
                return
            if time.monotonic() >= next_flush:
                self._write_pending()
                next_flush = time.monotonic() + self.flush_interval_s

    def _handle(self, kind: str, item: Any) -> bool:
        """Take one queued item; True when the run is finished."""
        if kind == "samples":
            name, times, values = item
            self._pending.setdefault(name, []).append((times, values))
        elif kind == "event":
            self._events.append(item)
        elif kind == "stream":
            self._add_stream_late(item)
        elif kind == "stop":
            self._write_pending()
            self._close(item)
            return True
        return False

    def _write_pending(self) -> None:
        for name, blocks in self._pending.items():
            if blocks:
                self._append(name, blocks)
        self._pending = {name: [] for name in self._pending}
        if self._events:
            self._append_events(self._events)
            self._events = []
        assert self._file is not None
        self._file.flush()

    def _append(self, name: str, blocks: list[tuple[np.ndarray, np.ndarray]]) -> None:
        times_ds, values_ds = self._datasets[name]
        times = np.concatenate([b[0] for b in blocks])
        values = np.concatenate([b[1] for b in blocks])
        start = times_ds.shape[0]
        # values first: a reader trusts ``time``'s length, so it never sees unwritten rows
        values_ds.resize(start + len(times), axis=0)
        values_ds[start:] = values
        times_ds.resize(start + len(times), axis=0)
        times_ds[start:] = times
        self.rows_written[name] += len(times)

    def _append_events(self, events: list[Event]) -> None:
        assert self._file is not None
        group = self._file["parts"][self.part_name]["events"]
        table, payload = group["table"], group["payload"]
        blobs = [json.dumps(e.payload, separators=(",", ":"), default=str).encode()
                 for e in events]
        offset = payload.shape[0]
        rows = np.zeros(len(events), dtype=EVENT_DTYPE)
        for i, (event, blob) in enumerate(zip(events, blobs, strict=True)):
            rows[i] = (event.timestamp, event.kind.encode(), offset, len(blob))
            offset += len(blob)
        data = np.frombuffer(b"".join(blobs), dtype="u1")
        payload.resize(offset, axis=0)
        payload[payload.shape[0] - len(data):] = data
        start = table.shape[0]
        table.resize(start + len(rows), axis=0)
        table[start:] = rows

    def _add_stream_late(self, spec: StreamSpec) -> None:
        """SWMR cannot create datasets: close, reopen, add the stream, SWMR again."""
        self._write_pending()
        assert self._file is not None
        self._file.close()
        self._datasets.clear()
        self._file = h5py.File(self.path, "a", libver="latest")
        streams = self._file["parts"][self.part_name]["streams"]
        for name in streams:
            group = streams[name]
            self._datasets[name] = (group["time"], group["values"])
        self._layout_streams([spec])

    def _close(self, stop: tuple[str, str, float] | None) -> None:
        """Close SWMR mode; on a clean stop reopen plainly and record the exit status."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if stop is not None:
            status, reason, stop_time = stop
            with h5py.File(self.path, "r+", libver="latest") as handle:
                handle["parts"][self.part_name].attrs.update(
                    {"status": status, "reason": reason, "stop_time": stop_time})
        self._release_lock()

    # -- the sidecar lock --------------------------------------------------------------------
    def _take_lock(self) -> None:
        if writer_alive(self.path):
            raise SessionFileError(f"{self.path} is being recorded by another process")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path(self.path), "w")  # noqa: SIM115 - held for the run
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(f"{__version__}\n")
        handle.flush()
        self._lock_handle = handle

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            lock_path(self.path).unlink(missing_ok=True)
            self._lock_handle.close()
            self._lock_handle = None


def attach(recording: Any, path: str | Path, **options: Any) -> tuple[SessionWriter,
                                                                        Callable[[], None]]:
    """Subscribe a new writer for ``path`` to ``recording``."""
    writer = SessionWriter(path, **options)
    return writer, recording.subscribe(writer)
