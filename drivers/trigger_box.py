"""Scanner triggers from a serial trigger box: one character per volume (``5``, ``t``, ...).

A reader thread blocks in the serial read (event-driven, no polling sleeps) and stamps
each trigger character with ``clock.now()`` as soon as the read returns. A
:class:`~drivers.volumes.VolumeCounter` numbers the volumes, filling in missed triggers
(``inferred=True``) and dropping extra ones; both are reported as ``warning`` status.
Other bytes are reported and ignored. A lost port is reported once as ``lost``;
:meth:`SerialTriggerSource.reconnect` opens it again and counting carries on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import serial

from drivers.errors import DeviceError, PortLost
from drivers.interfaces import TriggerStats
from drivers.notifier import Notifier, call_each
from drivers.transport import SerialTransport, Transport
from drivers.volumes import MIN_INTERVALS, Volume, VolumeCounter
from qst_station.clock import Clock, LslClock

log = logging.getLogger(__name__)
VolumeCallback = Callable[[Volume], None]
StatusCallback = Callable[[str, str], None]
BYTE_WARNINGS = 10  # unexpected-byte reports per connection; later ones are only counted


class TriggerBoxTransport(SerialTransport):
    """A read-only serial port: low-latency mode where the adapter supports it, and
    anything received before opening discarded (old bytes are not triggers now)."""

    def __init__(self, port: str, baudrate: int = 57600, poll_s: float = 0.1) -> None:
        super().__init__(port, baudrate=baudrate, char_delay_s=0.0, poll_s=poll_s)
        self.low_latency = False
        try:  # FTDI: 16 ms latency timer -> 1 ms; ptys and CDC-ACM refuse (no timer)
            self._serial.set_low_latency_mode(True)
            self.low_latency = True
        except (AttributeError, NotImplementedError, ValueError, OSError,
                serial.SerialException):
            pass
        try:
            self._serial.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise PortLost(f"{port}: cannot flush input: {exc}") from exc


def _one_byte(character: bytes | str) -> bytes:
    raw = character.encode("latin-1") if isinstance(character, str) else bytes(character)
    if len(raw) != 1:
        raise ValueError(f"the trigger character must be one byte, got {character!r}")
    return raw


class SerialTriggerSource:
    """Scanner volumes from a trigger box on ``port``; implements :class:`TriggerSource`."""

    def __init__(
        self,
        port: str,
        character: bytes | str = b"5",
        baudrate: int = 57600,
        clock: Clock | None = None,
        counter: VolumeCounter | None = None,
        transport_factory: Callable[[str], Transport] | None = None,
        read_timeout_s: float = 0.1,
    ) -> None:
        self.port = port
        self.character = _one_byte(character)
        self.baudrate = baudrate
        self.clock = clock or LslClock()
        self.counter = counter or VolumeCounter()
        self._factory = transport_factory or (
            lambda p: TriggerBoxTransport(p, baudrate, poll_s=read_timeout_s))
        self._notifier = Notifier("trigger")
        self._callbacks: list[VolumeCallback] = []
        self._count_lock = threading.Lock()  # counter and stats
        self._conn_lock = threading.Lock()  # swapping the transport
        self._transport: Transport | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._byte_warnings = 0
        self.ignored = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def connect(self) -> None:
        """Open the port and start reading; raises :class:`PortLost` if it cannot open."""
        if self.connected:
            raise DeviceError(f"{self.port}: already connected")
        transport = self._factory(self.port)
        self._stop.clear()
        self._byte_warnings = 0
        with self._conn_lock:
            self._transport = transport
        self._reader = threading.Thread(target=self._read_loop, args=(transport,),
                                        name="trigger-reader", daemon=True)
        self._reader.start()
        low = getattr(transport, "low_latency", None)
        latency = "" if low is None else f", low-latency mode {'on' if low else 'unavailable'}"
        self._notify("connected", f"trigger box on {self.port} at {self.baudrate} baud, "
                                  f"character {self.character!r}{latency}")

    def disconnect(self) -> None:
        if not self.connected:
            return
        self._close()
        self._notify("disconnected", f"{self.port} closed")

    def reconnect(self) -> None:
        """Close what is left of the old connection and open the port again.

        The count carries on: volumes that fell due meanwhile are filled in (with a TR).
        """
        self._close()
        self.connect()

    def _close(self) -> None:
        self._stop.set()
        with self._conn_lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        self._reader = None

    def __enter__(self) -> SerialTriggerSource:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: VolumeCallback) -> Callable[[], None]:
        """Call ``callback(volume)`` on the reader thread (keep it quick) for every volume."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """``callback(kind, message)`` on a status thread: connected, disconnected,
        warning (missed/extra triggers, other bytes) and lost."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    @property
    def stats(self) -> TriggerStats:
        with self._count_lock:
            c = self.counter
            return TriggerStats(c.volumes, c.received, c.missed, c.extra, self.ignored, c.tr_s)

    def summary(self) -> dict[str, object]:
        with self._count_lock:
            return {**self.counter.summary(), "ignored": self.ignored}

    def reset_count(self) -> None:
        """A new run: the next trigger is volume 1."""
        with self._count_lock:
            self.counter.reset()

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        self._notifier.post(kind, message)

    # ------------------------------------------------------------------ reader

    def _read_loop(self, transport: Transport) -> None:
        while not self._stop.is_set():
            try:
                data = transport.read()  # blocks until a byte arrives (or the read timeout)
            except PortLost as exc:
                if not self._stop.is_set():
                    self._lost(transport, exc)
                return
            if not data:
                continue
            now = self.clock.now()
            try:
                self._dispatch(now, data)
            except Exception:  # noqa: BLE001 - the reader must outlive any bug downstream
                log.exception("trigger reader")

    def _dispatch(self, now: float, data: bytes) -> None:
        volumes: list[Volume] = []
        warnings: list[str] = []
        other = b""
        with self._count_lock:
            for i in range(len(data)):
                byte = data[i : i + 1]
                if byte == self.character:
                    volumes += self.counter.add(now)
                    warnings += self.counter.last_warnings
                else:
                    other += byte
            self.ignored += len(other)
        for volume in volumes:
            call_each(self._callbacks, volume)
        for message in warnings:
            self._notify("warning", f"{self.port}: {message}")
        if other:
            self._report_bytes(other)

    def _report_bytes(self, other: bytes) -> None:
        self._byte_warnings += 1
        if self._byte_warnings <= BYTE_WARNINGS:
            self._notify("warning", f"{self.port}: ignored {len(other)} byte(s) that are not "
                                    f"the trigger {self.character!r}: {other[:16]!r}")
        if self._byte_warnings == BYTE_WARNINGS:
            self._notify("warning", f"{self.port}: further unexpected bytes are only counted")

    def _lost(self, transport: Transport, exc: Exception) -> None:
        with self._conn_lock:
            if self._transport is not transport:
                return
            self._transport = None
        transport.close()
        self._notify("lost", f"{self.port}: connection lost ({exc}); reconnect when available")


