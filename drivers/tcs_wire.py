"""QST.Lab TCS II wire protocol: pure encode/decode functions shared by driver and simulator.

Host -> device commands have no terminator: a prefix (``N``, ``C``, ``Om``...) followed by
fixed-width decimal fields with every digit sent. Device -> host frames start with CR.
Temperature stream lines (signed values) arrive unsolicited between replies; the
:class:`FrameSplitter` separates them. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from drivers.errors import FieldRangeError, WireError

CR = b"\r"
ZONES = 5


@dataclass(frozen=True)
class CommandSpec:
    """One host command: prefix, then fixed-width digit fields with their allowed ranges."""

    name: str
    prefix: bytes
    fields: tuple[tuple[int, int, int], ...] = ()  # (width, minimum, maximum)
    reply: str | None = None  # name of the reply decoder, None = no reply


def _zone() -> tuple[int, int, int]:
    return (1, 0, ZONES)


_MASK = ((1, 0, 1),) * ZONES

COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in [
        CommandSpec("baseline", b"N", ((3, 200, 450),)),
        CommandSpec("enable_zones", b"S", _MASK),
        CommandSpec("target", b"C", (_zone(), (3, 0, 600))),
        CommandSpec("rise_rate", b"V", (_zone(), (4, 1, 9999))),
        CommandSpec("return_rate", b"R", (_zone(), (4, 1, 9999))),
        CommandSpec("duration", b"D", (_zone(), (5, 10, 99999))),
        CommandSpec("trigger_setup", b"T", ((3, 1, 255), (3, 10, 999))),
        CommandSpec("start", b"L"),
        CommandSpec("abort", b"A"),
        CommandSpec("temperatures", b"E", reply="temperatures"),
        CommandSpec("fine_resolution", b"Oe"),
        CommandSpec("stream_off", b"F"),
        CommandSpec("stream_idle", b"Oa"),
        CommandSpec("stream_stimulation", b"Ob"),
        CommandSpec("parameters", b"P", reply="lines"),
        CommandSpec("buttons", b"K", reply="buttons"),
        CommandSpec("battery", b"B", reply="battery"),
        CommandSpec("errors", b"Q", reply="errors"),
        CommandSpec("calibrate_neutral", b"G", reply="neutral"),
        CommandSpec("reset", b"Oc"),
        CommandSpec("max_temperature", b"Om", ((3, 0, 600),)),
        CommandSpec("trigger_out", b"Oo"),
        CommandSpec("fine_rise_rate", b"Ov", (_zone(), (5, 1, 99999))),
        CommandSpec("fine_target", b"Ot", (_zone(), (4, 0, 6000))),
        CommandSpec("profile_write", b"Uw"),  # variable length, see encode_profile
        CommandSpec("profile_enable", b"Ue", _MASK),
        CommandSpec("profile_read", b"Ur", reply="profile"),
        CommandSpec("help", b"H", reply="lines"),
        CommandSpec("clock", b"Xr", reply="clock"),
        CommandSpec("buzzer", b"Z", ((3, 1, 999), (3, 1, 999))),
        CommandSpec("identify", b"?", reply="identity"),
        CommandSpec("follow", b"Od"),
        CommandSpec("trigger_input_on", b"Ose"),
        CommandSpec("trigger_input_off", b"Osd"),
        CommandSpec("mri_filter", b"Of", ((1, 1, 3),)),
        CommandSpec("temperatures_buttons", b"Og", reply="temperatures_buttons"),
    ]
}
_BY_PREFIX = {spec.prefix: spec for spec in COMMANDS.values()}
PROFILE_MAX_SEGMENTS = 999


@dataclass(frozen=True)
class Command:
    """A decoded host command: its spec name and field values (raw device units)."""

    name: str
    values: tuple[int, ...] = ()
    segments: tuple[tuple[int, int], ...] = ()  # profile_write only: (10 ms units, 0.1 °C)


def encode(name: str, *values: int) -> bytes:
    """Encode a fixed-field command; raises WireError if a field is out of the device range."""
    spec = COMMANDS[name]
    if len(values) != len(spec.fields):
        raise WireError(f"{name} takes {len(spec.fields)} fields, got {len(values)}")
    out = bytearray(spec.prefix)
    for value, (width, low, high) in zip(values, spec.fields, strict=True):
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"{name}: field value {value!r} is not an integer")
        if not low <= value <= high:
            raise FieldRangeError(f"{name}: field value {value} outside device range {low}-{high}")
        out += f"{value:0{width}d}".encode()
    return bytes(out)


def encode_mask(name: str, zones: Sequence[bool]) -> bytes:
    """Encode ``S`` or ``Ue``: one 0/1 digit per zone 1-5."""
    if len(zones) != ZONES:
        raise WireError(f"{name}: need {ZONES} zone flags, got {len(zones)}")
    return encode(name, *(int(bool(z)) for z in zones))


def encode_profile(zones: Sequence[bool], segments: Sequence[tuple[int, int]]) -> bytes:
    """``Uw`` + zone mask + segment count + (duration in 10 ms, end temperature in 0.1 °C)."""
    if len(zones) != ZONES:
        raise WireError(f"profile_write: need {ZONES} zone flags, got {len(zones)}")
    if not 1 <= len(segments) <= PROFILE_MAX_SEGMENTS:
        raise WireError(f"profile_write: 1-{PROFILE_MAX_SEGMENTS} segments, got {len(segments)}")
    out = bytearray(b"Uw" + "".join(str(int(bool(z))) for z in zones).encode())
    out += f"{len(segments):03d}".encode()
    for duration, temperature in segments:
        if not 1 <= duration <= 999:
            raise WireError(f"profile_write: segment duration {duration} outside 1-999 (x10 ms)")
        if not 0 <= temperature <= 600:
            raise WireError(f"profile_write: segment temperature {temperature} outside 0-600")
        out += f"{duration:03d}{temperature:03d}".encode()
    return bytes(out)


def tenths(celsius: float) -> int:
    """°C (or °C/s) to the device's 0.1 units, rounded; never formats a float."""
    return int(round(celsius * 10))


