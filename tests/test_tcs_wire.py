"""TCS II wire protocol: fixed-width encoding, command parsing, reply and stream decoding."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import tcs_wire as wire
from drivers.errors import FieldRangeError, WireError


def test_fixed_width_fields_send_every_digit() -> None:
    assert wire.encode("rise_rate", 1, wire.tenths(50.0)) == b"V10500"
    assert wire.encode("baseline", wire.tenths(30.0)) == b"N300"
    assert wire.encode("target", 0, wire.tenths(45.5)) == b"C0455"
    assert wire.encode("duration", 2, 10) == b"D200010"
    assert wire.encode("trigger_setup", 255, 300) == b"T255300"
    assert wire.encode("fine_rise_rate", 5, 1) == b"Ov500001"
    assert wire.encode("fine_target", 3, wire.hundredths(45.55)) == b"Ot34555"
    assert wire.encode("buzzer", 5, 50) == b"Z005050"
    assert wire.encode_mask("enable_zones", [True, False, True, False, False]) == b"S10100"


def test_tenths_rounds_instead_of_formatting_floats() -> None:
    assert wire.tenths(45.49999) == 455
    assert wire.tenths(0.05 + 0.1) == 2  # 0.15000000000000002 -> 2, never "1.5"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("target", (1, 601)),  # 60.1 °C overflows the device's 0-60 °C field
        ("target", (6, 300)),  # zone 6 does not exist
        ("baseline", (199,)),
        ("rise_rate", (1, 0)),
        ("rise_rate", (1, 10000)),
        ("duration", (1, 9)),
        ("mri_filter", (4,)),
    ],
)
def test_out_of_range_fields_are_refused(name: str, values: tuple[int, ...]) -> None:
    with pytest.raises(FieldRangeError, match="outside device range"):
        wire.encode(name, *values)


def test_non_integer_field_is_refused() -> None:
    with pytest.raises(WireError, match="not an integer"):
        wire.encode("baseline", 320.0)  # type: ignore[arg-type]


def _example_values(spec: wire.CommandSpec) -> tuple[int, ...]:
    return tuple(low + (high - low) // 3 for _, low, high in spec.fields)


@pytest.mark.parametrize("name", sorted(set(wire.COMMANDS) - {"profile_write"}))
def test_every_command_round_trips_through_the_simulator_parser(name: str) -> None:
    spec = wire.COMMANDS[name]
    values = _example_values(spec)
    raw = wire.encode(name, *values)
    parser = wire.CommandParser()
    decoded = [c for c in (parser.feed(b) for b in raw) if c is not None]
    assert decoded == [wire.Command(name, values)]
    assert not parser.errors


def test_profile_round_trip() -> None:
    raw = wire.encode_profile([True, False, False, False, True], [(100, 400), (50, 320)])
    assert raw == b"Uw10001002100400050320"
    parser = wire.CommandParser()
    decoded = [c for c in (parser.feed(b) for b in raw) if c is not None]
    assert decoded == [wire.Command("profile_write", (1, 0, 0, 0, 1, 2), ((100, 400), (50, 320)))]


def test_parser_resynchronises_after_garbage() -> None:
    parser = wire.CommandParser()
    out = [c for c in (parser.feed(b) for b in b"xC14AE") if c is not None]
    assert [c.name for c in out] == ["abort", "temperatures"]
    assert parser.errors == [b"x", b"C14"]


def test_temperature_reply_from_the_reference() -> None:
    body = b"320+320+321+319+320+320"
    assert len(b"\r" + body) == 24
    temps = wire.decode_temperatures(body)
    assert temps.neutral == 32.0
    assert temps.zones == (32.0, 32.1, 31.9, 32.0, 32.0)
    assert wire.encode_temperatures(temps.all) == b"\r" + body


def test_negative_and_fine_temperatures() -> None:
    raw = wire.encode_temperatures([30.0, -1.5, 0.0, 5.25, 59.99, 32.0], fine=True)
    assert raw == b"\r3000-0150+0000+0525+5999+3200"
    assert wire.decode_temperatures(raw[1:], fine=True).zones == (-1.5, 0.0, 5.25, 59.99, 32.0)


def test_stream_line_with_and_without_diagnostics() -> None:
    six = wire.decode_stream_line(b"+300+300+300+300+300+300")
    assert six.all == (30.0,) * 6 and six.diagnostics == ()
    eight = wire.decode_stream_line(b"+321-005+300+300+300+455+012+000")
    assert eight.neutral == 32.1 and eight.zones[0] == -0.5 and eight.zones[4] == 45.5
    assert eight.diagnostics == (12, 0)
    with pytest.raises(WireError):
        wire.decode_stream_line(b"320+320+321+319+320+320")


def test_splitter_separates_stream_lines_from_replies() -> None:
    splitter = wire.FrameSplitter(expect="buttons")
    stream = wire.encode_stream_line([32.0] * 6)
    frames = splitter.feed(stream + b"\r1" + b"0" + stream + stream[:7])
    assert frames == [("stream", stream[1:]), ("reply", b"10"), ("stream", stream[1:])]
    assert splitter.feed(stream[7:]) == [("stream", stream[1:])]
    assert splitter.feed(b"zz") == [("garbage", b"zz")]


def test_splitter_without_expectation_closes_replies_at_next_cr() -> None:
    splitter = wire.FrameSplitter()
    assert splitter.feed(b"\r10") == []
    assert splitter.feed(b"\r") == [("reply", b"10")]


def test_splitter_six_value_lines_end_at_next_cr() -> None:
    splitter = wire.FrameSplitter()
    assert splitter.feed(b"\r+300+300+300+300+300+300") == []
    assert splitter.feed(b"\r") == [("stream", b"+300+300+300+300+300+300")]
    assert splitter.flush() == []


def test_reply_decoders_reject_malformed_bodies() -> None:
    with pytest.raises(WireError, match="malformed buttons"):
        wire.decode_buttons(b"2x")
    with pytest.raises(WireError, match="malformed errors"):
        wire.decode_errors(b"0000")
    with pytest.raises(WireError, match="malformed neutral"):
        wire.decode_neutral(b"320")


def test_help_text_fields() -> None:
    info = wire.decode_help(["TCS II", "Firmware: 1.2.3", "Probe ID: 42", "Probe TYPE: T11"])
    assert info == {"Firmware": "1.2.3", "Probe ID": "42", "Probe TYPE": "T11"}


@given(data=st.binary(max_size=300), fine=st.booleans(),
       expect=st.sampled_from([None, "temperatures", "buttons", "errors", "profile", "lines"]))
def test_random_device_bytes_never_crash_the_splitter_or_decoders(
    data: bytes, fine: bool, expect: str | None
) -> None:
    splitter = wire.FrameSplitter(fine=fine, expect=expect)
    frames = splitter.feed(data) + splitter.flush()
    assert sum(len(body) for _, body in frames) <= len(data)
    limit = 100.0 if fine else 1000.0
    for kind, body in frames:
        assert kind in ("stream", "reply", "garbage")
        if kind == "stream":
            sample = wire.decode_stream_line(body, fine)
            assert all(abs(v) < limit for v in sample.all)
        for decode in (wire.decode_buttons, wire.decode_errors, wire.decode_battery,
                       wire.decode_profile):
            with contextlib.suppress(WireError):
                decode(body)


@given(st.binary(max_size=200))
def test_random_host_bytes_never_crash_the_command_parser(data: bytes) -> None:
    parser = wire.CommandParser()
    for byte in data:
        command = parser.feed(byte)
        if command is not None and command.name != "profile_write":
            spec = wire.COMMANDS[command.name]
            for value, (_, low, high) in zip(command.values, spec.fields, strict=True):
                assert low <= value <= high
