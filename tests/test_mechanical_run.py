"""dfns-mechanical on a simulated examiner and participant, end to end into a session file."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.files import load_protocol
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel


def test_guided_mechanical_battery_recovers_the_participants_truth(tmp_path: Path) -> None:
    model = ParticipantModel.model_validate({"mechanical": {
        "mdt_mN": 4.0, "mpt_mN": 32.0, "noise_log10": 0.05, "windup": 1.5,
        "rating_noise": 0.0, "vdt_eighths": 6.0, "vdt_noise": 0.0}})
    measures = {m.name: m for m in run_simulated(
        load_protocol("dfns-mechanical"), SimulatedClock(200.0), tmp_path / "m.h5", model,
        seed=2, progress=lambda line: None)}
    # series thresholds: geometric means of turning points straddle the truth (factor 2 steps)
    assert 4.0 / 2 <= measures["MDT"].value <= 4.0 * 2 and measures["MDT"].unit == "mN"
    assert 32.0 / 2 <= measures["MPT"].value <= 32.0 * 2
    # single 0.6 * 256 ** 0.8 = 50.6 -> 51, train 1.5 x -> 76: 76 / 51 = 1.49
    assert measures["WUR"].value == pytest.approx(1.5, rel=0.02)
    assert measures["VDT"].value == 6.0 and measures["DMA"].value == 0.0
    s = session.open(tmp_path / "m.h5")
    assert set(s.results()) == {"MDT", "MPT", "MPS", "DMA", "WUR", "VDT"}
    onsets = s.events_of("stimulus_onset")
    assert {e.payload["device"] for e in onsets} == {"examiner"}
    assert any(e.payload.get("instrument") == "von Frey" for e in onsets)
    assert s.parts[0].simulation["mechanical"]["mdt_mN"] == 4.0


def test_pinprick_tsp_is_train_minus_single(tmp_path: Path) -> None:
    model = ParticipantModel.model_validate({"mechanical": {"windup": 1.5, "rating_noise": 0.0}})
    (tsp,) = run_simulated(load_protocol("tsp-pinprick"), SimulatedClock(200.0),
                           tmp_path / "t.h5", model, seed=1, progress=lambda line: None)
    # single 0.6 * 256 ** 0.8 = 50.6 -> 51; train 1.5 x 50.6 = 75.9 -> 76: TSP = 25
    assert (tsp.name, tsp.value, tsp.unit) == ("TSP", 25.0, "NRS 0-100")
    assert tsp.extra["modality"] == "pinprick" and tsp.extra["ratio"] == pytest.approx(76 / 51)
    assert len(tsp.trials) == 6  # 3 pairs