def hundredths(celsius: float) -> int:
    """°C (or °C/s) to 0.01 units, rounded."""
    return int(round(celsius * 100))


class CommandParser:
    """Incremental decoder of the host byte stream, used by the simulator.

    ``feed(byte)`` returns a :class:`Command` when one is complete, ``None`` while more
    bytes are needed. A byte that cannot continue the current command drops the partial
    command (reported through ``errors``) and is tried as the start of a new one.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._spec: CommandSpec | None = None
        self._widths: list[int] = []
        self._digits = bytearray()
        self.errors: list[bytes] = []

    def reset(self) -> None:
        self._buffer.clear()
        self._spec = None
        self._widths = []
        self._digits.clear()

    def feed(self, byte: int) -> Command | None:
        char = bytes([byte])
        if self._spec is None:
            return self._feed_prefix(char)
        if not char.isdigit():
            self.errors.append(bytes(self._buffer))
            self.reset()
            return self._feed_prefix(char)
        self._buffer += char
        self._digits += char
        return self._maybe_complete()

    def _feed_prefix(self, char: bytes) -> Command | None:
        candidate = bytes(self._buffer) + char
        if candidate in _BY_PREFIX:
            self._buffer = bytearray(candidate)
            self._spec = _BY_PREFIX[candidate]
            self._widths = [w for w, _, _ in self._spec.fields]
            if self._spec.name == "profile_write":
                self._widths = [1] * ZONES + [3]
            return self._maybe_complete()
        if any(p.startswith(candidate) for p in _BY_PREFIX):
            self._buffer = bytearray(candidate)
            return None
        if self._buffer:
            self.errors.append(bytes(self._buffer))
            self.reset()
            return self._feed_prefix(char)
        self.errors.append(char)
        return None

    def _maybe_complete(self) -> Command | None:
        assert self._spec is not None
        if len(self._digits) < sum(self._widths):
            return None
        spec = self._spec
        if spec.name == "profile_write" and len(self._widths) == ZONES + 1:
            count = int(self._digits[ZONES:])
            self._widths += [3, 3] * count
            if count:
                return None
        values, pos = [], 0
        for width in self._widths:
            values.append(int(self._digits[pos : pos + width]))
            pos += width
        self.reset()
        if spec.name == "profile_write":
            pairs = values[ZONES + 1 :]
            segments = tuple(zip(pairs[::2], pairs[1::2], strict=True))
            return Command(spec.name, tuple(values[: ZONES + 1]), segments)
        bad = [
            (v, lo, hi) for v, (_, lo, hi) in zip(values, spec.fields, strict=True)
            if not lo <= v <= hi
        ]
        if bad:
            self.errors.append(spec.prefix + b"".join(str(v).encode() for v in values))
            return None
        return Command(spec.name, tuple(values))


# ---------------------------------------------------------------- device -> host frames


@dataclass(frozen=True)
class Temperatures:
    """Neutral (reference) temperature and zones 1-5, °C."""

    neutral: float
    zones: tuple[float, ...]

    @property
    def all(self) -> tuple[float, ...]:
        return (self.neutral, *self.zones)


@dataclass(frozen=True)
class StreamSample:
    """One streamed line: neutral + 5 zones in °C, plus the device's diagnostic values."""

    neutral: float
    zones: tuple[float, ...]
    diagnostics: tuple[int, ...] = field(default=())

    @property
    def all(self) -> tuple[float, ...]:
        return (self.neutral, *self.zones)


