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

from drivers.notifier import Notifier
from qst_station import __version__
from qst_station.h5_recovery import clear_status_flags, lock_path, opens_plainly, writer_alive
from qst_station.recording import Event, SessionInfo, StreamSpec, Subscriber

log = logging.getLogger(__name__)

FORMAT_NAME = "qst-station-session"
FORMAT_VERSION = "1.0"
EVENT_DTYPE = np.dtype([("time", "f8"), ("kind", "S24"), ("offset", "i8"), ("length", "i4")])
EXIT_DTYPE = np.dtype([("status", "S16"), ("stop_time", "f8"), ("reason", "S1024")])
_CHUNK_BYTES = 64 * 1024


class SessionFileError(RuntimeError):
    """The session file cannot be created or continued."""


PARTICIPANT_DETAILS = ("sex", "age", "body_sites")  # optional root attributes


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
        self._notifier = Notifier("session-writer")

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """``callback(kind, message)``: ``failed`` if the file cannot be written any more,
        ``warning`` for a stream it cannot take."""
        return self._notifier.subscribe(callback)

    # -- subscriber side (producer threads) -----------------------------------------------
    def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
        """Create (or continue) the file and start the writer thread; raises if it cannot."""
        self._take_lock()
        try:
            self._file = self._open_file(info)
            specs = self._declared_streams()
            for spec in specs:  # before anything is added to the file
                earlier = _layout_mismatch(self._file, "", spec)
                if earlier:
                    raise SessionFileError(f"{self.path}: stream {spec.name!r} {earlier}")
            self.part_name = self._new_part(info, started_utc, start_time).name
            self._layout_streams(specs)
        except Exception:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._release_lock()
            raise
        self._thread = threading.Thread(target=self._run, name="session-writer", daemon=True)
        self._thread.start()

    def on_stream(self, spec: StreamSpec) -> None:
        self._queue.put(("stream", spec))

    def on_samples(self, spec: StreamSpec, timestamps: np.ndarray, values: np.ndarray) -> None:
        if self.error is None:  # a dead writer queues nothing more
            self._queue.put(("samples", (spec.name, timestamps, values)))

    def on_event(self, event: Event) -> None:
        if self.error is None:
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
            handle = h5py.File(self.path, "x", libver="latest", locking=False)
            handle.attrs.update({
                "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "software_version": info.software_version, "session_id": info.session_id,
                "participant": info.participant, "visit": info.visit, "site": info.site,
                **{k: v for k, v in info.participant_details.items()
                   if k in PARTICIPANT_DETAILS}})
            handle.create_group("parts")
            return handle
        if not self.resume:
            raise SessionFileError(f"{self.path} exists: continue it with resume, "
                                   "or choose another file")
        if not opens_plainly(self.path):
            clear_status_flags(self.path, lock_is_mine=True)
        try:
            handle = h5py.File(self.path, "a", libver="latest", locking=False)
        except OSError as error:
            raise SessionFileError(f"{self.path}: cannot continue it: {error}") from None
        problem = _resume_problem(handle, info)
        if problem:
            handle.close()
            raise SessionFileError(f"{self.path}: {problem}")
        return handle

    def _new_part(self, info: SessionInfo, started_utc: str, start_time: float) -> h5py.Group:
        assert self._file is not None
        parts = self._file["parts"]
        part = parts.create_group(f"{len(parts) + 1:03d}")
        part.attrs.update({
            "started_utc": started_utc, "start_time": start_time,
            "protocol": info.protocol, "operator": info.operator,
            "station_config": info.station_config, "software_version": __version__,
            "devices": json.dumps([dict(d) for d in info.devices]),
            "simulation": json.dumps(info.simulation) if info.simulation else ""})
        exit_row = np.array([(b"recording", np.nan, b"")], dtype=EXIT_DTYPE)
        part.create_dataset("exit", data=exit_row, maxshape=(1,))
        part.create_group("streams")
        events = part.create_group("events")
        events.create_dataset("table", shape=(0,), maxshape=(None,), dtype=EVENT_DTYPE,
                              chunks=(1024,))
        events.create_dataset("payload", shape=(0,), maxshape=(None,), dtype="u1",
                              chunks=(_CHUNK_BYTES,))
        return part

    def _create_stream(self, spec: StreamSpec) -> None:
        assert self._file is not None
        earlier = _layout_mismatch(self._file, self.part_name, spec)
        if earlier:
            raise SessionFileError(f"{self.path}: stream {spec.name!r} {earlier}")
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
            self._notifier.post("failed", f"{self.path}: recording stopped: {self.error}")
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
            if blocks and name in self._datasets:
                self._append(name, blocks)
                blocks.clear()
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
        blobs = [_encode(e.payload) for e in events]
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
        # our sidecar lock keeps other writers out; HDF5's own lock would also refuse while
        # a reader has the file open, so it is not taken for this short non-SWMR window
        self._file = _reopen(self.path)
        streams = self._file["parts"][self.part_name]["streams"]
        for name in streams:
            group = streams[name]
            self._datasets[name] = (group["time"], group["values"])
        try:
            self._create_stream(spec)
        except SessionFileError as error:
            self._notifier.post("warning", f"{error}: not recorded")
        self._file.swmr_mode = True

    def _close(self, stop: tuple[str, str, float] | None) -> None:
        """Record the exit status (a SWMR write, no reopening) and close the file."""
        if self._file is not None:
            try:
                if stop is not None:
                    self._write_exit(self._file, *stop)
            finally:
                self._file.close()
                self._file = None
        self._release_lock()

    def _write_exit(self, handle: h5py.File, status: str, reason: str, stop_time: float
                    ) -> None:
        exit_ds = handle["parts"][self.part_name]["exit"]
        exit_ds[0] = (status.encode(), stop_time, reason.encode()[:1024])
        handle.flush()

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


def _encode(payload: Any) -> bytes:
    """Strict JSON of an event payload; a payload that cannot be encoded is kept as text."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps({"unencodable": repr(payload)})
    return text.encode()


def _reopen(path: Path, attempts: int = 50) -> h5py.File:
    for attempt in range(attempts):
        try:
            return h5py.File(path, "a", libver="latest", locking=False)
        except BlockingIOError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _resume_problem(handle: h5py.File, info: SessionInfo) -> str:
    """Why a run cannot be added to this file, or ""."""
    if handle.attrs.get("format") != FORMAT_NAME:
        return "not a qst-station session file"
    major = str(handle.attrs.get("format_version", "0")).split(".")[0]
    if major != FORMAT_VERSION.split(".")[0]:
        return f"session format {handle.attrs.get('format_version')} is not {FORMAT_VERSION}"
    if (handle.attrs.get("participant"), handle.attrs.get("visit")) != (info.participant,
                                                                         info.visit):
        return (f"not a session of participant {info.participant!r}, "
                f"visit {info.visit!r}")
    return ""


def _layout_mismatch(handle: h5py.File, current: str, spec: StreamSpec) -> str:
    """How ``spec`` differs from the same stream in earlier parts, or ""."""
    for name, part in handle["parts"].items():
        group = part["streams"].get(spec.name) if name != current else None
        if group is None:
            continue
        channels = json.loads(group.attrs["channels"])
        units = json.loads(group.attrs["units"])
        dtype = group["values"].dtype
        if (channels, units, dtype) != ([c.label for c in spec.channels],
                                        [c.unit for c in spec.channels], np.dtype(spec.dtype)):
            return (f"has channels {channels} {units} ({dtype}) in part {name}; this run "
                    "declares it differently: give it another name")
    return ""

