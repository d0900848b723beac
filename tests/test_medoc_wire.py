"""Medoc External Control wire format: byte-exact frames, both byte orders, split frames, fuzz."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import medoc_wire as wire
from drivers.errors import DeviceFault, FieldRangeError, WireError
from drivers.medoc_wire import Command, ReturnCode, Status, SystemState, TestState

TS = 0x01020304
TS_LE = bytes.fromhex("04030201")
PARAMETERS = {Command.SELECT_TP: 0b0100_0000, Command.COVAS: 55, Command.VAS: 7,
              Command.SPECIFY_NEXT: 0x0A0B0C0D, Command.T_UP: 500, Command.T_DOWN: 150}


# ---------------------------------------------------------------------- requests


@pytest.mark.parametrize("command", list(Command))
def test_every_command_encodes_byte_exact_little_endian(command: Command) -> None:
    parameter = PARAMETERS.get(command)
    raw = wire.encode_request(command, parameter, timestamp=TS)
    if parameter is None:
        assert raw == bytes.fromhex("05000000") + TS_LE + bytes([command])
    else:
        assert raw == (bytes.fromhex("09000000") + TS_LE + bytes([command])
                       + struct.pack("<I", parameter))
    assert (command in wire.PARAMETER_COMMANDS) == (parameter is not None)
    decoded = wire.decode_request(raw)
    assert (decoded.command, decoded.parameter, decoded.timestamp) == (command, parameter, TS)
    assert decoded.timestamp_raw == TS_LE and not decoded.big_endian_length


def test_literal_frames() -> None:
    assert wire.encode_request(Command.GET_STATUS, timestamp=TS).hex() == "050000000403020100"
    assert (wire.encode_request(Command.SELECT_TP, 64, timestamp=TS).hex()
            == "09000000040302010140000000")
    assert (wire.encode_request(Command.T_DOWN, 500, timestamp=0).hex()
            == "09000000000000000df4010000")
    assert (wire.encode_request(Command.TRIGGER, timestamp=TS, big_endian_length=True).hex()
            == "000000050403020104")


@pytest.mark.parametrize("command", list(Command))
def test_big_endian_length_is_accepted(command: Command) -> None:
    parameter = PARAMETERS.get(command)
    raw = wire.encode_request(command, parameter, timestamp=TS, big_endian_length=True)
    assert raw[:4] == (b"\x00\x00\x00\x09" if parameter is not None else b"\x00\x00\x00\x05")
    decoded = wire.decode_request(raw)
    assert decoded.big_endian_length
    assert (decoded.command, decoded.parameter) == (command, parameter)


def test_public_python_client_frame_decodes() -> None:
    """Length and timestamp big-endian, parameter little-endian (as one public client)."""
    raw = (struct.pack(">I", 9) + struct.pack(">I", 1_700_000_000) + bytes([Command.SELECT_TP])
           + struct.pack("<I", 0b0100_0000))
    decoded = wire.decode_request(raw)
    assert decoded.command == Command.SELECT_TP and decoded.parameter == 64
    assert decoded.timestamp_raw == struct.pack(">I", 1_700_000_000)  # echoed as received


def test_requests_split_and_concatenated() -> None:
    frames = [wire.encode_request(Command.GET_STATUS, timestamp=1),
              wire.encode_request(Command.VAS, 3, timestamp=2, big_endian_length=True),
              wire.encode_request(Command.START, timestamp=3)]
    stream = b"".join(frames)
    decoder = wire.RequestDecoder()
    got = []
    for byte in stream:
        got += decoder.feed(bytes([byte]))
    assert [(r.command, r.parameter, r.timestamp) for r in got] == [
        (Command.GET_STATUS, None, 1), (Command.VAS, 3, 2), (Command.START, None, 3)]


@pytest.mark.parametrize("header", ["07000000", "00000007", "ffffffff", "00000000", "05000001"])
def test_implausible_request_length_is_refused_and_sticks(header: str) -> None:
    decoder = wire.RequestDecoder()
    with pytest.raises(WireError, match="neither 5 nor 9"):
        decoder.feed(bytes.fromhex(header) + b"\x00" * 9)
    with pytest.raises(WireError):  # the stream cannot be resynchronised
        decoder.feed(wire.encode_request(Command.GET_STATUS, timestamp=0))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"command": 256, "timestamp": 0}, "unsigned byte"),
    ({"command": -1, "timestamp": 0}, "unsigned byte"),
    ({"command": 1, "parameter": -1, "timestamp": 0}, "SELECT_TP parameter -1"),
    ({"command": 1, "parameter": 2**32, "timestamp": 0}, "32-bit"),
    ({"command": 0, "timestamp": 2**32}, "timestamp"),
])
def test_request_fields_out_of_range_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(FieldRangeError, match=match):
        wire.encode_request(**kwargs)


def test_non_integer_parameter_is_refused() -> None:
    with pytest.raises(WireError, match="not an integer"):
        wire.encode_request(Command.VAS, 4.5, timestamp=0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- responses

EXAMPLE = Status(SystemState.TEST, TestState.RUNNING, ReturnCode.OK, 1234, 45.67, 50, 1, 0, 0,
                 "", Command.TRIGGER, TS)
EXAMPLE_HEX = ("13000000" "04030201" "04" "02" "01" "0000" "d2040000" "d711" "32" "01" "00"
               "00")


def test_response_encodes_byte_exact() -> None:
    assert wire.encode_response(EXAMPLE).hex() == EXAMPLE_HEX
    assert wire.decode_response(bytes.fromhex(EXAMPLE_HEX)) == EXAMPLE


def test_response_with_message_negative_temperature_and_code() -> None:
    status = Status(SystemState.IDLE, TestState.IDLE, ReturnCode.SAFETY_ERROR, 0, -5.5,
                    message="over temp", command=Command.GET_STATUS, timestamp=7)
    raw = wire.encode_response(status)
    assert raw[:4] == struct.pack("<I", 19 + len("over temp"))
    assert raw[11:13] == b"\x00\x40"  # 0x4000, little-endian
    assert raw[17:19] == struct.pack("<h", -550)
    assert raw[23:] == b"over temp"
    assert wire.decode_response(raw) == status


def test_response_fields_out_of_range_are_refused() -> None:
    with pytest.raises(FieldRangeError, match="i16"):
        wire.encode_response(Status(SystemState.IDLE, TestState.IDLE, temperature_c=400.0))
    with pytest.raises(FieldRangeError, match="CoVAS"):
        wire.encode_response(Status(SystemState.IDLE, TestState.IDLE, covas=256))
    with pytest.raises(FieldRangeError, match="16 bits"):
        wire.encode_response(Status(SystemState.IDLE, TestState.IDLE, return_code=0x10000))


def test_split_responses_decode_once_complete() -> None:
    frames = wire.encode_response(EXAMPLE) + wire.encode_response(
        Status(SystemState.READY, TestState.IDLE, message="ok"))
    decoder = wire.ResponseDecoder()
    got = []
    for i in range(0, len(frames), 3):
        got += decoder.feed(frames[i : i + 3])
        if i + 3 < 23:
            assert got == [] and decoder.pending == i + 3
    assert [s.system_state for s in got] == [SystemState.TEST, SystemState.READY]
    assert got[1].message == "ok" and decoder.pending == 0


@pytest.mark.parametrize("length", [0, 18, 4097, 0xFFFFFFFF])
def test_impossible_response_length_is_refused_and_sticks(length: int) -> None:
    decoder = wire.ResponseDecoder()
    with pytest.raises(WireError, match=f"response length {length} is impossible"):
        decoder.feed(struct.pack("<I", length))
    assert decoder.broken
    with pytest.raises(WireError):
        decoder.feed(wire.encode_response(EXAMPLE))


@pytest.mark.parametrize(("offset", "value"), [(9, 3), (10, 4), (9, 255)])
def test_unknown_states_are_refused(offset: int, value: int) -> None:
    raw = bytearray(wire.encode_response(EXAMPLE))
    raw[offset] = value
    with pytest.raises(WireError, match="unknown states"):
        wire.decode_response(bytes(raw))


def test_unknown_echoed_command_is_kept_as_a_number() -> None:
    raw = bytearray(wire.encode_response(EXAMPLE))
    raw[8] = 15
    assert wire.decode_response(bytes(raw)).command == 15


def test_decode_response_wants_exactly_one_frame() -> None:
    one = wire.encode_response(EXAMPLE)
    with pytest.raises(WireError, match="2 frames"):
        wire.decode_response(one + one)
    with pytest.raises(WireError, match="0 frames"):
        wire.decode_response(one[:-1])


# ---------------------------------------------------------------------- return codes


@pytest.mark.parametrize(("code", "cls"), [
    (ReturnCode.ILLEGAL_ARG, wire.IllegalArgument),
    (ReturnCode.ILLEGAL_STATE, wire.IllegalState),
    (ReturnCode.ILLEGAL_TEST_STATE, wire.IllegalTestState),
    (ReturnCode.DEVICE_COMM_ERROR, wire.DeviceCommError),
    (ReturnCode.SAFETY_WARNING, wire.SafetyWarning),
    (ReturnCode.WAITING_MANUAL_OPERATION, wire.WaitingManualOperation),
    (ReturnCode.SAFETY_ERROR, wire.SafetyError),
    (0x5555, wire.UnknownReturnCode),
])
def test_return_codes_map_to_errors_naming_code_and_command(code: int, cls: type) -> None:
    error = wire.return_code_error(code, Command.START, "detail", "MMS x")
    assert type(error) is cls and isinstance(error, DeviceFault)
    text = str(error)
    assert text.startswith("MMS x: START failed: ") and text.endswith("(detail)")
    name = ReturnCode(code).name if code in ReturnCode._value2member_map_ else "0x5555"
    assert name in text
    assert error.code == code and error.command == Command.START


def test_describe_return_code() -> None:
    assert wire.describe_return_code(0x4000) == "SAFETY_ERROR (0x4000): safety error; MMS went IDLE"
    assert wire.describe_return_code(0) == "OK (0x0000): OK"
    assert wire.describe_return_code(0x3000).startswith("WAITING_MANUAL_OPERATION")
    assert wire.describe_return_code(9) == "unknown return code 0x0009"


def test_thermodes_as_documented() -> None:
    ats, cheps = wire.thermode("ats"), wire.thermode("CHEPS")
    assert (ats.min_celsius, ats.max_celsius, ats.max_heating, ats.max_cooling) == (0, 55, 8, 8)
    assert (cheps.min_celsius, cheps.max_celsius, cheps.max_heating, cheps.max_cooling) == (
        30, 55, 70, 40)
    with pytest.raises(ValueError, match="unknown Medoc thermode"):
        wire.thermode("TSA-9")


# ---------------------------------------------------------------------- fuzz

statuses = st.builds(
    Status,
    system_state=st.sampled_from(SystemState), test_state=st.sampled_from(TestState),
    return_code=st.integers(0, 0xFFFF), test_time_ms=st.integers(0, wire.U32_MAX),
    temperature_c=st.integers(-0x8000, 0x7FFF).map(lambda h: h / 100),
    covas=st.integers(0, 255), yes=st.integers(0, 255), no=st.integers(0, 255),
    ttl=st.integers(0, 255), message=st.text(st.characters(codec="ascii",
                                                           exclude_characters="\x00"),
                                              max_size=40),
    command=st.sampled_from(Command), timestamp=st.integers(0, wire.U32_MAX),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def _in_range(status: Status) -> None:
    assert status.system_state in SystemState and status.test_state in TestState
    assert 0 <= status.return_code <= 0xFFFF and 0 <= status.test_time_ms <= wire.U32_MAX
    assert -327.68 <= status.temperature_c <= 327.67
    for value in (status.covas, status.yes, status.no, status.ttl, status.command):
        assert 0 <= value <= 255
    assert 0 <= status.timestamp <= wire.U32_MAX
    assert len(status.message.encode()) <= 3 * (wire.MAX_FRAME - wire.RESPONSE_FIXED)


@given(st.lists(statuses, min_size=1, max_size=4), st.lists(st.integers(0, 10_000), max_size=8))
def test_fuzz_valid_responses_round_trip_in_any_split(frames: list[Status], cuts: list[int]
                                                      ) -> None:
    data = b"".join(wire.encode_response(s) for s in frames)
    decoder = wire.ResponseDecoder()
    got = [s for chunk in _split(data, cuts) for s in decoder.feed(chunk)]
    assert got == frames and decoder.pending == 0


@given(statuses, st.data())
def test_fuzz_truncated_response_yields_nothing_and_waits(status: Status, data: st.DataObject
                                                          ) -> None:
    raw = wire.encode_response(status)
    cut = data.draw(st.integers(0, len(raw) - 1))
    decoder = wire.ResponseDecoder()
    assert decoder.feed(raw[:cut]) == [] and decoder.pending == cut
    assert decoder.feed(raw[cut:]) == [status]


@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=6))
def test_fuzz_random_bytes_never_crash_the_response_decoder(data: bytes, cuts: list[int]
                                                            ) -> None:
    decoder = wire.ResponseDecoder()
    try:
        for chunk in _split(data, cuts):
            for status in decoder.feed(chunk):
                _in_range(status)
    except WireError as exc:
        assert decoder.broken == str(exc)
        with pytest.raises(WireError):
            decoder.feed(b"\x00")
    else:
        assert decoder.broken is None and 0 <= decoder.pending <= len(data)


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_fuzz_random_bytes_never_crash_the_request_decoder(data: bytes, cuts: list[int]
                                                           ) -> None:
    decoder = wire.RequestDecoder()
    try:
        for chunk in _split(data, cuts):
            for request in decoder.feed(chunk):
                assert 0 <= request.command <= 255 and len(request.timestamp_raw) == 4
                assert request.parameter is None or 0 <= request.parameter <= wire.U32_MAX
    except WireError:
        assert decoder.broken


@given(st.sampled_from(Command), st.integers(0, wire.U32_MAX), st.integers(0, wire.U32_MAX),
       st.booleans())
def test_fuzz_requests_round_trip(command: Command, parameter: int, timestamp: int, big: bool
                                  ) -> None:
    with_parameter = parameter if command in wire.PARAMETER_COMMANDS else None
    raw = wire.encode_request(command, with_parameter, timestamp=timestamp,
                              big_endian_length=big)
    decoded = wire.decode_request(raw)
    assert (decoded.command, decoded.parameter, decoded.timestamp, decoded.big_endian_length) == (
        command, with_parameter, timestamp, big)


@given(st.lists(statuses, min_size=1, max_size=3),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzz_corrupted_frames_decode_in_range_or_report(frames: list[Status],
                                                         flips: list[tuple[int, int]]) -> None:
    data = bytearray(b"".join(wire.encode_response(s) for s in frames))
    for position, value in flips:
        data[position % len(data)] = value
    decoder = wire.ResponseDecoder()
    try:
        for status in decoder.feed(bytes(data)):
            _in_range(status)
    except WireError as exc:
        assert str(exc) == decoder.broken
