"""Heat calibration and heat TSP: pure logic on hand-made ratings, then simulated runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocols.base import RATING, STOPPED, THERMAL_PULSE, Answer, ProtocolError
from protocols.files import load_protocol, parse_protocol
from protocols.thermal_pulses import (
    HeatCalibration,
    HeatTsp,
    PulseShape,
    RatingFit,
    calibration_order,
    fit_ratings,
    logistic,
    round_half,
)
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel


def test_calibration_order_is_balanced_and_never_repeats_back_to_back() -> None:
    for seed in range(20):
        order = calibration_order([43.0, 44.0, 45.0, 46.0], 3, np.random.default_rng(seed))
        assert sorted(order) == sorted([43.0, 44.0, 45.0, 46.0] * 3)
        assert all(a != b for a, b in zip(order, order[1:], strict=False))


def test_logistic_fit_recovers_a_known_curve_and_reads_off_targets() -> None:
    temps = np.array([43.0, 44.0, 45.0, 46.0, 47.0, 48.0])
    ratings = logistic(temps, 45.8, 0.9)  # exact curve: T50 = 45.8, spread 0.9
    fit = fit_ratings(temps, ratings)
    assert fit.t50 == pytest.approx(45.8, abs=1e-3) and fit.spread == pytest.approx(0.9, abs=1e-3)
    # T30 = 45.8 + 0.9 * ln(30/70) = 45.8 - 0.7626 = 45.037 -> 45.0
    assert fit.temperature_for(30.0) == (45.0, "logistic")
    # T70 = 45.8 + 0.7626 = 46.563 -> 46.5
    assert fit.temperature_for(70.0) == (46.5, "logistic")
    assert round_half(46.76) == 47.0 and round_half(46.74) == 46.5
    assert (round_half(46.25), round_half(46.75)) == (46.5, 47.0)  # halves always up


def test_without_a_logistic_fit_the_linear_one_is_used() -> None:
    temps = np.array([43.0, 44.0, 45.0])
    fit = fit_ratings(temps, np.array([10.0, 30.0, 50.0]))  # linear: 20/°C, 50 at 45 °C
    assert fit.slope == pytest.approx(20.0) and fit.r2_linear == pytest.approx(1.0)
    linear_only = RatingFit(None, None, fit.slope, fit.intercept, None, fit.r2_linear)
    assert linear_only.temperature_for(50.0) == (45.0, "linear")
    assert linear_only.temperature_for(30.0) == (44.0, "linear")  # (30 - 10) / 20 + 43


def test_calibration_procedure_measures_t30_t50_t70() -> None:
    shape = PulseShape(hold_s=1.0, isi_s=(1.0, 2.0))
    cal = HeatCalibration([43.0, 44.0, 45.0, 46.0, 47.0, 48.0], 2, shape,
                          np.random.default_rng(1))
    first = cal.next_stimulus()
    assert first.kind == THERMAL_PULSE and first.params["rate"] is True
    while (s := cal.next_stimulus()) is not None:
        cal.record(Answer(RATING, float(logistic(np.array(s.params["target_c"]), 45.8, 0.9))))
    by_name = {m.name: m for m in cal.result()}
    assert (by_name["T30"].value, by_name["T50"].value, by_name["T70"].value) == (
        45.0, 46.0, 46.5)  # 45.04, 45.8 -> 46.0 (round half), 46.56
    assert by_name["T50"].extra["fit"] == "logistic" and by_name["T50"].unit == "degC"
    with pytest.raises(ProtocolError, match="every pulse is rated"):
        cal.record(Answer(RATING, 10.0))


def test_tsp_is_one_train_at_a_fixed_rate_last_minus_first() -> None:
    tsp = HeatTsp(46.0, 4, PulseShape(hold_s=0.5), period_s=2.0)
    train = tsp.next_stimulus()
    assert train.params["train"] == 4 and train.params["period_s"] == 2.0
    assert tsp.next_stimulus() == train
    tsp.record(Answer(RATING, None, extra={"ratings": [20.0, 25.0, 30.0, 35.0]}))
    assert tsp.done and tsp.next_stimulus() is None
    (m,) = tsp.result()
    assert (m.name, m.value, m.extra["ratio"]) == ("TSP", 15.0, 1.75)  # 35-20, 35/20
    with pytest.raises(ProtocolError, match="answered with 2 ratings"):
        HeatTsp(46.0, 2, PulseShape()).record(Answer(STOPPED, 1.0))
    with pytest.raises(ProtocolError, match="ratings must be in 0-100"):
        HeatTsp(46.0, 2, PulseShape()).record(Answer(RATING, None,
                                                     extra={"ratings": [10.0, 101.0]}))
    silent = HeatTsp(46.0, 2, PulseShape())
    silent.record(Answer(RATING, None, extra={"ratings": [None, 30.0]}))
    assert silent.result() == []  # no first rating: no TSP
    late = HeatTsp(46.0, 2, PulseShape(), period_s=2.0)
    late.record(Answer(RATING, None, extra={"ratings": [10.0, 30.0], "max_onset_delay_s": 0.5}))
    assert "rate-not-kept" in late.result()[0].flags


SHORT_CAL = """
[protocol]
name = "cal-short"
title = "short calibration"
kind = "heat-calibration"

