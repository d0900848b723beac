"""Station configuration: the simulated default, valid TOML files and one-line errors.

Every configuration problem must surface as a single-line :class:`ConfigError` that names
the file and the offending field, with ``file:LINE:`` when the field's line can be found
unambiguously (and no line rather than a wrong one otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.thermal_safety import DEFAULT_ENVELOPE, ThermalLimits
from qst_station.config import ENV_VAR, ConfigError, StationConfig, load_config, parse_config

GOOD = """\
[station]
name = "lab-1"
site = "room 204"

[devices.thermode]
driver = "tcs2"
port = "/dev/ttyACM0"
baseline = 30.0
char_delay_ms = 2.0

[devices.thermode.limits]
min_celsius = 10.0
max_celsius = 48.0
max_rate = 100.0
follow_heartbeat_s = 1.5
dose_envelope = [[44.0, 600.0], [50.0, 10.0], [60.0, 1.0]]
"""

# Lines 1-7; the body under test starts on line 8.
HEADER = """\
[station]
name = "lab-1"

[devices.thermode]
port = "/dev/ttyACM0"

[devices.thermode.limits]
"""
BODY_LINE = HEADER.count("\n") + 1  # 8


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own $QST_STATION_CONFIG must not leak into these tests."""
    monkeypatch.delenv(ENV_VAR, raising=False)


def _write(tmp_path: Path, text: str, name: str = "station.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert str(path) in message, f"file not named: {message!r}"
    return message


# ------------------------------------------------------------------ defaults and valid files


def test_no_file_gives_simulated_thermode_with_default_limits() -> None:
    config = load_config()
    name, device = config.thermode()
    assert name == "thermode"
    assert device.port == "sim"
    assert device.simulated
    assert device.driver == "tcs2"
    limits = device.limits.to_limits()
    assert isinstance(limits, ThermalLimits)
    assert (limits.min_celsius, limits.max_celsius) == (0.0, 50.0)
    assert limits.envelope == DEFAULT_ENVELOPE
    assert config.source.startswith("embedded default")


def test_valid_file_parses_with_real_port_and_limits(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    config = load_config(path)
    assert config.source == str(path)
    assert config.station.name == "lab-1"
    assert config.station.site == "room 204"
    name, device = config.thermode()
    assert name == "thermode"
    assert device.port == "/dev/ttyACM0"
    assert not device.simulated
    assert device.baseline == 30.0
    assert device.char_delay_ms == 2.0
    limits = device.limits.to_limits()
    assert limits == ThermalLimits(
        min_celsius=10.0,
        max_celsius=48.0,
        max_rate=100.0,
        envelope=((44.0, 600.0), (50.0, 10.0), (60.0, 1.0)),
        follow_heartbeat_s=1.5,
    )
    # The configured limits are the ones enforced.
    assert limits.max_hold_s(50.0) == pytest.approx(10.0)
    assert limits.max_hold_s(43.9) == float("inf")


def test_partial_file_fills_in_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, '[devices.thermode]\nport = "/dev/ttyUSB3"\n')
    _, device = load_config(path).thermode()
    assert device.port == "/dev/ttyUSB3"
    assert device.baseline == 32.0
    limits = device.limits.to_limits()
    assert (limits.min_celsius, limits.max_celsius, limits.max_rate) == (0.0, 50.0, 300.0)


def test_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, GOOD)
    monkeypatch.setenv(ENV_VAR, str(path))
    config = load_config()
    assert config.source == str(path)
    assert config.thermode()[1].port == "/dev/ttyACM0"


def test_explicit_path_wins_over_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(_write(tmp_path, GOOD)))
    other = _write(tmp_path, '[devices.thermode]\nport = "/dev/ttyUSB9"\n', "other.toml")
    config = load_config(other)
    assert config.source == str(other)
    assert config.thermode()[1].port == "/dev/ttyUSB9"


