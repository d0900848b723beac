"""Participant responses from a serial button box: one character per press (``1``..``4``).

Follows :mod:`drivers.trigger_box`: a reader thread blocks in the serial read and stamps
what arrived with ``clock.now()`` as soon as the read returns (characters that arrive in
one read share that stamp). Characters in ``press_map`` are presses, characters in
``release_map`` (if the box sends any) are releases; other bytes are counted, reported
as ``warning`` status and ignored. A lost port is reported once as ``lost``;
:meth:`SerialButtonBox.reconnect` opens it again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drivers.errors import DeviceError, PortLost
from drivers.notifier import Notifier, call_each
from drivers.transport import Transport
from drivers.trigger_box import TriggerBoxTransport
from qst_station.clock import Clock, LslClock

log = logging.getLogger(__name__)
StatusCallback = Callable[[str, str], None]
BYTE_WARNINGS = 10  # unexpected-byte reports per connection; later ones are only counted
DEFAULT_PRESS_MAP: dict[bytes, int] = {b"1": 1, b"2": 2, b"3": 3, b"4": 4}


@dataclass(frozen=True)
class Response:
    """One participant response."""

    timestamp: float  # program clock at arrival
    source: str  # e.g. "buttonbox"
    kind: str  # "press" | "release" | "yes" | "no" | "vas"
    value: float  # button number, or VAS value


ResponseCallback = Callable[[Response], None]


@dataclass(frozen=True)
class ButtonStats:
    presses: dict[int, int]  # button -> presses received
    releases: dict[int, int]  # button -> releases received
    ignored: int  # bytes in neither map

    @property
    def total_presses(self) -> int:
        return sum(self.presses.values())


def _one_byte(character: bytes | str) -> bytes:
    raw = character.encode("latin-1") if isinstance(character, str) else bytes(character)
    if len(raw) != 1:
        raise ValueError(f"a button character must be one byte, got {character!r}")
    return raw


def check_maps(press_map: Mapping[bytes | str, int],
               release_map: Mapping[bytes | str, int] | None = None
               ) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Normalised (one-byte keys, int buttons) press and release maps; ValueError if bad."""
    press = {_one_byte(k): int(v) for k, v in press_map.items()}
    release = {_one_byte(k): int(v) for k, v in (release_map or {}).items()}
    if not press:
        raise ValueError("the press map is empty")
    both = sorted(set(press) & set(release))
    if both:
        raise ValueError(f"characters {both!r} are in both the press and the release map")
    return press, release


