"""Medoc TSA-II / Pathway "External Control" over TCP: pure encode/decode (no I/O).

Request: ``[length u32][unix time u32][command u8][parameter u32, optional]``; length (5 or 9)
counts the bytes after itself. We send everything little-endian; public clients disagree on
the length's byte order, so :class:`RequestDecoder` accepts both (the plausible one wins).
Response, little-endian: length u32 (bytes after itself), timestamp u32, command u8,
systemState u8, testState u8, returnCode u16, testTime u32 ms, temperature i16 (0.01 °C),
CoVAS u8, yes u8, no u8, TTL u8, then ``length - 19`` bytes of message text.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from drivers.errors import DeviceFault, FieldRangeError, WireError

DEFAULT_PORT = 20121
U32_MAX = 0xFFFF_FFFF
MAX_FRAME = 4096  # longest response body accepted (length field); anything longer is garbage
RESPONSE_FIXED = 19  # body bytes before the message text
_RESPONSE = struct.Struct("<IBBBHIhBBBB")  # after the length field
_HEADER = struct.Struct("<I")


class Command(IntEnum):
    GET_STATUS = 0
    SELECT_TP = 1  # parameter: program code 0-255
    START = 2
    PAUSE = 3
    TRIGGER = 4
    STOP = 5
    ABORT = 6
    YES = 7
    NO = 8
    COVAS = 9
    VAS = 10
    SPECIFY_NEXT = 11
    T_UP = 12  # parameter: step in 0.01 °C (VAS search programs only)
    T_DOWN = 13
    KEYUP = 14


# commands sent with a parameter (9-byte request); the others are 5 bytes
PARAMETER_COMMANDS = frozenset({Command.SELECT_TP, Command.COVAS, Command.VAS,
                                Command.SPECIFY_NEXT, Command.T_UP, Command.T_DOWN})


class SystemState(IntEnum):
    IDLE = 0
    READY = 1
    TEST = 2


class TestState(IntEnum):
    __test__ = False  # not a pytest class

    IDLE = 0
    RUNNING = 1
    PAUSED = 2
    READY = 3


class ReturnCode(IntEnum):
    OK = 0
    ILLEGAL_ARG = 1
    ILLEGAL_STATE = 2
    ILLEGAL_TEST_STATE = 3
    DEVICE_COMM_ERROR = 0x1000
    SAFETY_WARNING = 0x2000
    WAITING_MANUAL_OPERATION = 0x3000
    SAFETY_ERROR = 0x4000


_MEANINGS = {
    ReturnCode.OK: "OK",
    ReturnCode.ILLEGAL_ARG: "illegal parameter",
    ReturnCode.ILLEGAL_STATE: "not allowed in the current system state",
    ReturnCode.ILLEGAL_TEST_STATE: "not allowed in the current test state",
    ReturnCode.DEVICE_COMM_ERROR: "MMS cannot communicate with the stimulator",
    ReturnCode.SAFETY_WARNING: "safety warning; the test continues",
    ReturnCode.WAITING_MANUAL_OPERATION: "MMS waits for a manual operation by the operator",
    ReturnCode.SAFETY_ERROR: "safety error; MMS went IDLE",
}


def describe_return_code(code: int) -> str:
    """``"SAFETY_ERROR (0x4000): safety error; MMS went IDLE"``; unknown codes say so."""
    try:
        known = ReturnCode(code)
    except ValueError:
        return f"unknown return code 0x{code:04x}"
    return f"{known.name} (0x{int(known):04x}): {_MEANINGS[known]}"


def command_name(command: int) -> str:
    try:
        return Command(command).name
    except ValueError:
        return f"command {command}"


@dataclass(frozen=True)
class Thermode:
    """A Medoc thermode as documented: range (°C) and fastest heating and cooling (°C/s)."""

    name: str
    min_celsius: float
    max_celsius: float
    max_heating: float
    max_cooling: float


THERMODES = {
    "ATS": Thermode("ATS", 0.0, 55.0, 8.0, 8.0),
    "CHEPS": Thermode("CHEPS", 30.0, 55.0, 70.0, 40.0),
}
REST_CELSIUS = 32.0  # MMS default rest (baseline) temperature


def thermode(name: str) -> Thermode:
    try:
        return THERMODES[name.upper()]
    except KeyError:
        raise ValueError(f"unknown Medoc thermode {name!r} (known: "
                         f"{', '.join(THERMODES)})") from None


# ---------------------------------------------------------------------- return-code errors


class MedocReturnCodeError(DeviceFault):
    """MMS answered a command with a non-OK return code."""

    code: int = -1

    def __init__(self, code: int, command: int, message: str = "", where: str = "MMS") -> None:
        self.code, self.command, self.device_message = code, command, message
        text = f"{where}: {command_name(command)} failed: {describe_return_code(code)}"
        super().__init__(text + (f" ({message})" if message else ""))


class IllegalArgument(MedocReturnCodeError):
    code = ReturnCode.ILLEGAL_ARG


class IllegalState(MedocReturnCodeError):
    code = ReturnCode.ILLEGAL_STATE


class IllegalTestState(MedocReturnCodeError):
    code = ReturnCode.ILLEGAL_TEST_STATE


class DeviceCommError(MedocReturnCodeError):
    code = ReturnCode.DEVICE_COMM_ERROR


class SafetyWarning(MedocReturnCodeError):
    code = ReturnCode.SAFETY_WARNING


class WaitingManualOperation(MedocReturnCodeError):
    code = ReturnCode.WAITING_MANUAL_OPERATION


class SafetyError(MedocReturnCodeError):
    code = ReturnCode.SAFETY_ERROR


class UnknownReturnCode(MedocReturnCodeError):
    pass


_ERRORS: dict[int, type[MedocReturnCodeError]] = {
    cls.code: cls for cls in (IllegalArgument, IllegalState, IllegalTestState, DeviceCommError,
                              SafetyWarning, WaitingManualOperation, SafetyError)
}


def return_code_error(code: int, command: int, message: str = "",
                      where: str = "MMS") -> MedocReturnCodeError:
    """The error for a non-OK ``code`` (``UnknownReturnCode`` if it is not documented)."""
    return _ERRORS.get(code, UnknownReturnCode)(code, command, message, where)


# ---------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """A decoded request. ``timestamp`` is read little-endian; ``timestamp_raw`` is echoed."""

    command: int  # 0-255 (Command when known)
    parameter: int | None
    timestamp: int
    timestamp_raw: bytes
    big_endian_length: bool = False


def _u32(what: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{what} {value!r} is not an integer")
    if not 0 <= value <= U32_MAX:
        raise FieldRangeError(f"{what} {value} does not fit an unsigned 32-bit field")
    return value


def encode_request(command: int, parameter: int | None = None, *, timestamp: int,
                   big_endian_length: bool = False) -> bytes:
    """One request; little-endian unless ``big_endian_length`` (as some clients send it)."""
    if not isinstance(command, int) or not 0 <= command <= 0xFF:
        raise FieldRangeError(f"command {command!r} does not fit an unsigned byte")
    body = _HEADER.pack(_u32("timestamp", timestamp)) + bytes([command])
    if parameter is not None:
        body += _HEADER.pack(_u32(f"{command_name(command)} parameter", parameter))
    length = struct.pack(">I" if big_endian_length else "<I", len(body))
    return length + body


def _request_length(header: bytes) -> tuple[int, bool]:
    """(length, big_endian) of a request header; WireError unless one order gives 5 or 9."""
    little, big = struct.unpack("<I", header)[0], struct.unpack(">I", header)[0]
    if little in (5, 9):
        return little, False
    if big in (5, 9):
        return big, True
    raise WireError(f"request length {header.hex()} is neither 5 nor 9 in either byte order")


class RequestDecoder:
    """Incremental request decoder (simulator side): ``feed(bytes) -> [Request]``.

    A header that is 5 or 9 in neither byte order cannot be resynchronised: WireError, and
    the decoder stays broken (the connection should be closed).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken: str | None = None

    def feed(self, data: bytes) -> list[Request]:
        if self.broken:
            raise WireError(self.broken)
        self._buffer += data
        out: list[Request] = []
        while len(self._buffer) >= 4:
            try:
                length, big = _request_length(bytes(self._buffer[:4]))
            except WireError as exc:
                self.broken = str(exc)
                raise
            if len(self._buffer) < 4 + length:
                break
            body = bytes(self._buffer[4 : 4 + length])
            del self._buffer[: 4 + length]
            parameter = struct.unpack("<I", body[5:9])[0] if length == 9 else None
            out.append(Request(body[4], parameter, struct.unpack("<I", body[:4])[0],
                               body[:4], big))
        return out