def test_env_var_pointing_at_a_bad_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.toml"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(ConfigError, match="cannot read station configuration"):
        load_config()


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    """What ``config show`` prints validates back to the same configuration."""
    config = load_config(_write(tmp_path, GOOD))
    dumped = config.model_dump_json()
    assert "source" not in dumped
    again = StationConfig.model_validate_json(dumped)
    assert again.devices == config.devices
    assert again.station == config.station


# ------------------------------------------------------------------ one-line errors


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ("max_celsius = 65", "devices.thermode.limits.max_celsius", "less than or equal to 60"),
        ("max_celcius = 45", "devices.thermode.limits.max_celcius", "Extra inputs"),
        ('max_rate = "fast"', "devices.thermode.limits.max_rate", "valid number"),
        ("min_celsius = -1", "devices.thermode.limits.min_celsius", "greater than or equal to 0"),
        ("max_rate = 0", "devices.thermode.limits.max_rate", "greater than or equal to 0.1"),
        ('dose_envelope = [[50.0, "x"]]', "devices.thermode.limits.dose_envelope.0.1",
         "valid number"),
    ],
    ids=["above-60", "typo", "wrong-type", "negative", "zero-rate", "envelope-type"],
)
def test_field_errors_are_one_line_with_file_line_and_field(
    tmp_path: Path, body: str, field: str, detail: str
) -> None:
    path = _write(tmp_path, HEADER + body + "\n")
    message = _error(path)
    assert message.startswith(f"{path}:{BODY_LINE}: {field}: "), message
    assert detail in message


def test_line_number_points_at_the_offending_key(tmp_path: Path) -> None:
    text = HEADER + "min_celsius = 5.0\n# a comment\nmax_celsius = 65\nmax_rate = 50.0\n"
    path = _write(tmp_path, text)
    assert text.splitlines()[10 - 1] == "max_celsius = 65"
    message = _error(path)
    assert message.startswith(f"{path}:10: devices.thermode.limits.max_celsius:"), message
    assert "(got 65)" in message


@pytest.mark.parametrize("blank_lines", [1, 3])
def test_line_number_after_blank_lines(tmp_path: Path, blank_lines: int) -> None:
    text = '[devices.thermode]\nport = "/dev/ttyACM0"\n' + "\n" * blank_lines + "baseline = 99\n"
    path = _write(tmp_path, text)
    line = 3 + blank_lines
    assert text.splitlines()[line - 1] == "baseline = 99"
    message = _error(path)
    assert message.startswith(f"{path}:{line}: devices.thermode.baseline:"), message


def test_error_outside_limits_names_that_field_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, '[devices.thermode]\ndriver = "tcs3"\nport = "/dev/ttyACM0"\n')
    message = _error(path)
    assert message.startswith(f"{path}:2: devices.thermode.driver:"), message
    assert "'tcs3'" in message


def test_empty_port_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, '[devices.thermode]\nport = "  "\n')
    message = _error(path)
    assert message.startswith(f"{path}:2: devices.thermode.port:"), message
    assert "must name a serial device" in message


def test_same_key_in_two_tables_gets_its_own_tables_line(tmp_path: Path) -> None:
    text = (
        "[devices.a.limits]\nmax_celsius = 45\n\n"
        "[devices.b.limits]\nmax_celsius = 65\n"
    )
    path = _write(tmp_path, text)
    message = _error(path)
    assert message.startswith(f"{path}:5: devices.b.limits.max_celsius:"), message


def test_line_number_is_not_taken_from_another_device(tmp_path: Path) -> None:
    text = (
        "[devices.a.limits]\nmax_celsius = 45\n\n"
        '[devices.b]\nport = "/dev/ttyUSB0"\nlimits = { max_celsius = 65 }\n'
    )
    path = _write(tmp_path, text)
    message = _error(path)
    assert "devices.b.limits.max_celsius" in message
    assert f"{path}:2:" not in message, message