@dataclass(frozen=True)
class Buttons:
    button1: bool
    button2: bool


def _digits(fine: bool) -> int:
    return 4 if fine else 3


def _scale(fine: bool) -> float:
    return 100.0 if fine else 10.0


def _signed(value: float, fine: bool) -> str:
    raw = int(round(value * _scale(fine)))
    limit = 10 ** _digits(fine) - 1
    raw = max(-limit, min(limit, raw))
    return f"{'+' if raw >= 0 else '-'}{abs(raw):0{_digits(fine)}d}"


def _unsigned(value: float, fine: bool) -> str:
    raw = int(round(value * _scale(fine)))
    return f"{max(0, min(10 ** _digits(fine) - 1, raw)):0{_digits(fine)}d}"


def encode_temperatures(values: Sequence[float], fine: bool = False) -> bytes:
    """``E`` reply: CR, neutral unsigned, then 5 signed zones (0.1 °C, or 0.01 °C after Oe)."""
    neutral, *zones = values
    return CR + (_unsigned(neutral, fine) + "".join(_signed(z, fine) for z in zones)).encode()


def encode_stream_line(
    values: Sequence[float], diagnostics: Sequence[int] = (0, 0), fine: bool = False
) -> bytes:
    """Streamed line: CR + six signed values + two signed diagnostic values."""
    body = "".join(_signed(v, fine) for v in values)
    width = _digits(fine)
    body += "".join(f"{'+' if d >= 0 else '-'}{abs(d):0{width}d}" for d in diagnostics)
    return CR + body.encode()


def encode_buttons(buttons: Buttons) -> bytes:
    return CR + f"{int(buttons.button1)}{int(buttons.button2)}".encode()


def encode_errors(codes: Sequence[int]) -> bytes:
    """``Q`` reply: CR + one digit per channel, neutral first, then zones 1-5."""
    return CR + "".join(str(min(9, max(0, c))) for c in codes).encode()


def encode_battery(percent: int) -> bytes:
    return CR + f"{max(0, min(100, percent)):03d}".encode()


def encode_neutral(celsius: float) -> bytes:
    return CR + f"N{tenths(celsius):03d}".encode()


def encode_identity() -> bytes:
    return CR + b"TCS"


def encode_clock(hhmmssddmmyy: str) -> bytes:
    return CR + hhmmssddmmyy.encode()


def encode_temperatures_buttons(values: Sequence[float], buttons: Buttons, fine: bool) -> bytes:
    return encode_temperatures(values, fine) + encode_buttons(buttons)[1:]


def encode_profile_readback(zones: Sequence[bool], segments: Sequence[tuple[int, int]]) -> bytes:
    return CR + encode_profile(zones, segments)[2:]


