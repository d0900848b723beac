"""Temporal summation by repeated cuff inflations on the simulated cuff."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.base import RATING, Answer, ProtocolError
from protocols.files import load_protocol
from protocols.thermal_pulses import CuffTsp
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel


def test_one_cuff_train_stimulus_and_its_ratings() -> None:
    tsp = CuffTsp(40.0, 3, on_s=1.0, off_s=1.0, outlet=2)
    train = tsp.next_stimulus()
    assert train.kind == "cuff-program"
    assert train.params == {"train": 3, "level_kpa": 40.0, "on_s": 1.0, "off_s": 1.0,
                            "outlet": 2}
    with pytest.raises(ProtocolError, match="answered with 3 ratings"):
        tsp.record(Answer(RATING, None, extra={"ratings": [10.0]}))
    tsp.record(Answer(RATING, None, extra={"ratings": [10.0, 15.0, 18.0]}))
    (m,) = tsp.result()
    assert (m.name, m.value, m.extra["period_s"]) == ("TSP", 8.0, 2.0)


def test_simulated_cuff_train_shows_the_participants_summation(tmp_path: Path) -> None:
    model = ParticipantModel.model_validate({"cuff": {
        "pain_detection_kpa": 20.0, "pain_tolerance_kpa": 60.0,
        "summation_per_inflation": 0.08}})
    (tsp,) = run_simulated(load_protocol("tsp-cuff"), SimulatedClock(10.0), tmp_path / "c.h5",
                           model, seed=3, progress=lambda line: None)
    first, last = tsp.extra["first"], tsp.extra["last"]
    assert first > 0 and len(tsp.trials) == 10
    # 9 more inflations, 8 % each: last = first * 1.08**9 = 2.0 x first (VAS noise, 0.1 cm steps)
    assert last / first == pytest.approx(1.08 ** 9, rel=0.25)
    s = session.open(tmp_path / "c.h5")
    cuff = s.streams["cuff"]
    assert cuff.column("p1").max() <= 40.0 + 1.0  # never above the programmed level
    assert cuff.column("p1")[-5:].max() < 2.0  # deflated at the end


def test_cuff_staircase_finds_the_pain_detection_pressure(tmp_path: Path) -> None:
    from protocols.files import parse_protocol

    text = (Path(__file__).resolve().parent.parent / "protocols" / "data" /
            "cuff-staircase.toml").read_text().replace("isi_s = 4.0", "isi_s = 1.0")
    model = ParticipantModel.model_validate({"cuff": {"pain_detection_kpa": 30.0}})
    (m,) = run_simulated(parse_protocol(text), SimulatedClock(20.0), tmp_path / "s.h5",
                         model, seed=4, progress=lambda line: None)
    # 1-up/2-down on a threshold with 5 % log-normal noise: about 30 * exp(0.05 * 0.545) = 30.8
    assert m.name == "cPDT-stair" and m.unit == "kPa"
    assert m.value == pytest.approx(30.8, abs=3.0)
    answers = [t["answer"] for t in session.open(tmp_path / "s.h5").trials()]
    assert "yes" in answers and "no" in answers
