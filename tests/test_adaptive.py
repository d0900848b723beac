"""Adaptive level procedures: staircase, method of levels, Psi (pure state machines)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import expit

from protocols.adaptive import StimulusTemplate, YesNoProcedure, pressure_pulse, thermal_pulse
from protocols.base import NO, PRESSURE_RAMP, RATING, THERMAL_PULSE, YES, Answer, ProtocolError
from protocols.psychometric import PsychometricProcedure
from protocols.staircase import MethodOfLevels, Staircase

HEAT = thermal_pulse("HPT", rate_c_s=8.0, hold_s=2.0, return_rate_c_s=8.0)


def answer(yes: bool) -> Answer:
    return Answer(YES if yes else NO)


def play(proc: YesNoProcedure, answers: str) -> list[float]:
    """Give ``answers`` ("Y"/"N" per trial) while the procedure runs; the levels presented."""
    levels = []
    for a in answers:
        if proc.done:
            break
        stim = proc.next_stimulus()
        levels.append(stim.params[proc.template.level_key])
        proc.record(answer(a == "Y"))
    return levels


def simulate(proc: YesNoProcedure, threshold: float, width: float, lapse: float,
             rng: np.random.Generator) -> float:
    """Run a logistic observer (P(YES) = lapse / 2 + (1 - lapse) * F) to the end; the value."""
    while not proc.done:
        x = proc.next_stimulus().params[proc.template.level_key]
        p = lapse / 2 + (1 - lapse) * expit((x - threshold) / width)
        proc.record(answer(bool(rng.random() < p)))
    return proc.result()[0].value


def stair(**kw: object) -> Staircase:
    args: dict = dict(start=40.0, step=1.0, lower=30.0, upper=50.0, n_down=2, max_trials=50,
                      max_reversals=4, estimate_last=3)
    args.update(kw)
    return Staircase("HPT", HEAT, **args)


# ------------------------------------------------------------------- staircase: hand-made


def test_staircase_reversals_and_estimate_by_hand() -> None:
    # 1-up/2-down, step 1, start 40:
    #  t1 40 N -> up 41 | t2 41 Y (1 of 2) | t3 41 Y -> down: reversal 1 at 41 -> 40
    #  t4 40 Y | t5 40 Y -> down 39 (same direction) | t6 39 N -> up: reversal 2 at 39 -> 40
    #  t7 40 Y | t8 40 Y -> down: reversal 3 at 40 -> 39 | t9 39 N -> up: reversal 4 at 39
    # 4 reversals -> stop. Last 3: (39 + 40 + 39) / 3 = 39.333; SD (n-1) = sqrt(1/3) = 0.577
    proc = stair()
    levels = play(proc, "NYYYYNYYN" + "NNNN")
    assert levels == [40, 41, 41, 40, 40, 39, 40, 40, 39]
    assert proc.reversals == [41, 39, 40, 39]
    assert proc.done and proc.stop_reason == "reversals"
    (m,) = proc.result()
    assert m.value == pytest.approx(118 / 3)
    assert m.extra["sd"] == pytest.approx(math.sqrt(1 / 3))
    assert m.trials == tuple(levels) and m.unit == "°C" and m.transform == "none"
    assert m.flags == () and m.extra["target_p"] == pytest.approx(0.7071, abs=1e-4)
    json.dumps(m.as_payload())  # a session event payload


def test_staircase_no_resets_the_down_count() -> None:
    # t1 40 Y (1 of 2) | t2 40 N -> up 41 (first move: no reversal) | t3 41 Y | t4 41 Y -> down
    # (reversal at 41) -> 40
    proc = stair()
    assert play(proc, "YNYY") == [40, 40, 41, 41]
    assert proc.reversals == [41]
    assert proc.next_stimulus().params["target_c"] == 40


def test_staircase_1_up_3_down_needs_three_yes() -> None:
    proc = stair(n_down=3)
    assert play(proc, "YYYY") == [40, 40, 40, 39]  # the third YES moves it down
    assert proc.target_p == pytest.approx(0.7937, abs=1e-4)


def test_staircase_step_halves_at_the_given_reversals() -> None:
    # 1-up/1-down, step 2, halve at reversals 1 and 2, never below 0.75:
    #  40 N -> 42 | 42 N -> 44 | 44 Y: reversal 1, step 1 -> 43 | 43 N: reversal 2,
    #  step max(0.5, 0.75) = 0.75 -> 43.75 | 43.75 Y: reversal 3 (step stays) -> 43 | 43 Y -> 42.25
    proc = stair(step=2.0, n_down=1, halve_at=(1, 2), min_step=0.75, max_reversals=5)
    assert play(proc, "NNYNYY") == [40, 42, 44, 43, 43.75, 43]
    assert proc.step == 0.75
    assert proc.next_stimulus().params["target_c"] == 42.25


# ------------------------------------------------------------------- staircase: stopping


def test_staircase_stops_on_max_trials_before_the_reversals() -> None:
    # same answers as the hand-made run, at most 5 trials: only reversal 1 (41) so far
    proc = stair(max_trials=5)
    assert play(proc, "NYYYYNYYN") == [40, 41, 41, 40, 40]
    assert proc.done and proc.stop_reason == "max-trials" and proc.next_stimulus() is None
    (m,) = proc.result()
    assert m.value == 41 and m.extra["sd"] is None
    assert m.flags == ("max-trials", "few-reversals")


def test_staircase_stops_on_reversals_before_max_trials() -> None:
    # 1-up/1-down alternating answers: a reversal on every trial from t2 on; 2 reversals
    # needed -> stops after 3 trials although max_trials is 50 (no "both must be met" bug)
    proc = stair(n_down=1, max_reversals=2, estimate_last=2)
    assert play(proc, "NYNYNY") == [40, 41, 40]
    assert proc.stop_reason == "reversals" and "max-trials" not in proc.result()[0].flags


def test_staircase_both_limits_on_the_same_trial_is_not_flagged() -> None:
    proc = stair(max_trials=9)
    play(proc, "NYYYYNYYN")
    assert proc.stop_reason == "reversals" and proc.result()[0].flags == ()


# ------------------------------------------------------------------- staircase: bounds


def test_staircase_clamps_at_the_upper_bound_and_flags() -> None:
    # start 49, step 2, upper 50, always NO: 49 -> 51 clamped to 50, then stays at 50
    proc = stair(start=49.0, step=2.0, max_trials=4)
    levels = play(proc, "NNNN")
    assert levels == [49, 50, 50, 50] and max(levels) <= 50
    (m,) = proc.result()
    assert m.value == 50
    assert set(m.flags) == {"clamped", "max-trials", "no-reversals", "at-bound"}


def test_staircase_clamps_start_and_lower_bound() -> None:
    proc = stair(start=29.0, step=1.0, n_down=1, max_trials=3)
    assert play(proc, "YYY") == [30, 30, 30]
    assert "clamped" in proc.result()[0].flags


def test_template_levels_relative_to_baseline_and_pressure() -> None:
    cold = thermal_pulse("CDT", rate_c_s=2.0, hold_s=1.0, return_rate_c_s=2.0, levels="cold")
    proc = Staircase("CDT-stair", cold, start=1.0, step=0.5, lower=0.1, upper=32.0)
    stim = proc.next_stimulus()
    assert stim.kind == THERMAL_PULSE and stim.params["target_c"] == 31.0
    assert stim.params["baseline_c"] == 32.0 and stim.test == "CDT"
    ppt = pressure_pulse("PPT", rate_kpa_s=50.0, hold_s=1.0)
    proc = Staircase("PPT-stair", ppt, start=200.0, step=20.0, lower=0.0, upper=1000.0)
    assert proc.next_stimulus().kind == PRESSURE_RAMP
    proc.record(answer(False))
    assert proc.next_stimulus().params["target_kpa"] == 220.0
    assert proc.result()[0].unit == "kPa"
    with pytest.raises(ValueError):
        StimulusTemplate("X", THERMAL_PULSE, "target_c", "°C", params={"target_c": 40})
    with pytest.raises(ValueError, match="levels"):
        thermal_pulse("WDT", rate_c_s=1.0, hold_s=1.0, return_rate_c_s=1.0, levels="warmth")


# ------------------------------------------------------------------- interface rules


def test_same_stimulus_until_record_and_jitter_from_the_rng() -> None:
    tpl = thermal_pulse("HPT", rate_c_s=8.0, hold_s=2.0, return_rate_c_s=8.0, isi_s=5.0,
                        isi_jitter_s=2.0)
    runs = []
    for _ in range(2):
        proc = Staircase("HPT", tpl, start=40, step=1, lower=32, upper=50,
                         rng=np.random.default_rng(7))
        first = proc.next_stimulus()
        assert proc.next_stimulus() is first and first.repetition == 1
        proc.record(answer(False))
        second = proc.next_stimulus()
        assert second.repetition == 2 and 5.0 <= second.isi_s < 7.0
        runs.append((first.isi_s, second.isi_s))
    assert runs[0] == runs[1] and runs[0][0] != runs[0][1]
    with pytest.raises(ValueError, match="rng"):
        Staircase("HPT", tpl, start=40, step=1, lower=32, upper=50)


def test_wrong_use_raises_one_line_protocol_errors() -> None:
    proc = stair(max_trials=1)
    with pytest.raises(ProtocolError, match="before next_stimulus") as e1:
        proc.record(answer(True))
    proc.next_stimulus()
    with pytest.raises(ProtocolError, match="yes/no") as e2:
        proc.record(Answer(RATING, 40.0))
    proc.record(answer(True))
    with pytest.raises(ProtocolError, match="done") as e3:
        proc.record(answer(True))
    assert all("\n" not in str(e.value) for e in (e1, e2, e3))
    assert stair().result() == []


# ------------------------------------------------------------------- staircase: convergence


@pytest.mark.parametrize("n_down", [2, 3])
def test_staircase_converges_to_its_target_point(n_down: int) -> None:
    # logistic observer, threshold 45, width 0.6, no lapse: the 1u2d target P = 0.707 is at
    # 45 + 0.6 * ln(0.707 / 0.293) = 45.529 °C; 1u3d (P = 0.794): 45 + 0.6 * 1.349 = 45.809
    rng = np.random.default_rng(2024)
    p = 0.5 ** (1 / n_down)
    target = 45 + 0.6 * math.log(p / (1 - p))
    estimates = [simulate(stair(start=42.0, step=1.0, n_down=n_down, halve_at=(2,),
                                max_reversals=12, estimate_last=8, max_trials=120),
                          45.0, 0.6, 0.0, rng) for _ in range(200)]
    assert np.mean(estimates) == pytest.approx(target, abs=0.12)
    assert np.std(estimates) < 0.5


# ------------------------------------------------------------------- method of levels


def levels_proc(**kw: object) -> MethodOfLevels:
    tpl = thermal_pulse("WDT", rate_c_s=4.0, hold_s=1.0, return_rate_c_s=4.0)
    args: dict = dict(start=33.0, step=1.0, min_step=0.25, lower=32.0, upper=50.0)
    args.update(kw)
    return MethodOfLevels("WDT-levels", tpl, **args)


def test_levels_halve_at_each_change_by_hand() -> None:
    # 33 N -> 34 | 34 N -> 35 | 35 Y: change, step 0.5 -> 34.5 | 34.5 N: change, step 0.25
    # -> 34.75 | 34.75 Y: change, step 0.125 < 0.25 -> stop. Estimate (34.75 + 34.5) / 2
    proc = levels_proc()
    assert play(proc, "NNYNYNN") == [33, 34, 35, 34.5, 34.75]
    assert proc.stop_reason == "resolution"
    (m,) = proc.result()
    assert m.value == 34.625 and m.flags == () and m.name == "WDT-levels"
    assert (m.extra["last_no"], m.extra["last_yes"]) == (34.5, 34.75)


def test_levels_stop_at_the_bounds() -> None:
    proc = levels_proc(start=48.0)  # never felt up to the 50 °C cut-off
    assert play(proc, "NNNN") == [48, 49, 50]
    (m,) = proc.result()
    assert proc.stop_reason == "at-bound" and m.value == 50
    assert set(m.flags) == {"at-bound", "no-change"}
    proc = levels_proc(start=49.5)  # 49.5 N -> 50.5 is clamped to 50
    assert play(proc, "NY") == [49.5, 50] and "clamped" in proc.result()[0].flags
    proc = levels_proc(start=33.0)  # felt down to the lower bound
    assert play(proc, "YYY") == [33, 32] and proc.stop_reason == "at-bound"


def test_levels_relative_to_baseline() -> None:
    warm = thermal_pulse("WDT", rate_c_s=4.0, hold_s=1.0, return_rate_c_s=4.0, levels="warm")
    proc = MethodOfLevels("WDT-levels", warm, start=1.0, step=1.0, min_step=0.25, lower=0.0,
                          upper=18.0)
    assert play(proc, "NNYNYNN") == [33, 34, 35, 34.5, 34.75]  # target_c = 32 + level
    assert proc.result()[0].value == 2.625  # °C above baseline


# ------------------------------------------------------------------- Psi


def psi(**kw: object) -> PsychometricProcedure:
    args: dict = dict(lower=32.0, upper=50.0, grid_step=0.5, max_trials=40)
    args.update(kw)
    return PsychometricProcedure("HPT", HEAT, **args)


def test_psi_converges_to_the_threshold() -> None:
    rng = np.random.default_rng(11)
    results = []
    for threshold in rng.uniform(42.0, 47.0, 30):
        proc = psi()
        value = simulate(proc, threshold, 0.6, 0.02, rng)
        (m,) = proc.result()
        assert "at-bound" not in m.flags and m.flags == () and len(m.trials) == 40
        assert all(32 <= x <= 50 for x in m.trials)
        results.append((value - threshold, m.extra["sd"]))
    errors, sds = np.array(results).T
    assert abs(errors.mean()) < 0.15
    assert np.sqrt(np.mean(errors ** 2)) < 0.45 and sds.mean() < 0.45


def test_psi_flags_a_threshold_beyond_the_bounds() -> None:
    rng = np.random.default_rng(3)
    for threshold in (52.0, 30.0):
        proc = psi(max_trials=25)
        value = simulate(proc, threshold, 0.6, 0.0, rng)
        assert "at-bound" in proc.result()[0].flags
        assert 32 <= value <= 50


def test_psi_stops_on_precision() -> None:
    rng = np.random.default_rng(5)
    proc = psi(max_trials=80, target_sd=0.5)
    simulate(proc, 44.3, 0.5, 0.0, rng)
    (m,) = proc.result()
    assert proc.stop_reason == "precision" and m.extra["sd"] < 0.5 and len(m.trials) < 80
    assert m.flags == ()
    proc = psi(max_trials=5, target_sd=0.01)
    simulate(proc, 44.3, 0.5, 0.0, rng)
    assert proc.result()[0].flags == ("max-trials",)


def test_psi_is_deterministic_and_stays_on_the_grid() -> None:
    a, b = psi(), psi()
    assert play(a, "NNYNYYNY") == play(b, "NNYNYYNY")
    assert all(x in a.grid for x in a.levels)
    assert a.result() == b.result()
