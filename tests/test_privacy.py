"""Participant codes that look like names or birth dates are spotted; pseudonyms are not."""

from __future__ import annotations

import pytest

from qst_station.privacy import identifying_reason


@pytest.mark.parametrize("code", ["P001", "LBP-023", "sub01", "DEMO01", "S2024-117", "X9",
                                  "AB-1399", "P-000123"])
def test_pseudonyms_pass(code: str) -> None:
    assert identifying_reason(code) is None


@pytest.mark.parametrize(("code", "why"), [
    ("Anna Berg", "looks like a name"),
    ("Hansen", "has no digits"),
    ("P-1985-03-12", "looks like a date"),
    ("12.03.1985", "looks like a date"),
    ("120385-1234", "looks like a date"),
    ("19850312", "looks like a date"),
    ("Jens Olsen 1", "looks like a name"),
])
def test_identifying_codes_are_named(code: str, why: str) -> None:
    reason = identifying_reason(code)
    assert reason is not None and why in reason and repr(code) in reason


def test_a_recording_configured_to_refuse_does_not_start() -> None:
    from qst_station.clock import LslClock
    from qst_station.recording import Recording, RecordingError, SessionInfo

    with pytest.raises(RecordingError, match="looks like a name .*; use a pseudonymous code"):
        Recording(LslClock(), refuse_identifying_codes=True).start(SessionInfo("Anna Berg", "v1"))
    relaxed = Recording(LslClock())
    relaxed.start(SessionInfo("Anna Berg", "v1"))
    assert relaxed.state == "recording"


def test_demo_command_refuses_a_name_when_the_station_says_so(tmp_path) -> None:  # noqa: ANN001
    from click.testing import CliRunner

    from qst_station.cli import main

    config = tmp_path / "station.toml"
    config.write_text('[station]\nrefuse_identifying_codes = true\n')
    target = tmp_path / "s.h5"
    result = CliRunner().invoke(main, ["demo", str(target), "--participant", "Anna Berg",
                                       "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: participant code 'Anna Berg' looks like a name "
                                     "(words separated by spaces); use a pseudonymous code")
    assert not target.exists()