# ---------------------------------------------------------------------- probe


def probe_lines(
    port: str,
    character: bytes | str = b"5",
    baudrate: int = 57600,
    count: int = 10,
    timeout_s: float = 30.0,
    echo: Callable[[str], None] | None = None,
    transport_factory: Callable[[str], Transport] | None = None,
) -> list[str]:
    """Listen on ``port`` for ``count`` triggers (or ``timeout_s``); describe them line by line.

    ``echo`` receives each line as it happens. Raises :class:`PortLost` if the port
    cannot be opened.
    """
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if echo is not None:
            echo(line)

    events: queue.Queue[tuple[str, object]] = queue.Queue()
    counter = VolumeCounter()
    source = SerialTriggerSource(port, character, baudrate, LslClock(), counter,
                                 transport_factory)
    source.subscribe(lambda volume: events.put(("volume", volume)))
    source.on_status(lambda kind, message: events.put((kind, message)))
    source.connect()
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    previous: float | None = None
    got = 0
    try:
        while got < count:
            try:
                kind, item = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(item, Volume):
                first = item.timestamp if first is None else first
                got += 0 if item.inferred else 1
                what = "missed, inferred at" if item.inferred else "at"
                gap = "" if previous is None else f"  (+{item.timestamp - previous:.3f} s)"
                previous = item.timestamp
                out(f"volume {item.index:>4}  {what} {item.timestamp - first:.3f} s{gap}")
            else:
                out(f"{kind}: {item}")
                if kind == "lost":
                    break
        source.drain_status(0.5)  # reports about the last trigger
        while not events.empty():
            kind, item = events.get_nowait()
            if not isinstance(item, Volume):
                out(f"{kind}: {item}")
    finally:
        source.disconnect()
    s = source.stats
    if s.received == 0:
        out(f"no trigger {source.character!r} within {timeout_s:g} s "
            f"({s.ignored} other byte(s))")
    else:
        needs = f"unknown (needs {MIN_INTERVALS + 1} triggers)"
        tr = f"{s.tr_s:.3f} s" if s.tr_s is not None else needs
        span = (counter.last_volume_time or 0.0) - (first or 0.0)
        out(f"{s.received} trigger(s) in {span:.3f} s: TR {tr}, {s.missed} missed, "
            f"{s.extra} extra, {s.ignored} other byte(s)")
    return lines