def decode_request(data: bytes) -> Request:
    """Exactly one whole request; WireError otherwise."""
    decoder = RequestDecoder()
    requests = decoder.feed(data)
    if len(requests) != 1 or decoder._buffer:
        raise WireError(f"not exactly one request: {data.hex()}")
    return requests[0]


# ---------------------------------------------------------------------- responses


@dataclass(frozen=True)
class Status:
    """One response. ``temperature_c`` in °C (0.01 °C on the wire)."""

    system_state: SystemState
    test_state: TestState
    return_code: int = ReturnCode.OK
    test_time_ms: int = 0
    temperature_c: float = 32.0
    covas: int = 0
    yes: int = 0
    no: int = 0
    ttl: int = 0
    message: str = ""
    command: int = Command.GET_STATUS
    timestamp: int = 0

    @property
    def ok(self) -> bool:
        return self.return_code == ReturnCode.OK

    @property
    def in_test(self) -> bool:
        """A test is selected and started (pre-test, running or paused)."""
        return self.system_state == SystemState.TEST


def _byte(what: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise FieldRangeError(f"{what} {value!r} does not fit an unsigned byte")
    return value


def encode_response(status: Status) -> bytes:
    """The response frame for ``status`` (simulator side); WireError if a field cannot fit."""
    hundredths = round(status.temperature_c * 100)
    if not -0x8000 <= hundredths <= 0x7FFF:
        raise FieldRangeError(f"temperature {status.temperature_c} °C does not fit the i16 field")
    if not 0 <= status.return_code <= 0xFFFF:
        raise FieldRangeError(f"return code {status.return_code} does not fit 16 bits")
    message = status.message.encode("utf-8")
    if RESPONSE_FIXED + len(message) > MAX_FRAME:
        raise WireError(f"message of {len(message)} bytes is too long")
    body = _RESPONSE.pack(
        _u32("timestamp", status.timestamp), _byte("command", status.command),
        _byte("system state", status.system_state), _byte("test state", status.test_state),
        status.return_code, _u32("test time", status.test_time_ms), hundredths,
        _byte("CoVAS", status.covas), _byte("yes", status.yes), _byte("no", status.no),
        _byte("TTL", status.ttl),
    ) + message
    return _HEADER.pack(len(body)) + body


def decode_response_body(body: bytes) -> Status:
    """A response body (after the length field); WireError on unknown states."""
    if not RESPONSE_FIXED <= len(body) <= MAX_FRAME:
        raise WireError(f"response body of {len(body)} bytes (expected {RESPONSE_FIXED}-"
                        f"{MAX_FRAME})")
    (timestamp, command, system, test, code, test_time, hundredths, covas, yes, no,
     ttl) = _RESPONSE.unpack_from(body)
    try:
        system_state, test_state = SystemState(system), TestState(test)
    except ValueError:
        raise WireError(f"response has unknown states (system {system}, test {test})") from None
    message = body[RESPONSE_FIXED:].rstrip(b"\x00").decode("utf-8", errors="replace")
    return Status(system_state, test_state, code, test_time, hundredths / 100.0, covas, yes, no,
                  ttl, message, _as_command(command), timestamp)


def _as_command(value: int) -> int:
    try:
        return Command(value)
    except ValueError:
        return value


class ResponseDecoder:
    """Incremental response decoder (driver side): ``feed(bytes) -> [Status]``.

    Handles frames split across reads. An impossible length (< 19 or > 4096) or unknown
    state raises WireError, after which the decoder stays broken: the byte stream cannot be
    resynchronised, so the caller should drop the connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken: str | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Status]:
        if self.broken:
            raise WireError(self.broken)
        self._buffer += data
        out: list[Status] = []
        while len(self._buffer) >= 4:
            length = _HEADER.unpack_from(self._buffer)[0]
            try:
                if not RESPONSE_FIXED <= length <= MAX_FRAME:
                    raise WireError(f"response length {length} is impossible "
                                    f"(expected {RESPONSE_FIXED}-{MAX_FRAME})")
                if len(self._buffer) < 4 + length:
                    break
                body = bytes(self._buffer[4 : 4 + length])
                del self._buffer[: 4 + length]
                out.append(decode_response_body(body))
            except WireError as exc:
                self.broken = str(exc)
                raise
        return out


def decode_response(data: bytes) -> Status:
    """Exactly one whole response; WireError otherwise."""
    decoder = ResponseDecoder()
    statuses = decoder.feed(data)
    if len(statuses) != 1 or decoder.pending:
        raise WireError(f"not exactly one response ({len(statuses)} frames, "
                        f"{decoder.pending} bytes left)")
    return statuses[0]