def parse_map(text: str) -> dict[bytes, int]:
    """``"1=1,2=2,a=3"`` (or ``0x31=1``) -> ``{b"1": 1, b"2": 2, b"a": 3}``; ValueError if bad."""
    out: dict[bytes, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        char, sep, button = item.rpartition("=")
        if not sep or not char:
            raise ValueError(f"expected CHAR=BUTTON, got {item!r}")
        key = bytes([int(char, 16)]) if char.lower().startswith("0x") else _one_byte(char)
        out[key] = int(button)
    return out


def decode(data: bytes, press_map: Mapping[bytes, int], release_map: Mapping[bytes, int]
           ) -> tuple[list[tuple[str, int]], bytes]:
    """``(kind, button)`` for each known byte in order (kind "press"/"release"), and the rest."""
    events: list[tuple[str, int]] = []
    other = bytearray()
    for i in range(len(data)):
        byte = data[i : i + 1]
        if byte in press_map:
            events.append(("press", press_map[byte]))
        elif byte in release_map:
            events.append(("release", release_map[byte]))
        else:
            other += byte
    return events, bytes(other)


class SerialButtonBox:
    """Button presses (and releases) from a box on ``port``; implements ``ResponseSource``."""

    def __init__(
        self,
        port: str,
        press_map: Mapping[bytes | str, int] | None = None,
        release_map: Mapping[bytes | str, int] | None = None,
        baudrate: int = 115200,
        clock: Clock | None = None,
        transport_factory: Callable[[str], Transport] | None = None,
        name: str = "buttonbox",
        read_timeout_s: float = 0.1,
    ) -> None:
        self.port = port
        self.press_map, self.release_map = check_maps(
            DEFAULT_PRESS_MAP if press_map is None else press_map, release_map)
        self.baudrate = baudrate
        self.clock = clock or LslClock()
        self.name = name
        self._factory = transport_factory or (
            lambda p: TriggerBoxTransport(p, baudrate, poll_s=read_timeout_s))
        self._notifier = Notifier(name)
        self._callbacks: list[ResponseCallback] = []
        self._count_lock = threading.Lock()  # stats
        self._conn_lock = threading.Lock()  # swapping the transport
        self._transport: Transport | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._byte_warnings = 0
        self._presses: dict[int, int] = {}
        self._releases: dict[int, int] = {}
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
        releases = f", releases {self.release_map}" if self.release_map else ""
        self._notify("connected", f"button box on {self.port} at {self.baudrate} baud, "
                                  f"presses {self.press_map}{releases}{latency}")

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

    def __enter__(self) -> SerialButtonBox:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: ResponseCallback) -> Callable[[], None]:
        """Call ``callback(response)`` on the reader thread (keep it quick) for each one."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """``callback(kind, message)`` on a status thread: connected, disconnected,
        warning (other bytes) and lost."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    @property
    def stats(self) -> ButtonStats:
        with self._count_lock:
            return ButtonStats(dict(sorted(self._presses.items())),
                               dict(sorted(self._releases.items())), self.ignored)

    def summary(self) -> dict[str, object]:
        s = self.stats
        return {"presses": s.presses, "releases": s.releases, "ignored": s.ignored}

    def reset_stats(self) -> None:
        with self._count_lock:
            self._presses.clear()
            self._releases.clear()
            self.ignored = 0

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
                log.exception("%s reader", self.name)

    def _dispatch(self, now: float, data: bytes) -> None:
        events, other = decode(data, self.press_map, self.release_map)
        with self._count_lock:
            for kind, button in events:
                counts = self._presses if kind == "press" else self._releases
                counts[button] = counts.get(button, 0) + 1
            self.ignored += len(other)
        for kind, button in events:
            call_each(self._callbacks, Response(now, self.name, kind, float(button)))
        if other:
            self._report_bytes(other)

    def _report_bytes(self, other: bytes) -> None:
        self._byte_warnings += 1
        if self._byte_warnings <= BYTE_WARNINGS:
            self._notify("warning", f"{self.port}: ignored {len(other)} byte(s) that are not "
                                    f"button characters: {other[:16]!r}")
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
    press_map: Mapping[bytes | str, int] | None = None,
    release_map: Mapping[bytes | str, int] | None = None,
    baudrate: int = 115200,
    count: int = 10,
    timeout_s: float = 30.0,
    echo: Callable[[str], None] | None = None,
    transport_factory: Callable[[str], Transport] | None = None,
) -> list[str]:
    """Listen on ``port`` for ``count`` presses (or ``timeout_s``); describe them line by line.

    Times are from the first press. ``echo`` receives each line as it happens. Raises
    :class:`PortLost` if the port cannot be opened, ValueError for a bad map.
    """
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        if echo is not None:
            echo(line)

    events: queue.Queue[tuple[str, object]] = queue.Queue()
    box = SerialButtonBox(port, press_map, release_map, baudrate, LslClock(),
                          transport_factory)
    box.subscribe(lambda response: events.put(("response", response)))
    box.on_status(lambda kind, message: events.put((kind, message)))
    box.connect()
    deadline = time.monotonic() + timeout_s
    first: float | None = None
    last: float | None = None
    previous: float | None = None
    down: dict[int, float] = {}
    got = 0
    try:
        while got < count:
            try:
                kind, item = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if not isinstance(item, Response):
                out(f"{kind}: {item}")
                if kind == "lost":
                    break
                continue
            button = int(item.value)
            if item.kind == "press":
                first = item.timestamp if first is None else first
                at = item.timestamp - first
                got += 1
                gap = "" if previous is None else f"  (+{item.timestamp - previous:.3f} s)"
                previous = last = item.timestamp
                down[button] = item.timestamp
                out(f"button {button} pressed  at {at:.3f} s{gap}")
            elif first is None:
                out(f"button {button} released (pressed before the probe listened)")
            else:
                pressed = down.pop(button, None)
                held = "" if pressed is None else f"  (held {item.timestamp - pressed:.3f} s)"
                out(f"button {button} released at {item.timestamp - first:.3f} s{held}")
        box.drain_status(0.5)  # reports about the last bytes
        while not events.empty():
            kind, item = events.get_nowait()
            if not isinstance(item, Response):
                out(f"{kind}: {item}")
    finally:
        box.disconnect()
    s = box.stats
    if s.total_presses == 0:
        out(f"no button press within {timeout_s:g} s ({s.ignored} other byte(s))")
    else:
        per = ", ".join(f"button {b} x{n}" for b, n in s.presses.items())
        span = (last or 0.0) - (first or 0.0)
        out(f"{s.total_presses} press(es) in {span:.3f} s: {per}; "
            f"{sum(s.releases.values())} release(s), {s.ignored} other byte(s)")
    return lines