def test_min_not_below_max_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "min_celsius = 40\nmax_celsius = 30\n")
    message = _error(path)
    assert message.startswith(f"{path}:"), message
    assert " devices.thermode.limits: temperature limits" in message
    assert "min < max" in message
    assert "min 40.0, max 30.0" in message


def test_min_equal_max_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "min_celsius = 42\nmax_celsius = 42\n")
    message = _error(path)
    assert "limits:" in message
    assert "min 42.0, max 42.0" in message


def test_envelope_looser_than_device_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "dose_envelope = [[50.0, 30.0], [60.0, 2.0]]\n")
    message = _error(path)
    assert message.startswith(f"{path}:"), message
    assert " devices.thermode.limits: dose envelope" in message
    assert "longer than the device at 50.0 °C" in message


def test_envelope_with_falling_temperatures_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "dose_envelope = [[50.0, 10.0], [45.0, 20.0]]\n")
    message = _error(path)
    assert "limits: dose envelope" in message
    assert "temperatures must rise" in message


@pytest.mark.parametrize(
    "body",
    ["min_celsius = 45\nmax_celsius = 30\n", "dose_envelope = [[50.0, 30.0], [60.0, 2.0]]\n"],
    ids=["min-max", "envelope"],
)
def test_limit_errors_name_the_device(tmp_path: Path, body: str) -> None:
    text = '[devices.a]\nport = "sim"\n\n[devices.b]\nport = "/dev/ttyUSB0"\n\n'
    path = _write(tmp_path, text + "[devices.b.limits]\n" + body)
    message = _error(path)
    assert "devices.b.limits" in message, message


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + "min_celsius = 10\nmax_celsius = = 45\n")
    message = _error(path)
    assert message.startswith(f"{path}: not valid TOML: "), message
    assert f"line {BODY_LINE + 1}" in message


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.toml")
    assert "cannot read station configuration" in message
    assert "No such file or directory" in message


def test_unreadable_path_is_one_line(tmp_path: Path) -> None:
    # A directory cannot be read as a file, whatever the user's privileges (tests may run
    # as root, for whom chmod 000 does not make a file unreadable).
    message = _error(tmp_path)
    assert "cannot read station configuration" in message
    assert "directory" in message


def test_invalid_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[station]\nsite = "K\xf8benhavn"\n')
    message = _error(path)
    assert "UTF-8" in message or "utf-8" in message


def test_parse_config_uses_placeholder_name() -> None:
    with pytest.raises(ConfigError, match=r"^<config>:2: devices\.thermode\.port: "):
        parse_config('[devices.thermode]\nport = ""\n')


FULL_BENCH = """
[devices.thermode]
port = "/dev/ttyACM0"

[devices.medoc]
driver = "medoc"
host = "192.0.2.10"
thermode = "CHEPS"
allowed_programs = [1, 2, 3]

[devices.algometer]
driver = "wagner-fdix"
port = "/dev/ttyUSB0"
rate_hz = 20

[devices.cuff]
driver = "ocp1-cuff"
max_kpa = 80

[devices.scanner]
driver = "trigger-box"
port = "/dev/ttyACM1"
character = "t"
tr_s = 2.0
dummies = 3

[devices.scanner_lsl]
driver = "lsl-markers"
stream = "scanner"
match = "5"

[devices.buttons]
driver = "button-box"
press_map = { "a" = 1, "b" = 2 }
"""


