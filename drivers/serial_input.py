"""Input-only serial devices (trigger boxes, button boxes): the shared reader machinery.

A reader thread blocks in the serial read (event-driven, no polling sleeps) and hands
what arrived, stamped with ``clock.now()`` as soon as the read returned, to the subclass's
:meth:`SerialInput._dispatch`. Unexpected bytes are reported (the first few per
connection) and counted; a lost port is reported once as ``lost``; :meth:`reconnect`
opens it again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import serial

from drivers.errors import DeviceError, PortLost
from drivers.notifier import Notifier
from drivers.transport import SerialTransport, Transport, pump
from qst_station.clock import Clock, LslClock

BYTE_WARNINGS = 10  # unexpected-byte reports per connection; later ones are only counted

Callback = Callable[[Any], None]


def time_critical(callback: Callback) -> Callback:
    """Mark a subscriber that acts on the event at once (e.g. starts a stimulus at a trigger).

    Serial inputs call marked subscribers before all others, so that recording and
    publishing the event (the others, typically) do not delay it. Use it on a function or
    method; ``subscribe(callback, first=True)`` does the same for one subscription.
    """
    callback.time_critical = True  # type: ignore[attr-defined]
    return callback


class InputPortTransport(SerialTransport):
    """A read-only serial port: low-latency mode where the adapter supports it, and
    anything received before opening discarded (old bytes are not events now)."""

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


def one_byte(character: bytes | str) -> bytes:
    raw = character.encode("latin-1") if isinstance(character, str) else bytes(character)
    if len(raw) != 1:
        raise ValueError(f"the character must be one byte, got {character!r}")
    return raw


class SerialInput:
    """Lifecycle, subscribers, status and the reader thread; subclasses decode."""

    kind = "serial input"  # what the status messages call the device

    def __init__(self, port: str, baudrate: int, clock: Clock | None,
                 transport_factory: Callable[[str], Transport] | None, name: str,
                 read_timeout_s: float = 0.1) -> None:
        self.port = port
        self.baudrate = baudrate
        self.clock = clock or LslClock()
        self.name = name
        self._factory = transport_factory or (
            lambda p: InputPortTransport(p, baudrate, poll_s=read_timeout_s))
        self._notifier = Notifier(name)
        self._callbacks: list[Callback] = []  # replaced, never mutated: readers iterate it
        self._first: list[Callback] = []  # time-critical subscribers (called first)
        self._rest: list[Callback] = []
        self._sub_lock = threading.Lock()
        self._count_lock = threading.Lock()  # subclasses' counters
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
                                        name=f"{self.name}-reader", daemon=True)
        self._reader.start()
        low = getattr(transport, "low_latency", None)
        latency = "" if low is None else f", low-latency mode {'on' if low else 'unavailable'}"
        self._notify("connected", f"{self.kind} on {self.port} at {self.baudrate} baud, "
                                  f"{self._describe()}{latency}")

    def _describe(self) -> str:
        """What the connected message says about the decoding (characters, maps)."""
        return ""

    def disconnect(self) -> None:
        if not self.connected:
            return
        self._close()
        self._notify("disconnected", f"{self.port} closed")

    def reconnect(self) -> None:
        """Close what is left of the old connection and open the port again."""
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

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: Callback, first: bool | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` on the reader thread (keep it quick) for each event.

        Time-critical subscribers (``first=True``, or marked with :func:`time_critical`)
        are called before the others, each group in the order it subscribed.
        """
        if first is None:
            first = bool(getattr(callback, "time_critical", False))
        with self._sub_lock:
            (self._first if first else self._rest).append(callback)
            self._callbacks = [*self._first, *self._rest]

        def unsubscribe() -> None:
            with self._sub_lock:
                (self._first if first else self._rest).remove(callback)
                self._callbacks = [*self._first, *self._rest]

        return unsubscribe

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """``callback(kind, message)`` on a status thread: connected, disconnected,
        warning (unexpected bytes and the subclass's own) and lost."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        self._notifier.post(kind, message)

    # ------------------------------------------------------------------ reader

    def _read_loop(self, transport: Transport) -> None:
        pump(transport, self._stop, lambda data: self._dispatch(self.clock.now(), data),
             lambda exc: self._lost(transport, exc), self.name)

    def _dispatch(self, now: float, data: bytes) -> None:
        raise NotImplementedError

    def _report_bytes(self, other: bytes, expected: str) -> None:
        self._byte_warnings += 1
        if self._byte_warnings <= BYTE_WARNINGS:
            self._notify("warning", f"{self.port}: ignored {len(other)} byte(s) that are not "
                                    f"{expected}: {other[:16]!r}")
        if self._byte_warnings == BYTE_WARNINGS:
            self._notify("warning", f"{self.port}: further unexpected bytes are only counted")

    def _lost(self, transport: Transport, exc: Exception) -> None:
        with self._conn_lock:
            if self._transport is not transport:
                return
            self._transport = None
        transport.close()
        self._notify("lost", f"{self.port}: connection lost ({exc}); reconnect when available")


class LineLog:
    """Collects a probe's lines and echoes each one as it happens."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self.lines: list[str] = []
        self._echo = echo

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self._echo is not None:
            self._echo(line)


def listen(source: SerialInput, count: int, timeout_s: float,
           on_event: Callable[[Any], int], out: Callable[[str], None]) -> None:
    """Connect ``source`` and pass its events to ``on_event`` until it has counted
    ``count`` (its return values), ``timeout_s`` passes or the port is lost; status
    reports become lines. Disconnects at the end, also on error."""
    events: queue.Queue[tuple[bool, Any]] = queue.Queue()
    source.subscribe(lambda event: events.put((True, event)))
    source.on_status(lambda kind, message: events.put((False, (kind, message))))
    source.connect()
    deadline = time.monotonic() + timeout_s
    got = 0
    try:
        while got < count:
            try:
                is_event, item = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if is_event:
                got += on_event(item)
                continue
            out(f"{item[0]}: {item[1]}")
            if item[0] == "lost":
                break
        source.drain_status(0.5)  # reports about the last bytes
        while not events.empty():
            is_event, item = events.get_nowait()
            if not is_event:
                out(f"{item[0]}: {item[1]}")
    finally:
        source.disconnect()
