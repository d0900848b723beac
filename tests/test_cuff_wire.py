"""OCP/1 wire format (docs/cuff-protocol.md): byte-exact lines, strict decoding, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import cuff_wire as wire
from drivers.errors import FieldRangeError, WireError

COMMANDS = [
    (wire.Identify(), b"ID\n"),
    (wire.SetLimit(100.0), b"LIMIT 100.0\n"),
    (wire.SetLimit(1.0), b"LIMIT 1.0\n"),
    (wire.ClearProgram(2), b"PCLR 2\n"),
    (wire.AddSegment(1, "STEP", 30.0, 1000), b"PSTEP 1 30.0 1000\n"),
    (wire.AddSegment(1, "INC", 1.0, 100_000), b"PINC 1 1.0 100000\n"),
    (wire.AddSegment(2, "DEC", 0.5, 50), b"PDEC 2 0.5 50\n"),
    (wire.SetRepeat(1, 10), b"PREP 1 10\n"),
    (wire.SetMode("VAS"), b"MODE VAS\n"),
    (wire.SetMode("BUTTON"), b"MODE BUTTON\n"),
    (wire.Start(), b"START\n"),
    (wire.Start(force=True), b"START FORCE\n"),
    (wire.Stop(), b"STOP\n"),
    (wire.QueryStatus(), b"STATUS\n"),
    (wire.SetStream(True), b"STREAM ON\n"),
    (wire.SetStream(False), b"STREAM OFF\n"),
]
DEVICE_LINES = [
    (wire.Identity("OCP/1", "qst-sim-cuff", "1.0", 100.0),
     b"OK ID OCP/1 qst-sim-cuff 1.0 100.0\n"),
    (wire.Ack(wire.SetLimit(80.0)), b"OK LIMIT 80.0\n"),
    (wire.Ack(wire.AddSegment(2, "INC", 2.5, 1050)), b"OK PINC 2 2.5 1050\n"),
    (wire.Ack(wire.Stop()), b"OK STOP\n"),
    (wire.Ack(wire.SetStream(True)), b"OK STREAM ON\n"),
    (wire.Started(123_450), b"OK START 123450\n"),
    (wire.StatusReport("RUNNING", "BUTTON", 100.0, 2, 1, 0, 1, 23.4, 0.0, 3.1, True),
     b"OK STATUS RUNNING BUTTON 100.0 2 1 0 1 23.4 0.0 3.1 1\n"),
    (wire.Refused("VAS", "VAS reads 3.0 cm, not 0"), b"ERR VAS VAS reads 3.0 cm, not 0\n"),
    (wire.Data(4_294_967_295, 12.3, 12.5, 0.0, 0.0, 10.0, False),
     b"D 4294967295 12.3 12.5 0.0 0.0 10.0 0\n"),
    (wire.Stopped("VAS", 61_550, 61.3, 0.0, 10.0), b"E STOPPED VAS 61550 61.3 0.0 10.0\n"),
    (wire.Fault("LEAK", 1), b"E FAULT LEAK 1\n"),
    (wire.Fault("SUPPLY", 0), b"E FAULT SUPPLY 0\n"),
    (wire.Reset("OCP/1"), b"E RESET OCP/1\n"),
]


@pytest.mark.parametrize(("command", "raw"), COMMANDS)
def test_commands_byte_exact(command: wire.Command, raw: bytes) -> None:
    assert wire.encode_command(command) == raw
    assert wire.decode_command(raw[:-1]) == command


@pytest.mark.parametrize(("item", "raw"), DEVICE_LINES)
def test_device_lines_byte_exact(item: wire.DeviceLine, raw: bytes) -> None:
    assert wire.encode_line(item) == raw
    assert wire.decode_line(raw[:-1]) == item


def test_every_line_type_is_covered() -> None:
    kinds = {type(c) for c, _ in COMMANDS} | {type(i) for i, _ in DEVICE_LINES}
    assert kinds == {wire.Identify, wire.SetLimit, wire.ClearProgram, wire.AddSegment,
                     wire.SetRepeat, wire.SetMode, wire.Start, wire.Stop, wire.QueryStatus,
                     wire.SetStream, wire.Identity, wire.Ack, wire.Started, wire.StatusReport,
                     wire.Refused, wire.Data, wire.Stopped, wire.Fault, wire.Reset}


def test_the_device_accepts_short_forms_and_rounds_durations_to_50_ms() -> None:
    assert wire.decode_command(b"LIMIT 80") == wire.SetLimit(80.0)
    assert wire.decode_command(b"PSTEP 1 30 1030") == wire.AddSegment(1, "STEP", 30.0, 1050)
    assert [wire.decode_command(f"PINC 1 1.0 {ms}".encode()).ms
            for ms in (25, 74, 75, 124, 599_999)] == [50, 50, 100, 100, 600_000]
    with pytest.raises(FieldRangeError):
        wire.decode_command(b"PINC 1 1.0 24")  # rounds to 0 ms
    assert wire.round_ms(24.9) == 0 and wire.round_ms(1025.0) == 1050
    assert [wire.quantize(x) for x in (0.04, 0.05, 12.25, 99.949)] == [0.0, 0.1, 12.3, 99.9]


@pytest.mark.parametrize("raw", [
    b"PSTEP 3 1.0 100", b"PINC 1 0.0 100", b"PINC 1 100.1 100", b"LIMIT 0.5", b"LIMIT 200.1",
    b"PREP 1 0", b"PREP 1 101", b"PSTEP 1 200.1 100", b"PDEC 1 1.0 600001", b"PCLR 0",
])
def test_out_of_range_commands_are_range_errors(raw: bytes) -> None:
    with pytest.raises(FieldRangeError):
        wire.decode_command(raw)


@pytest.mark.parametrize("raw", [
    b"", b"id", b" ID", b"ID ", b"LIMIT  80.0", b"LIMIT 1.25", b"LIMIT -1.0", b"LIMIT 1e2",
    b"PSTEP 1 01.0 100", b"PSTEP 1 1.0 0100", b"PSTEP 1 1.0", b"STREAM on", b"START NOW",
    b"START FORCE FORCE", b"MODE", b"MODE ALL", b"PREP 1 2 3", b"\x00ID", b"ID\r", b"X" * 97,
    b"STOP\tNOW", "PSTEP 1 3\u00b75 100".encode(),
])
def test_malformed_commands_are_syntax_errors(raw: bytes) -> None:
    with pytest.raises(WireError) as info:
        wire.decode_command(raw)
    assert not isinstance(info.value, FieldRangeError)


@pytest.mark.parametrize("raw", [
    b"D 1 2.0 3.0", b"D 1 0.0 0.0 0.0 0.0 10.1 0", b"D 1 0.0 0.0 0.0 0.0 1.0 2",
    b"D 4294967296 0.0 0.0 0.0 0.0 0.0 0", b"D 1 200.1 0.0 0.0 0.0 0.0 0",
    b"OK LIMIT 100", b"OK PSTEP 1 30.0 1030", b"OK START", b"OK START FORCE", b"OK ID",
    b"OK STATUS IDLE VAS 100.0 33 1 0 1 0.0 0.0 0.0 0", b"OK", b"OK FOO", b"ERR FOO x",
    b"ERR SYNTAX", b"ERR SYNTAX ", b"E STOPPED HUH 1 0.0 0.0 0.0", b"E FAULT LEAK 3",
    b"E RESET", b"HELLO", b"d 1 0.0 0.0 0.0 0.0 0.0 0",
])
def test_malformed_device_lines_are_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode_line(raw)


@pytest.mark.parametrize("item", [
    wire.SetLimit(100.05), wire.SetLimit(0.5), wire.AddSegment(1, "STEP", 30.0, 1030),
    wire.AddSegment(1, "HOLD", 30.0, 1000), wire.AddSegment(1, "STEP", 250.0, 1000),
    wire.AddSegment(1, "INC", float("nan"), 1000), wire.SetRepeat(1, True),
    wire.Start(force=1),  # type: ignore[arg-type]
    wire.Data(0, 0.0, 0.0, 0.0, 0.0, 10.5, False), wire.Refused("FOO", "x"),
    wire.Refused("SYNTAX", "caf\u00e9"), wire.Refused("SYNTAX", ""),
    wire.Ack(wire.Identify()), wire.Ack(wire.Start()), wire.Stopped("HUH", 0, 0.0, 0.0, 0.0),
    wire.Identity("OCP/1", "a model", "1.0", 100.0),
])
def test_encoders_refuse_what_does_not_fit(item: object) -> None:
    with pytest.raises(WireError):
        if isinstance(item, wire.Identity | wire.Data | wire.Refused | wire.Ack | wire.Stopped):
            wire.encode_line(item)
        else:
            wire.encode_command(item)  # type: ignore[arg-type]


def test_splitter_handles_crlf_fragments_and_overlong_lines() -> None:
    splitter = wire.LineSplitter()
    assert splitter.feed(b"ID\r\nST") == [b"ID"]
    assert splitter.feed(b"OP\n\n\r\n") == [b"STOP"]
    long = splitter.feed(b"X" * 120 + b"STOP\nID\n")
    assert len(long) == 2 and long[1] == b"ID"  # the tail "...STOP" is not a command
    with pytest.raises(WireError, match="longer than"):
        wire.decode_command(long[0])


def test_program_targets_follow_the_segments_across_repetitions() -> None:
    seg = wire.AddSegment
    program = [seg(1, "STEP", 30.0, 1000), seg(1, "INC", 2.0, 5000), seg(1, "DEC", 1.0, 10_000)]
    assert wire.program_targets(program, 2) == pytest.approx((0.0, 40.0, 32.0))
    ramp = [seg(1, "INC", 10.0, 1000)]
    assert wire.program_targets(ramp, 3) == pytest.approx((0.0, 30.0, 3.0))  # accumulates
    assert wire.program_targets([seg(1, "DEC", 1.0, 2000)], 1)[0] == pytest.approx(-2.0)


def test_the_example_session_in_the_spec_is_valid() -> None:
    spec = (Path(__file__).parents[1] / "docs" / "cuff-protocol.md").read_text()
    example = spec.split("## 11. Example session")[1].split("```")[1].splitlines()
    host = [wire.decode_command(line[3:].encode()) for line in example if line[:3] == "H> "]
    device = [wire.decode_line(line[3:].encode()) for line in example if line[:3] == "D< "]
    replies = [x for x in device if not isinstance(x, wire.Data | wire.Stopped)]
    assert len(host) == len(replies) == 16  # exactly one reply per command
    assert wire.Stopped("VAS", 182_040, 61.4, 0.0, 10.0) in device


# ------------------------------------------------------------------ fuzzing

def _check(item: object) -> None:
    """A decoded value is in range: it can be encoded again."""
    if isinstance(item, wire.Identify | wire.SetLimit | wire.ClearProgram | wire.AddSegment
                  | wire.SetRepeat | wire.SetMode | wire.Start | wire.Stop | wire.QueryStatus
                  | wire.SetStream):
        assert wire.encode_command(item)
    else:
        assert wire.encode_line(item)  # type: ignore[arg-type]
    if isinstance(item, wire.Data):
        assert 0 <= item.vas <= wire.VAS_MAX
        pressures = (item.p1, item.target1, item.p2, item.target2)
        assert all(0 <= p <= wire.PRESSURE_MAX for p in pressures)


WORDS = ["OK", "ERR", "D", "E", "STOPPED", "FAULT", "RESET", "ID", "START", "STATUS", "LIMIT",
         "PSTEP", "PINC", "PDEC", "PREP", "PCLR", "MODE", "VAS", "BUTTON", "STREAM", "ON", "FORCE",
         "SYNTAX", "LEAK", "IDLE", "0", "1", "2", "10.0", "100.0", "200.1", "99.9", "-1", "50",
         "4294967295", "4294967296", "OCP/1", "", "1.25", "0.0"]


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoders(data: bytes) -> None:
    for line in wire.LineSplitter().feed(data):
        assert len(line) <= wire.MAX_LINE + 2
        for decode in (wire.decode_line, wire.decode_command):
            try:
                item = decode(line)
            except WireError:
                continue
            _check(item)


@given(st.lists(st.lists(st.sampled_from(WORDS), max_size=13), max_size=8))
def test_near_miss_lines_are_decoded_in_range_or_refused(lines: list[list[str]]) -> None:
    for words in lines:
        raw = " ".join(words).encode()
        for decode in (wire.decode_line, wire.decode_command):
            try:
                item = decode(raw)
            except WireError:
                continue
            _check(item)


@given(st.sampled_from([raw for _, raw in COMMANDS + DEVICE_LINES]), st.data())
def test_truncated_lines_are_refused_or_in_range(raw: bytes, data: st.DataObject) -> None:
    cut = raw[: data.draw(st.integers(0, len(raw) - 1))]
    for decode in (wire.decode_line, wire.decode_command):
        try:
            item = decode(cut.rstrip(b"\n"))
        except WireError:
            continue
        _check(item)


tenths = st.integers(0, 2000).map(lambda t: t / 10)


@given(st.integers(0, wire.TIME_MAX_MS), tenths, tenths, tenths, tenths,
       st.integers(0, 100).map(lambda t: t / 10), st.booleans())
def test_data_lines_round_trip(t_ms: int, p1: float, t1: float, p2: float, t2: float,
                               vas: float, button: bool) -> None:
    data = wire.Data(t_ms, p1, t1, p2, t2, vas, button)
    raw = wire.encode_line(data)
    assert raw.endswith(b"\n") and len(raw) <= wire.MAX_LINE + 1
    assert wire.decode_line(raw[:-1]) == data
