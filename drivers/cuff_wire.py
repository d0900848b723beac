"""Open Cuff Protocol OCP/1 (docs/cuff-protocol.md): pure encode/decode, shared with the simulator.

Host lines are commands (:func:`encode_command` / :func:`decode_command`); device lines are
replies (``OK``/``ERR``), data (``D``) and events (``E``) (:func:`encode_line` /
:func:`decode_line`). Every line type has one field layout, used both ways. Decoders are
strict: a malformed line raises :class:`WireError`, a value outside its field
:class:`FieldRangeError`; nothing out of range is ever returned. Values are floats that are
exact multiples of the field's resolution (0.1 kPa, 0.1 kPa/s, 0.1 cm) and integer ms;
encoders refuse other values instead of rounding them (:func:`quantize`, :func:`round_ms`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

from drivers.errors import FieldRangeError, WireError

PROTOCOL = "OCP/1"
BAUDRATE = 115200
TICK_MS = 50  # 20 Hz: program updates, data lines, stop checks
OUTLETS = (1, 2)
MAX_SEGMENTS = 32
MAX_REPEAT = 100
PRESSURE_MAX = 200.0  # field range of every pressure (kPa); the hardware maximum is lower
LIMIT_MIN = 1.0
RATE_MIN, RATE_MAX = 0.1, 100.0  # kPa/s
DURATION_MIN_MS, DURATION_MAX_MS = 50, 600_000
VAS_MAX = 10.0  # cm
TIME_MAX_MS = 2**32 - 1
OVERPRESSURE_MARGIN = 2.0  # kPa above LIMIT: the device deflates (reason LIMIT)
MAX_LINE = 96  # bytes before LF, either direction
MODES = ("VAS", "BUTTON")
SEGMENT_KINDS = ("STEP", "INC", "DEC")
STOP_REASONS = ("VAS", "BUTTON", "END", "STOP", "LIMIT", "FAULT")
ERROR_CODES = ("SYNTAX", "RANGE", "BUSY", "VAS", "EMPTY", "LIMIT", "FULL")
FAULT_CODES = ("LEAK", "SENSOR", "SUPPLY", "VALVE")
_UINT = re.compile(r"0|[1-9][0-9]{0,9}")
_DEC = re.compile(r"(0|[1-9][0-9]{0,2})(\.[0-9])?")
_TOKEN = re.compile(r"[A-Za-z0-9._+/-]{1,24}")


# ------------------------------------------------------------------ host commands

@dataclass(frozen=True)
class Identify:
    """``ID``."""


@dataclass(frozen=True)
class SetLimit:
    """``LIMIT <kPa>``: the device clamps it to its hardware maximum."""
    kpa: float


@dataclass(frozen=True)
class ClearProgram:
    """``PCLR <outlet>``: no segments, repeat 1."""
    outlet: int


@dataclass(frozen=True)
class AddSegment:
    """``PSTEP|PINC|PDEC <outlet> <value> <ms>``: value in kPa (STEP) or kPa/s (INC, DEC)."""
    outlet: int
    kind: str
    value: float
    ms: int


@dataclass(frozen=True)
class SetRepeat:
    """``PREP <outlet> <count>``."""
    outlet: int
    count: int


@dataclass(frozen=True)
class SetMode:
    """``MODE VAS|BUTTON``."""
    mode: str


@dataclass(frozen=True)
class Start:
    """``START`` or ``START FORCE`` (skips the VAS-at-zero check)."""
    force: bool = False


@dataclass(frozen=True)
class Stop:
    """``STOP``: deflate both outlets now."""


@dataclass(frozen=True)
class QueryStatus:
    """``STATUS``."""


@dataclass(frozen=True)
class SetStream:
    """``STREAM ON|OFF``: data lines at 20 Hz."""
    on: bool


Command = (Identify | SetLimit | ClearProgram | AddSegment | SetRepeat | SetMode | Start | Stop
           | QueryStatus | SetStream)


# ------------------------------------------------------------------ device lines

@dataclass(frozen=True)
class Identity:
    """``OK ID <protocol> <model> <firmware> <hardware maximum kPa>``."""
    protocol: str
    model: str
    firmware: str
    max_kpa: float


@dataclass(frozen=True)
class Ack:
    """``OK <command>``: the command as the device applied it (canonical, clamped, rounded)."""
    command: Command


@dataclass(frozen=True)
class Started:
    """``OK START <t_ms>``: the device time at which the run began."""
    t_ms: int


@dataclass(frozen=True)
class StatusReport:
    """``OK STATUS <IDLE|RUNNING> <mode> <limit> <n1> <r1> <n2> <r2> <p1> <p2> <vas> <button>``."""
    state: str
    mode: str
    limit: float
    segments1: int
    repeat1: int
    segments2: int
    repeat2: int
    p1: float
    p2: float
    vas: float
    button: bool

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


@dataclass(frozen=True)
class Refused:
    """``ERR <code> <message>``: the command had no effect (but see SYNTAX while running)."""
    code: str
    message: str


@dataclass(frozen=True)
class Data:
    """``D <t_ms> <p1> <target1> <p2> <target2> <vas> <button>``."""
    t_ms: int
    p1: float
    target1: float
    p2: float
    target2: float
    vas: float
    button: bool


@dataclass(frozen=True)
class Stopped:
    """``E STOPPED <reason> <t_ms> <p1> <p2> <vas>``: the final pressures and VAS of a run."""
    reason: str
    t_ms: int
    p1: float
    p2: float
    vas: float


@dataclass(frozen=True)
class Fault:
    """``E FAULT <code> <outlet>`` (outlet 0: the device as a whole)."""
    code: str
    outlet: int


@dataclass(frozen=True)
class Reset:
    """``E RESET <protocol>``: sent once after power-up or a reset; settings are defaults."""
    protocol: str


Reply = Identity | Ack | Started | StatusReport | Refused
Event = Stopped | Fault | Reset
DeviceLine = Reply | Data | Event


# ------------------------------------------------------------------ field layouts

@dataclass(frozen=True)
class Field:
    """A field's grammar: uint, dec (one decimal), word (one of ``words``), token, or bool
    (``words`` = the false and the true word)."""
    kind: str
    lo: float = 0.0
    hi: float = 0.0
    words: tuple[str, ...] = ()


OUTLET, TIME = Field("uint", 1, 2), Field("uint", 0, TIME_MAX_MS)
KPA, VAS, LIMIT = (Field("dec", 0.0, PRESSURE_MAX), Field("dec", 0.0, VAS_MAX),
                   Field("dec", LIMIT_MIN, PRESSURE_MAX))
TOKEN, BUTTON = Field("token"), Field("bool", words=("0", "1"))
SEGMENTS, REPEAT = Field("uint", 0, MAX_SEGMENTS), Field("uint", 1, MAX_REPEAT)
SEGMENT_VALUE = {"STEP": KPA, "INC": Field("dec", RATE_MIN, RATE_MAX),
                 "DEC": Field("dec", RATE_MIN, RATE_MAX)}
DURATION_IN = Field("uint", DURATION_MIN_MS // 2, DURATION_MAX_MS)  # rounded to 50 ms
DURATION_OUT = Field("uint", DURATION_MIN_MS, DURATION_MAX_MS)
_COMMANDS: dict[str, tuple[type, tuple[Field, ...]]] = {
    "ID": (Identify, ()), "STOP": (Stop, ()), "STATUS": (QueryStatus, ()),
    "LIMIT": (SetLimit, (LIMIT,)), "PCLR": (ClearProgram, (OUTLET,)),
    "PREP": (SetRepeat, (OUTLET, REPEAT)), "MODE": (SetMode, (Field("word", words=MODES),)),
    "STREAM": (SetStream, (Field("bool", words=("OFF", "ON")),)),
}
_LINES: dict[str, tuple[type, tuple[Field, ...]]] = {
    "OK ID": (Identity, (TOKEN, TOKEN, TOKEN, LIMIT)),
    "OK START": (Started, (TIME,)),
    "OK STATUS": (StatusReport, (Field("word", words=("IDLE", "RUNNING")),
                                 Field("word", words=MODES), LIMIT, SEGMENTS, REPEAT, SEGMENTS,
                                 REPEAT, KPA, KPA, VAS, BUTTON)),
    "D": (Data, (TIME, KPA, KPA, KPA, KPA, VAS, BUTTON)),
    "E STOPPED": (Stopped, (Field("word", words=STOP_REASONS), TIME, KPA, KPA, VAS)),
    "E FAULT": (Fault, (Field("word", words=FAULT_CODES), Field("uint", 0, 2))),
    "E RESET": (Reset, (TOKEN,)),
}
_COMMAND_LAYOUT = {cls: (name, layout) for name, (cls, layout) in _COMMANDS.items()}
_LINE_LAYOUT = {cls: (prefix, layout) for prefix, (cls, layout) in _LINES.items()}


def quantize(value: float) -> float:
    """Nearest multiple of 0.1, halves rounded up (what the device uses and reports)."""
    return math.floor(value * 10.0 + 0.5 + 1e-9) / 10.0


def round_ms(ms: float) -> int:
    """Nearest multiple of 50 ms, halves rounded up."""
    return int(math.floor(ms / TICK_MS + 0.5 + 1e-9)) * TICK_MS


def _format(spec: Field, value: object, name: str) -> str:
    if spec.kind in ("uint", "dec") and (isinstance(value, bool)
                                         or not isinstance(value, int | float)):
        raise WireError(f"{name} {value!r} is not a number")
    if spec.kind == "uint":
        if not isinstance(value, int):
            raise WireError(f"{name} {value!r} is not an integer")
        if not spec.lo <= value <= spec.hi:
            raise FieldRangeError(f"{name} {value} outside {spec.lo:g}-{spec.hi:g}")
        return str(value)
    if spec.kind == "dec":
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            raise FieldRangeError(f"{name} {value} is not finite")
        tenths = round(value * 10.0)
        if abs(value * 10.0 - tenths) > 1e-6:
            raise WireError(f"{name} {value} is not a multiple of 0.1")
        if not round(spec.lo * 10) <= tenths <= round(spec.hi * 10):
            raise FieldRangeError(f"{name} {value:g} outside {spec.lo:g}-{spec.hi:g}")
        return f"{tenths // 10}.{tenths % 10}"
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise WireError(f"{name} {value!r} is not a bool")
        return spec.words[value]
    if spec.kind == "word" and value not in spec.words:
        raise WireError(f"{name} {value!r} is not one of {', '.join(spec.words)}")
    if spec.kind == "token" and not (isinstance(value, str) and _TOKEN.fullmatch(value)):
        raise WireError(f"{name} {value!r} is not a 1-24 character token")
    return str(value)


def _parse(spec: Field, text: str, name: str) -> int | float | str | bool:
    if spec.kind in ("uint", "dec"):
        if not (_UINT if spec.kind == "uint" else _DEC).fullmatch(text):
            raise WireError(f"{name} {text!r} is not a valid {spec.kind} field")
        value = int(text) if spec.kind == "uint" else int(text.replace(".", "")) / (
            10.0 if "." in text else 1.0)
        if not spec.lo - 1e-9 <= value <= spec.hi + 1e-9:
            raise FieldRangeError(f"{name} {text} outside {spec.lo:g}-{spec.hi:g}")
        return value
    if spec.kind == "token":
        if not _TOKEN.fullmatch(text):
            raise WireError(f"{name} {text!r} is not a 1-24 character token")
        return text
    if text not in spec.words:
        raise WireError(f"{name} {text!r} is not one of {', '.join(spec.words)}")
    return text == spec.words[1] if spec.kind == "bool" else text


def _encode(prefix: str, layout: tuple[Field, ...], item: object) -> str:
    names = [f.name for f in fields(item)]  # type: ignore[arg-type]
    return " ".join([prefix, *(_format(spec, getattr(item, name), name)
                               for spec, name in zip(layout, names, strict=True))])


def _decode(cls: type, layout: tuple[Field, ...], tokens: list[str], what: str) -> object:
    if len(tokens) != len(layout):
        raise WireError(f"{what} takes {len(layout)} fields, not {len(tokens)}")
    names = [f.name for f in fields(cls)]
    return cls(*(_parse(spec, token, name)
                 for spec, token, name in zip(layout, tokens, names, strict=True)))


def _text(line: bytes) -> str:
    """The line (without its CR LF) as text; WireError unless printable ASCII."""
    if len(line) > MAX_LINE:
        raise WireError(f"line longer than {MAX_LINE} bytes: {line[:24]!r}...")
    if not line or any(not 0x20 <= b <= 0x7E for b in line):
        raise WireError(f"not a line of printable ASCII: {line[:MAX_LINE]!r}")
    return line.decode("ascii")


def _tokens(text: str) -> list[str]:
    tokens = text.split(" ")
    if "" in tokens:
        raise WireError(f"fields must be separated by single spaces: {text!r}")
    return tokens


def _line(text: str) -> bytes:
    if len(text) > MAX_LINE:
        raise WireError(f"line longer than {MAX_LINE} bytes: {text[:24]!r}...")
    return (text + "\n").encode("ascii")


# ------------------------------------------------------------------ commands

def encode_command(cmd: Command) -> bytes:
    """One command line, LF-terminated; WireError/FieldRangeError if a field does not fit."""
    return _line(_command_text(cmd))


def _command_text(cmd: Command) -> str:
    if isinstance(cmd, Start):
        if not isinstance(cmd.force, bool):
            raise WireError(f"force {cmd.force!r} is not a bool")
        return "START FORCE" if cmd.force else "START"
    if isinstance(cmd, AddSegment):
        if cmd.kind not in SEGMENT_KINDS:
            raise WireError(f"segment kind {cmd.kind!r} is not one of {SEGMENT_KINDS}")
        if not isinstance(cmd.ms, int) or cmd.ms % TICK_MS:
            raise WireError(f"duration {cmd.ms!r} ms is not a multiple of {TICK_MS} ms")
        return " ".join([f"P{cmd.kind}", _format(OUTLET, cmd.outlet, "outlet"),
                         _format(SEGMENT_VALUE[cmd.kind], cmd.value, cmd.kind.lower()),
                         _format(DURATION_OUT, cmd.ms, "duration")])
    if type(cmd) not in _COMMAND_LAYOUT:
        raise WireError(f"not a command: {cmd!r}")
    return _encode(*_COMMAND_LAYOUT[type(cmd)], cmd)


def decode_command(line: bytes) -> Command:
    """A host line (without its CR LF). Durations are rounded to 50 ms.

    Raises FieldRangeError (the device answers ``ERR RANGE``) or WireError (``ERR SYNTAX``).
    """
    name, *rest = _tokens(_text(line))
    if name == "START" and rest in ([], ["FORCE"]):
        return Start(force=bool(rest))
    if name in ("PSTEP", "PINC", "PDEC"):
        if len(rest) != 3:
            raise WireError(f"{name} takes 3 fields, not {len(rest)}")
        kind = name[1:]
        return AddSegment(int(_parse(OUTLET, rest[0], "outlet")), kind,
                          float(_parse(SEGMENT_VALUE[kind], rest[1], kind.lower())),
                          round_ms(int(_parse(DURATION_IN, rest[2], "duration"))))
    if name in _COMMANDS:
        return _decode(*_COMMANDS[name], rest, name)  # type: ignore[return-value]
    raise WireError(f"unknown command {' '.join([name, *rest])[:24]!r}")


# ------------------------------------------------------------------ device lines

def encode_line(item: DeviceLine) -> bytes:
    """One device line (reply, data or event), LF-terminated."""
    if isinstance(item, Ack):
        if isinstance(item.command, Identify | Start | QueryStatus):
            raise WireError(f"{item.command!r} has its own reply, not an echo")
        return _line("OK " + _command_text(item.command))
    if isinstance(item, Refused):
        message = item.message
        if not message or message[0] == " " or any(not " " <= c <= "~" for c in message):
            raise WireError(f"error message {message!r} is not printable ASCII")
        return _line(f"ERR {_format(Field('word', words=ERROR_CODES), item.code, 'code')} "
                     f"{message}")
    if type(item) not in _LINE_LAYOUT:
        raise WireError(f"not a device line: {item!r}")
    return _line(_encode(*_LINE_LAYOUT[type(item)], item))


def decode_line(line: bytes) -> DeviceLine:
    """A device line (without its CR LF)."""
    text = _text(line)
    if text.startswith("ERR "):
        _, code, *message = text.split(" ", 2)
        if not message or not message[0] or message[0][0] == " ":
            raise WireError(f"ERR needs a code and a message: {text!r}")
        return Refused(str(_parse(Field("word", words=ERROR_CODES), code, "code")), message[0])
    tokens = _tokens(text)
    for size in (2, 1):
        prefix = " ".join(tokens[:size])
        if prefix in _LINES:
            return _decode(*_LINES[prefix], tokens[size:], prefix)  # type: ignore[return-value]
    if tokens[0] != "OK" or len(tokens) < 2:
        raise WireError(f"not an {PROTOCOL} device line: {text!r}")
    command = decode_command(text[3:].encode("ascii"))
    if text[3:] != _command_text(command):
        raise WireError(f"not a canonical echo: {text!r}")
    return Ack(command)


# ------------------------------------------------------------------ program semantics

def program_targets(segments: list[AddSegment], repeat: int) -> tuple[float, float, float]:
    """Lowest and highest target of a program, and its length in seconds. The target starts
    at 0 and is piecewise linear; each segment starts where the one before ended, also from
    one repetition to the next."""
    target, lo, hi = 0.0, 0.0, 0.0
    for _ in range(repeat):
        for seg in segments:
            if seg.kind == "STEP":
                target = seg.value
            else:
                sign = 1.0 if seg.kind == "INC" else -1.0
                target += sign * seg.value * seg.ms / 1000.0
            lo, hi = min(lo, target), max(hi, target)
    return lo, hi, repeat * sum(seg.ms for seg in segments) / 1000.0


class LineSplitter:
    """Splits a byte stream at LF; a CR right before it and empty lines are dropped. A line
    longer than :data:`MAX_LINE` is passed on cut (too long to decode) and the rest of it,
    up to the next LF, is discarded, so its tail is never taken for a command."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        for byte in data:
            if byte == 0x0A:
                if self._buffer.endswith(b"\r"):
                    del self._buffer[-1]
                if self._buffer and not self._discarding:
                    lines.append(bytes(self._buffer))
                self._buffer.clear()
                self._discarding = False
            elif not self._discarding:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_LINE + 1:  # + 1: room for the CR of CR LF
                    lines.append(bytes(self._buffer))
                    self._buffer.clear()
                    self._discarding = True
        return lines
