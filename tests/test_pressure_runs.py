"""PPT and CPM end to end on simulated devices (algometer, cuff, thermode, operator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from protocols.files import parse_protocol
from qst_station import session
from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel

SPEED = 30.0  # fast, and still within 2 % of the method-of-limits expectation (also under load)
RT = 0.4
HEAD = '[protocol]\nname = "{name}"\ntitle = "{name}"\nkind = "{kind}"\nsite = "{site}"\n'
PPT = HEAD.format(name="short-ppt", kind="pressure-ppt", site="") + """
[[tests]]
sites = ["lumbar painful side", "lumbar contralateral"]
repetitions = 2
isi_s = [1.0, 2.0]

[[pairs]]
name = "lumbar"
site = "lumbar painful side"
reference = "lumbar contralateral"
"""
CPM_CUFF = HEAD.format(name="short-cpm", kind="cpm", site="tibialis anterior") + """
[[tests]]
mode = "parallel"
repetitions = 2
isi_s = [1.0, 2.0]
lead_in_s = 3.0
level_kpa = 40.0
duration_s = 60.0
"""
CPM_HEAT = HEAD.format(name="heat-cpm", kind="cpm", site="forearm") + """
[[tests]]
mode = "sequential"
test_stimulus = "HPT"
repetitions = 2
isi_s = [1.0, 2.0]
delay_s = 2.0
conditioning = "cold-water"
temperature_c = 10.0
duration_s = 5.0
"""
CUFF_PPT = HEAD.format(name="cuff-pdt", kind="pressure-ppt", site="") + """
[[tests]]
test = "cPDT"
sites = ["leg"]
repetitions = 2
rate_kpa_s = 5.0
limit_kpa = 80.0
stop_vas_cm = 2.0
isi_s = [1.0, 1.0]
"""


def exact(**tables: dict) -> ParticipantModel:
    """No trial-to-trial noise and a fixed reaction time."""
    return ParticipantModel.model_validate({
        "participant": {"code": "SIM042", "reaction_time_s": RT, "reaction_time_sd_s": 0.0},
        "noise": {"PPT": 0.0, "HPT": 0.0}, **tables})


def simulate(tmp_path: Path, text: str, model: ParticipantModel, seed: int = 8) -> tuple:
    """Seed 8: the simulated examiner's first hand ramps are within 9 % of 50 kPa/s."""
    path = tmp_path / "run.h5"
    measures = run_simulated(parse_protocol(text, "test.toml"), SimulatedClock(SPEED), path,
                             model, seed=seed, progress=lambda line: None)
    return measures, session.open(path)


def test_ppt_recovers_truth_plus_rate_times_reaction_time(tmp_path: Path) -> None:
    truth = {"lumbar painful side": 250.0, "lumbar contralateral": 350.0}
    measures, s = simulate(tmp_path, PPT, exact(ppt_sites=truth))
    ppt = {m.site: m for m in measures if m.name == "PPT"}
    for site, true in truth.items():
        m = ppt[site]
        rates = m.extra["rates_kpa_s"]
        assert all(40.0 <= r <= 60.0 for r in rates) and m.flags == ()
        assert m.value == pytest.approx(true + 50.0 * RT, rel=0.05)
        assert m.value == pytest.approx(np.mean([true + r * RT for r in rates]), rel=0.05)
        assert (m.unit, m.transform, len(m.trials)) == ("kPa", "log10", 2)
    by_name = {m.name: m for m in measures}
    diff = by_name["PPT-diff:lumbar"]
    assert diff.value == pytest.approx(-100.0, abs=15.0)  # painful side more sensitive
    assert by_name["PPT-diff-pct:lumbar"].value == pytest.approx(-100 / 3.7, abs=4.0)
    # the session file: every ramp with onset, press and offset; value = the latest
    # pressure sample at or before the press
    assert s.status == "success" and s.parts[0].simulation["ppt_sites"] == truth
    presses = [e for e in s.events_of("response") if e.payload["action"] == "press"]
    offsets = s.events_of("stimulus_offset")
    assert len(s.events_of("stimulus_onset")) == len(presses) == len(offsets) == 4
    stream = s.streams["pressure"]
    for press, offset in zip(presses, offsets, strict=True):
        i = int(np.searchsorted(stream.time, press.timestamp, side="right")) - 1
        assert stream.column("pressure")[i] == pytest.approx(offset.payload["value"], rel=1e-5)
        assert offset.timestamp == press.timestamp


