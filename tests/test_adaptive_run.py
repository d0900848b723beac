"""Adaptive procedures on the simulated thermode: yes/no pulses judged by the participant."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.files import load_protocol, parse_protocol
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel

FAST_PULSE = """
[pulse]
rate_c_s = 20.0
return_rate_c_s = 20.0
hold_s = 0.5
answer_window_s = 2.0
isi_s = 1.0
isi_jitter_s = 0.5
"""


def protocol(method_lines: str) -> str:
    return f"""
[protocol]
name = "adaptive-test"
title = "test"
kind = "thermal-adaptive"

[procedure]
judge = "HPT"
lower = 38.0
upper = 50.0
{method_lines}
{FAST_PULSE}"""


def participant(noise: float) -> ParticipantModel:
    return ParticipantModel.model_validate({
        "participant": {"reaction_time_sd_s": 0.0},
        "thresholds": {"HPT": 45.0}, "noise": {"HPT": noise}})


def test_staircase_converges_on_the_70_percent_point(tmp_path: Path) -> None:
    text = protocol('name = "HPT-stair"\nmethod = "staircase"\nstart = 41.0\nstep = 1.0\n'
                    'max_reversals = 8\nestimate_last = 6\nmax_trials = 40')
    (m,) = run_simulated(parse_protocol(text), SimulatedClock(40.0), tmp_path / "s.h5",
                         participant(0.4), seed=1, progress=lambda line: None)
    # 1-up/2-down: P(yes) = 0.707 at 45 + 0.4 * z(0.707) = 45 + 0.4 * 0.545 = 45.22
    assert m.name == "HPT-stair" and m.value == pytest.approx(45.22, abs=0.6)
    s = session.open(tmp_path / "s.h5")
    answers = [t["answer"] for t in s.trials()]
    assert set(answers) == {"yes", "no"} and len(answers) == len(m.trials)


def test_psi_estimates_the_threshold_and_stops_on_precision(tmp_path: Path) -> None:
    text = protocol('name = "HPT-psi"\nmethod = "psi"\ngrid_step = 0.5\ntarget_sd = 0.6\n'
                    'max_trials = 35')
    (m,) = run_simulated(parse_protocol(text), SimulatedClock(40.0), tmp_path / "p.h5",
                         participant(0.4), seed=2, progress=lambda line: None)
    assert m.value == pytest.approx(45.0, abs=0.8)  # Psi's threshold: the 50 % point
    assert len(m.trials) <= 35


def test_builtin_staircase_and_device_check() -> None:
    from drivers.interfaces import CapabilityError, ThermalCapabilities

    builtin = load_protocol("hpt-staircase")
    builtin.check_devices({"thermode": ThermalCapabilities("TCS II", 5, 0.0, 50.0, 300, 300)})
    with pytest.raises(CapabilityError, match=r"hpt-staircase \(HPT-stair, 38-50 °C\) needs: "
                                              r"50 °C \(device maximum 48 °C\)"):
        builtin.check_devices({"thermode": ThermalCapabilities("probe", 1, 0.0, 48.0, 10, 10)})
