"""Participant responses from a serial button box: one character per press (``1``..``4``).

Follows :mod:`drivers.trigger_box`: a reader thread blocks in the serial read and stamps
what arrived with ``clock.now()`` as soon as the read returns (characters that arrive in
one read share that stamp). Characters in ``press_map`` are presses, characters in
``release_map`` (if the box sends any) are releases; other bytes are counted, reported
as ``warning`` status and ignored. A lost port is reported once as ``lost``;
:meth:`SerialButtonBox.reconnect` opens it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drivers.notifier import call_each
from drivers.serial_input import LineLog, SerialInput, listen, one_byte
from drivers.transport import Transport
from qst_station.clock import Clock, LslClock

StatusCallback = Callable[[str, str], None]
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


def check_maps(press_map: Mapping[bytes | str, int],
               release_map: Mapping[bytes | str, int] | None = None
               ) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Normalised (one-byte keys, int buttons) press and release maps; ValueError if bad."""
    press = {one_byte(k): int(v) for k, v in press_map.items()}
    release = {one_byte(k): int(v) for k, v in (release_map or {}).items()}
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
        key = bytes([int(char, 16)]) if char.lower().startswith("0x") else one_byte(char)
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


class SerialButtonBox(SerialInput):
    """Button presses (and releases) from a box on ``port``; implements ``ResponseSource``."""

    kind = "button box"

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
        super().__init__(port, baudrate, clock, transport_factory, name, read_timeout_s)
        self.press_map, self.release_map = check_maps(
            DEFAULT_PRESS_MAP if press_map is None else press_map, release_map)
        self._presses: dict[int, int] = {}
        self._releases: dict[int, int] = {}

    def _describe(self) -> str:
        releases = f", releases {self.release_map}" if self.release_map else ""
        return f"presses {self.press_map}{releases}"

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
            self._report_bytes(other, "button characters")


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
    out = LineLog(echo)
    box = SerialButtonBox(port, press_map, release_map, baudrate, LslClock(),
                          transport_factory)
    first: float | None = None
    last: float | None = None
    down: dict[int, float] = {}

    def on_response(item: Response) -> int:
        nonlocal first, last
        button = int(item.value)
        if item.kind == "press":
            first = item.timestamp if first is None else first
            gap = "" if last is None else f"  (+{item.timestamp - last:.3f} s)"
            last = down[button] = item.timestamp
            out(f"button {button} pressed  at {item.timestamp - first:.3f} s{gap}")
            return 1
        if first is None:
            out(f"button {button} released (pressed before the probe listened)")
        else:
            pressed = down.pop(button, None)
            held = "" if pressed is None else f"  (held {item.timestamp - pressed:.3f} s)"
            out(f"button {button} released at {item.timestamp - first:.3f} s{held}")
        return 0

    listen(box, count, timeout_s, on_response, out)
    s = box.stats
    if s.total_presses == 0:
        out(f"no button press within {timeout_s:g} s ({s.ignored} other byte(s))")
    else:
        per = ", ".join(f"button {b} x{n}" for b, n in s.presses.items())
        span = (last or 0.0) - (first or 0.0)
        out(f"{s.total_presses} press(es) in {span:.3f} s: {per}; "
            f"{sum(s.releases.values())} release(s), {s.ignored} other byte(s)")
    return out.lines