def encode_lines(lines: Sequence[str]) -> bytes:
    return b"".join(CR + line.encode() for line in lines)


def _stream_pattern(fine: bool) -> re.Pattern[bytes]:
    return re.compile(rb"(?:[+-]\d{%d}){6,8}" % _digits(fine))


def _temps_pattern(fine: bool) -> re.Pattern[bytes]:
    d = _digits(fine)
    return re.compile(rb"\d{%d}(?:[+-]\d{%d}){5}" % (d, d))


REPLY_PATTERNS: dict[str, Callable[[bool], re.Pattern[bytes]]] = {
    "temperatures": _temps_pattern,
    "temperatures_buttons": lambda fine: re.compile(_temps_pattern(fine).pattern + rb"[01]{2}"),
    "buttons": lambda fine: re.compile(rb"[01]{2}"),
    "errors": lambda fine: re.compile(rb"\d{6}"),
    "battery": lambda fine: re.compile(rb"\d{3}"),
    "neutral": lambda fine: re.compile(rb"N\d{3}"),
    "identity": lambda fine: re.compile(rb"TCS"),
    "clock": lambda fine: re.compile(rb"\d{12}"),
    "profile": lambda fine: re.compile(rb"[01]{5}(\d{3})(?:\d{6})*"),
}


def reply_complete(reply: str, body: bytes, fine: bool) -> bool:
    """True when ``body`` (after its CR) is a whole reply of the given kind."""
    if reply == "lines":
        return False  # multi-line text ends when the device goes quiet
    match = REPLY_PATTERNS[reply](fine).fullmatch(body)
    if match is None:
        return False
    if reply == "profile":
        return len(body) == 8 + 6 * int(match.group(1))
    return True


def is_stream_line(body: bytes, fine: bool) -> bool:
    return _stream_pattern(fine).fullmatch(body) is not None


def decode_stream_line(body: bytes, fine: bool = False) -> StreamSample:
    if not is_stream_line(body, fine):
        raise WireError(f"not a temperature stream line: {body!r}")
    width = _digits(fine) + 1
    raw = [int(body[i : i + width]) for i in range(0, len(body), width)]
    scale = _scale(fine)
    temps = [r / scale for r in raw[:6]]
    return StreamSample(temps[0], tuple(temps[1:]), tuple(raw[6:]))


def _check(reply: str, body: bytes, fine: bool) -> None:
    if not reply_complete(reply, body, fine):
        raise WireError(f"malformed {reply} reply: {body!r}")


def decode_temperatures(body: bytes, fine: bool = False) -> Temperatures:
    _check("temperatures", body, fine)
    d, scale = _digits(fine), _scale(fine)
    neutral = int(body[:d]) / scale
    zones = tuple(int(body[d + i * (d + 1) : d + (i + 1) * (d + 1)]) / scale for i in range(5))
    return Temperatures(neutral, zones)


def decode_buttons(body: bytes) -> Buttons:
    _check("buttons", body, False)
    return Buttons(body[0:1] == b"1", body[1:2] == b"1")


def decode_temperatures_buttons(body: bytes, fine: bool = False) -> tuple[Temperatures, Buttons]:
    _check("temperatures_buttons", body, fine)
    return decode_temperatures(body[:-2], fine), decode_buttons(body[-2:])


def decode_errors(body: bytes) -> tuple[int, ...]:
    _check("errors", body, False)
    return tuple(int(c) for c in body.decode())


def decode_battery(body: bytes) -> int:
    _check("battery", body, False)
    return int(body)


def decode_neutral(body: bytes) -> float:
    _check("neutral", body, False)
    return int(body[1:]) / 10.0


def decode_identity(body: bytes) -> str:
    _check("identity", body, False)
    return body.decode()


def decode_clock(body: bytes) -> str:
    _check("clock", body, False)
    return body.decode()


def decode_profile(body: bytes) -> tuple[tuple[bool, ...], tuple[tuple[int, int], ...]]:
    _check("profile", body, False)
    zones = tuple(c == ord("1") for c in body[:5])
    rest = body[8:]
    segments = tuple(
        (int(rest[i : i + 3]), int(rest[i + 3 : i + 6])) for i in range(0, len(rest), 6)
    )
    return zones, segments