def test_parallel_cpm_with_a_cuff_recovers_the_effect(tmp_path: Path) -> None:
    true_ppt, effect = 300.0, 30.0
    measures, s = simulate(tmp_path, CPM_CUFF, exact(thresholds={"PPT": true_ppt},
                                                     cpm={"effect_percent": effect}))
    ms = {m.name: m for m in measures}
    base, cpm, pct = ms["CPM-baseline"], ms["CPM"], ms["CPM-pct"]
    assert base.value == pytest.approx(true_ppt + 50.0 * RT, rel=0.05)
    # conditioned - baseline = effect x true PPT (the rate x reaction time term cancels)
    assert cpm.value == pytest.approx(effect / 100 * true_ppt, abs=12.0)
    assert pct.value == pytest.approx(effect * true_ppt / (true_ppt + 50.0 * RT), abs=4.0)
    assert cpm.value > 0 and "positive = the threshold rose" in cpm.extra["sign"]
    assert cpm.flags == () and cpm.extra["conditioning_level_kpa"] == 40.0
    cuff = s.streams["cuff"]
    held = cuff.column("p2")[cuff.column("target2") > 0]
    assert np.median(held) == pytest.approx(40.0, abs=1.0)
    devices = [e.payload["device"] for e in s.events_of("stimulus_onset")]
    assert devices == ["algometer"] * 2 + ["cuff"] + ["algometer"] * 2
    # recorded once the cuff acknowledged STOP (both outlets deflate)
    assert s.events_of("stimulus_offset")[-1].payload == {"trial": 6, "device": "cuff",
                                                          "reason": "stop"}


def test_sequential_cpm_with_heat_and_cold_water(tmp_path: Path) -> None:
    model = exact(thresholds={"HPT": 45.0}, cpm={"effect_heat_c": 1.5})
    measures, s = simulate(tmp_path, CPM_HEAT, model)
    ms = {m.name: m for m in measures}
    assert ms["CPM-baseline"].value == pytest.approx(45.0 + RT * 1.0, abs=0.2)
    assert (ms["CPM"].value, ms["CPM"].unit) == (pytest.approx(1.5, abs=0.25), "degC")
    notes = [e.payload["text"] for e in s.events_of("note")]
    assert len(notes) == 2 and "10 °C" in notes[0]
    cold = [e for e in s.events if e[1].payload.get("device") == "operator"]
    assert [e.kind for _, e in cold] == ["stimulus_onset", "stimulus_offset"]


def test_cuff_pain_detection_ramp(tmp_path: Path) -> None:
    measures, s = simulate(tmp_path, CUFF_PPT, exact(cuff={"pain_detection_kpa": 25.0,
                                                           "pain_tolerance_kpa": 60.0}))
    (m,) = measures
    # the VAS rises linearly from detection (0 cm) to tolerance (10 cm): 2 cm at 32 kPa
    assert (m.name, m.unit, m.transform) == ("cPDT", "kPa", "none")
    assert m.value == pytest.approx(25.0 + 0.2 * 35.0, abs=2.5)
    assert [e.payload["reason"] for e in s.events_of("stimulus_offset")] == ["vas", "vas"]


@pytest.mark.parametrize(("name", "expected"), [
    ("ppt", ("\n  PPT ", "\n  PPT-diff:lumbar ", "\n  PPT-diff-pct:lumbar ")),
    ("cpm", ("\n  CPM-baseline ", "\n  CPM-conditioned ", "\n  CPM ", "\n  CPM-pct ")),
])
def test_cli_runs_the_builtin_pressure_protocols(tmp_path: Path, name: str,
                                                 expected: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, ["run", name, "--simulate", "--speed", "100",
                                       "--seed", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "status SUCCESS" in result.output
    for text in expected:
        assert text in result.output
    assert len(list(tmp_path.glob(f"sub-SIM001_ses-sim_{name}_*.h5"))) == 1