def test_every_bench_device_can_be_configured(tmp_path: Path) -> None:
    from qst_station.device_config import (
        AlgometerConfig,
        ButtonBoxConfig,
        CuffConfig,
        LslTriggerConfig,
        MedocConfig,
        TriggerBoxConfig,
    )

    config = load_config(_write(tmp_path, FULL_BENCH))
    devices = config.devices
    assert config.thermode()[0] == "thermode"
    assert isinstance(devices["medoc"], MedocConfig) and devices["medoc"].thermode == "CHEPS"
    assert not devices["medoc"].simulated
    assert isinstance(devices["algometer"], AlgometerConfig) and devices["algometer"].rate_hz == 20
    assert isinstance(devices["cuff"], CuffConfig) and devices["cuff"].simulated
    assert isinstance(devices["scanner"], TriggerBoxConfig) and devices["scanner"].dummies == 3
    assert isinstance(devices["scanner_lsl"], LslTriggerConfig)
    assert isinstance(devices["buttons"], ButtonBoxConfig)
    assert devices["buttons"].press_map == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ('driver = "ocp1-cuff"\nmax_kpa = 150\n', "devices.x.max_kpa", "less than or equal to 100"),
        ('driver = "wagner-fdix"\nrate_hz = 7\n', "devices.x.rate_hz", "Input should be"),
        ('driver = "trigger-box"\ncharacter = "55"\n', "devices.x.character", "at most 1"),
        ('driver = "medoc"\nallowed_programs = [300]\n', "devices.x.allowed_programs",
         "0-255"),
        ('driver = "lsl-markers"\n', "devices.x.stream", "Field required"),
        ('driver = "button-box"\npress_map = { "ab" = 1 }\n', "devices.x.press_map",
         "single characters"),
        ('driver = "laser"\n', "devices.x.driver", "driver must be one of"),
    ],
)
def test_bench_device_errors_name_the_field(
    tmp_path: Path, entry: str, field: str, problem: str
) -> None:
    path = _write(tmp_path, "[devices.x]\n" + entry)
    message = _error(path)
    assert "\n" not in message
    assert f" {field}: " in message and problem in message, message


# ------------------------------------------------------------------ LSL streams to record


def test_lsl_inlet_entries_choose_a_stream_by_name_or_property(tmp_path: Path) -> None:
    from qst_station.config import LslInletConfig

    text = ('[devices.ecg]\ndriver = "lsl-inlet"\nprop = "type"\nvalue = "ECG"\n\n'
            '[devices.cues]\ndriver = "lsl-inlet"\nstream = "PsychoPy markers"\n'
            "resolve_timeout_s = 10\n")
    config = load_config(_write(tmp_path, text))
    ecg, cues = config.devices["ecg"], config.devices["cues"]
    assert isinstance(ecg, LslInletConfig) and isinstance(cues, LslInletConfig)
    assert (ecg.stream, ecg.prop, ecg.value, ecg.resolve_timeout_s) == (None, "type", "ECG", 5.0)
    assert (cues.stream, cues.resolve_timeout_s, cues.lost_after_s) == (
        "PsychoPy markers", 10.0, 2.0)
    assert StationConfig.model_validate_json(config.model_dump_json()).devices == config.devices


@pytest.mark.parametrize(
    ("entry", "where", "problem"),
    [
        ("", "1: devices.x:", "either stream, or prop and value"),
        ('prop = "type"\n', "1: devices.x:", "prop and value go together"),
        ('stream = "a"\nprop = "type"\nvalue = "ECG"\n', "1: devices.x:",
         "either stream, or prop and value"),
        ('stream = ""\n', "3: devices.x.stream:", "at least 1 character"),
        ('stream = "a"\nresolve_timeout_s = 0\n', "4: devices.x.resolve_timeout_s:",
         "greater than 0"),
        ('stream = "a"\nname = "b"\n', "4: devices.x.name:", "Extra inputs"),
    ],
    ids=["no-choice", "prop-alone", "both", "empty-name", "zero-timeout", "unknown-key"],
)
def test_lsl_inlet_errors_are_one_line(tmp_path: Path, entry: str, where: str,
                                       problem: str) -> None:
    path = _write(tmp_path, '[devices.x]\ndriver = "lsl-inlet"\n' + entry)
    message = _error(path)
    assert message.startswith(f"{path}:{where} "), message
    assert problem in message, message
