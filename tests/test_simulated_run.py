"""A protocol run end to end on simulated devices with a simulated participant."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from protocols.files import parse_protocol
from qst_station import session
from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel

SHORT = """
[protocol]
name = "short-thermal"
title = "CDT and HPT, two ramps each"
kind = "thermal-limits"
site = "thenar"

[[tests]]
test = "CDT"
repetitions = 2
isi_s = [1.0, 2.0]

[[tests]]
test = "HPT"
repetitions = 2
return_rate_c_s = 5.0
isi_s = [1.0, 2.0]
"""
RT = 0.4


def exact_participant() -> ParticipantModel:
    """No trial-to-trial noise and a fixed reaction time: results are predictable."""
    return ParticipantModel.model_validate({
        "participant": {"code": "SIM042", "reaction_time_s": RT, "reaction_time_sd_s": 0.0},
        "thresholds": {"CDT": 1.0, "HPT": 45.0},
        "noise": {"CDT": 0.0, "HPT": 0.0}})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("run") / "short.h5"
    lines: list[str] = []
    measures = run_simulated(parse_protocol(SHORT, "short.toml"), SimulatedClock(5.0), path,
                             exact_participant(), seed=5, progress=lines.append)
    assert "CDT:" in lines and "HPT:" in lines
    return path, measures


def test_method_of_limits_measures_truth_plus_rate_times_reaction_time(recorded) -> None:  # noqa: ANN001
    _, measures = recorded
    by_name = {m.name: m for m in measures}
    # CDT: 1.0 °C below baseline felt, pressed 0.4 s later at 1 °C/s -> 1.4 °C
    assert by_name["CDT"].value == pytest.approx(1.0 + RT * 1.0, abs=0.15)
    # HPT: 45 °C felt, pressed 0.4 s later at 1 °C/s -> 45.4 °C
    assert by_name["HPT"].value == pytest.approx(45.0 + RT * 1.0, abs=0.15)
    assert by_name["CDT"].transform == "log10" and by_name["HPT"].unit == "degC"
    assert all(len(m.trials) == 2 and m.flags == () for m in measures)


def test_the_session_file_holds_trials_results_and_the_truth(recorded) -> None:  # noqa: ANN001
    path, _ = recorded
    s = session.open(path)
    assert (s.participant, s.status, s.parts[0].protocol) == ("SIM042", "success",
                                                              "short-thermal")
    assert s.parts[0].simulation["thresholds"]["HPT"] == 45.0
    assert s.parts[0].simulation["seed"] == 5
    assert [t["test"] for t in s.trials()] == ["CDT", "CDT", "HPT", "HPT"]
    assert set(s.results()) == {"CDT", "HPT"}
    onsets = s.events_of("stimulus_onset")
    presses = [e for e in s.events_of("response") if e.payload["action"] == "press"]
    assert len(onsets) == len(presses) == 4
    thermode = s.streams["thermode"]
    hpt_press = presses[-1].timestamp
    near = abs(thermode.time - hpt_press) < 0.05
    assert thermode.column("zone1")[near].mean() == pytest.approx(45.4, abs=0.3)


def test_cli_runs_a_builtin_protocol_and_prints_the_summary(tmp_path: Path) -> None:
    participant = tmp_path / "p.toml"
    participant.write_text('[participant]\ncode = "SIM007"\n[thresholds]\nHPT = 46.0\n')
    result = CliRunner().invoke(main, ["run", "dfns-thermal", "--simulate", "--speed", "50",
                                       "--participant", str(participant), "--seed", "3",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "participant SIM007  visit sim  site hand dorsum  status SUCCESS" in result.output
    for name in ("CDT", "WDT", "TSL", "PHS", "CPT", "HPT"):
        assert f"\n  {name} " in result.output
    assert len(list((tmp_path / "out").glob("sub-SIM007_ses-sim_dfns-thermal_*.h5"))) == 1


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["run", "dfns-thermal"])
    assert result.exit_code == 2 and "add --simulate" in result.output
    result = runner.invoke(main, ["run", "nope", "--simulate"])
    assert result.exit_code == 1 and "no protocol named 'nope'" in result.output
    bad = tmp_path / "p.toml"
    bad.write_text("[thresholds]\nHPT = 80\n")
    result = runner.invoke(main, ["run", "dfns-thermal", "--simulate", "--participant",
                                  str(bad)])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {bad}: thresholds.HPT: Input should be less "
                                     "than or equal to 52")