def decode_help(lines: Sequence[str]) -> dict[str, str]:
    """Pick ``Firmware:``, ``Probe ID:`` and ``Probe TYPE:`` out of the help text."""
    info: dict[str, str] = {}
    for line in lines:
        for key in ("Firmware", "Probe ID", "Probe TYPE"):
            if line.strip().lower().startswith(key.lower() + ":"):
                info[key] = line.split(":", 1)[1].strip()
    return info


@dataclass
class FrameSplitter:
    """Splits device bytes into CR-prefixed frames and separates stream lines.

    ``feed`` returns completed frames as ``(kind, body)`` with kind ``"stream"``,
    ``"reply"`` or ``"garbage"`` (bytes outside any frame). A frame completes at the
    next CR, when it is a full 8-value stream line, or when ``expect`` (the pending
    reply kind) says it is whole.
    """

    fine: bool = False
    expect: str | None = None
    _frame: bytearray | None = None
    _stale: bool = False
    _garbage: bytearray = field(default_factory=bytearray)

    def mark_stale(self) -> None:
        """The open frame (if any) began before the current request: never a reply to it."""
        self._stale = self._frame is not None

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for byte in data:
            if byte == CR[0]:
                self._close(out)
                self._frame = bytearray()
            elif self._frame is None:
                self._garbage.append(byte)
            else:
                self._frame.append(byte)
                self._maybe_close(out)
        if self._garbage:
            out.append(("garbage", bytes(self._garbage)))
            self._garbage.clear()
        return out

    def flush(self) -> list[tuple[str, bytes]]:
        """Close the open frame (used when the device has gone quiet)."""
        out: list[tuple[str, bytes]] = []
        self._close(out)
        return out

    def _close(self, out: list[tuple[str, bytes]]) -> None:
        if self._frame is not None and len(self._frame):
            body = bytes(self._frame)
            if is_stream_line(body, self.fine):
                out.append(("stream", body))
            else:
                out.append(("garbage" if self._stale else "reply", body))
        self._frame = None
        self._stale = False

    def _maybe_close(self, out: list[tuple[str, bytes]]) -> None:
        assert self._frame is not None
        body = bytes(self._frame)
        full_stream = len(body) == 8 * (_digits(self.fine) + 1) and is_stream_line(body, self.fine)
        if full_stream or (
            self.expect
            and self.expect != "lines"
            and not self._stale
            and reply_complete(self.expect, body, self.fine)
        ):
            self._close(out)


_PARAMETER_PATTERNS = {
    "baseline": re.compile(r"N(\d{3})"),
    "enabled": re.compile(r"S([01]{5})"),
    "zone": re.compile(r"([1-5]) C(\d{3}) V(\d{4}) R(\d{4}) D(\d{5})"),
    "max_temperature": re.compile(r"Om(\d{3})"),
}


def decode_parameters(lines: Sequence[str]) -> dict[str, object]:
    """The ``P`` reply: baseline, enabled zones, per-zone (target, rise, return, ms), Om.

    Assumed layout (see docs/devices.md): ``N320``, ``S10000``, one ``1 C450 V0100 R0100
    D01000`` line per zone, ``Om500``. Raises WireError if a line does not fit it.
    """
    out: dict[str, object] = {"zones": {}}
    zones: dict[int, tuple[float, float, float, int]] = {}
    for line in lines:
        text = line.strip()
        if not text:
            continue
        for key, pattern in _PARAMETER_PATTERNS.items():
            m = pattern.fullmatch(text)
            if m is None:
                continue
            if key == "zone":
                z, c, v, r, d = m.groups()
                zones[int(z)] = (int(c) / 10, int(v) / 10, int(r) / 10, int(d))
            elif key == "enabled":
                out[key] = tuple(ch == "1" for ch in m.group(1))
            else:
                out[key] = int(m.group(1)) / 10
            break
        else:
            raise WireError(f"unrecognised parameter line {text!r}")
    out["zones"] = zones
    return out