[calibration]
temperatures_c = [44.0, 45.0, 46.0, 47.0, 48.0]
repetitions = 2

[pulse]
rate_c_s = 10.0
return_rate_c_s = 10.0
hold_s = 2.0
rating_window_s = 4.0
isi_s = [1.0, 1.5]
"""


def quiet_participant() -> ParticipantModel:
    return ParticipantModel.model_validate({
        "participant": {"code": "SIM100", "reaction_time_s": 0.4, "reaction_time_sd_s": 0.0},
        "thresholds": {"HPT": 44.0},
        "heat_rating": {"midpoint_above_hpt_c": 2.0, "slope_per_c": 1.0, "noise": 0.0,
                        "summation_per_pulse": 0.05}})


def test_simulated_calibration_recovers_the_participants_rating_curve(tmp_path: Path) -> None:
    measures = run_simulated(parse_protocol(SHORT_CAL), SimulatedClock(40.0),
                             tmp_path / "cal.h5", quiet_participant(), seed=3,
                             progress=lambda line: None)
    got = {m.name: m.value for m in measures}
    # truth: T50 = 44 + 2 = 46.0, spread 1/slope = 1.0 -> T30 = 45.15 (45.0/45.5), T70 = 46.85
    assert got["T50"] == pytest.approx(46.0, abs=0.5)
    assert got["T30"] in (45.0, 45.5) and got["T70"] in (46.5, 47.0)
    s = session.open(tmp_path / "cal.h5")
    assert set(s.results()) == {"T30", "T50", "T70"} and len(s.trials()) == 10


def test_simulated_heat_tsp_shows_the_participants_summation(tmp_path: Path) -> None:
    protocol = load_protocol("tsp")
    measures = run_simulated(protocol, SimulatedClock(10.0), tmp_path / "tsp.h5",
                             quiet_participant(), seed=4, progress=lambda line: None)
    (tsp,) = measures
    first = 100.0 / (1.0 + np.exp(-(46.0 - 46.0)))  # 50 at 46 °C
    assert tsp.extra["first"] == pytest.approx(first, abs=2.0)
    # 9 more pulses, 5 % each: 50 * 1.05**9 = 77.6
    assert tsp.extra["last"] == pytest.approx(first * 1.05 ** 9, abs=3.0)
    assert tsp.flags == () and len(tsp.trials) == 10
    onsets = [e.timestamp for e in session.open(tmp_path / "tsp.h5").events_of("stimulus_onset")]
    assert np.allclose(np.diff(onsets), 2.0, atol=0.15)  # 0.5 Hz, kept


def test_calibrated_temperatures_feed_a_later_run(tmp_path: Path) -> None:
    from qst_station.calibration import CalibrationError, calibrated_temperatures

    run_simulated(parse_protocol(SHORT_CAL), SimulatedClock(40.0), tmp_path / "cal.h5",
                  quiet_participant(), seed=3, progress=lambda line: None)
    temperatures = calibrated_temperatures(tmp_path / "cal.h5")
    assert list(temperatures) == ["T30", "T50", "T70"]
    assert all(v * 2 == round(v * 2) for v in temperatures.values())  # 0.5 °C steps
    run_simulated(load_protocol("tsp"), SimulatedClock(20.0), tmp_path / "tsp.h5",
                  quiet_participant(), seed=4, progress=lambda line: None)
    with pytest.raises(CalibrationError, match="no calibrated temperatures"):
        calibrated_temperatures(tmp_path / "tsp.h5")
