"""MPS + DMA, WUR and VDT: order, answer checks and the values on hand-computed cases."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest

from protocols.base import MANUAL, NO, RATING, VALUE, YES, Answer, Measure, ProtocolError, Stimulus
from protocols.dfns import convention
from protocols.mechanical import (
    MpsDmaProcedure,
    TouchStimulus,
    VdtProcedure,
    WurProcedure,
    balanced_order,
)
from protocols.method_of_series import ManualProcedure
from sim.mechanical_participant import MechanicalParticipant


def run(proc: ManualProcedure, answer: Callable[[Stimulus], Answer]) -> list[Stimulus]:
    applied = []
    while (stim := proc.next_stimulus()) is not None:
        applied.append(stim)
        proc.record(answer(stim))
    return applied


def by_name(measures: list[Measure]) -> dict[str, Measure]:
    return {m.name: m for m in measures}


def mps(seed: int = 7) -> MpsDmaProcedure:
    return MpsDmaProcedure(np.random.default_rng(seed))


# --- MPS + DMA: order ---------------------------------------------------------------------

def test_mps_order_is_balanced_blocks_without_repeats() -> None:
    proc = mps()
    order = proc.order
    assert len(order) == 50
    counts = Counter(order)
    assert len(counts) == 10 and set(counts.values()) == {5}
    assert sorted(k.force_mN for k in counts if k.is_pinprick) == [8, 16, 32, 64, 128, 256, 512]
    assert TouchStimulus("brush") in counts
    assert {k.instrument for k in counts if not k.is_pinprick} == {"cotton wisp", "Q-tip",
                                                                    "brush"}
    for block in range(5):  # each run of 10 holds every stimulus once
        assert len(set(order[10 * block:10 * block + 10])) == 10
    assert all(a != b for a, b in zip(order, order[1:], strict=False))


def test_mps_order_is_seeded() -> None:
    assert mps(1).order == mps(1).order
    assert mps(1).order != mps(2).order
    with pytest.raises(ValueError, match="log_offset"):
        MpsDmaProcedure(np.random.default_rng(0), log_offset=0.0)


def test_balanced_order_fixes_a_repeat_at_the_block_boundary() -> None:
    for seed in range(200):  # with 2 kinds, half of all block pairs would repeat
        order = balanced_order(["a", "b"], 6, np.random.default_rng(seed))
        assert order in (["a", "b"] * 6, ["b", "a"] * 6)


def test_mps_stimuli_follow_the_order() -> None:
    proc = mps()
    stimuli = run(proc, lambda s: Answer(RATING, 0.0))
    for number, (stim, kind) in enumerate(zip(stimuli, proc.order, strict=True), start=1):
        assert stim.test == "MPS" and stim.kind == MANUAL and stim.repetition == number
        assert stim.params["instrument"] == kind.instrument
        assert stim.params.get("force_mN") == kind.force_mN
        assert stim.params["scale"] == "NRS 0-100"
        assert f"{number}/50" in stim.instruction and "0 = not painful" in (
            stim.participant_instruction)
    pin = next(s for s in stimuli if "force_mN" in s.params)
    assert f"{pin.params['force_mN']:g} mN pinprick" in pin.instruction
    brush = next(s for s in stimuli if s.params["instrument"] == "brush")
    assert "with the brush" in brush.instruction


# --- MPS + DMA: values --------------------------------------------------------------------

# pinprick ratings by force, chosen so rating + 0.1 is a power of 10:
# 8 mN: 0.9 (log10(1.0) = 0), 16-256 mN: 9.9 (log10(10) = 1), 512 mN: 99.9 (log10(100) = 2)
PIN = {8.0: 0.9, 16.0: 9.9, 32.0: 9.9, 64.0: 9.9, 128.0: 9.9, 256.0: 9.9, 512.0: 99.9}


def test_mps_and_dma_hand_computed() -> None:
    # MPS: mean log10(r + 0.1) over 35 ratings = (5*0 + 25*1 + 5*2) / 35 = 1,
    #      so MPS + 0.1 = 10 ** 1 and MPS = 9.9.
    # DMA: cotton wisp 0, Q-tip 0, brush 0, 3, 6, 0, 6 in order -> 15 / 15 = 1.0.
    brush = iter([0.0, 3.0, 6.0, 0.0, 6.0])

    def answer(stim: Stimulus) -> Answer:
        if "force_mN" in stim.params:
            return Answer(RATING, PIN[stim.params["force_mN"]])
        return Answer(RATING, next(brush) if stim.params["instrument"] == "brush" else 0.0)

    proc = mps()
    run(proc, answer)
    measures = by_name(proc.result())
    assert set(measures) == {"MPS", "DMA"}
    mps_m, dma = measures["MPS"], measures["DMA"]
    assert mps_m.value == pytest.approx(9.9) and mps_m.transform == "log10"
    assert len(mps_m.trials) == 35 and mps_m.flags == ()
    assert convention("MPS").transformed(mps_m.value) == pytest.approx(1.0)  # DFNS z scale
    assert dma.value == pytest.approx(1.0) and dma.transform == "none"
    assert len(dma.trials) == 15 and dma.extra["painful_light_touch"] == 3


def test_mps_all_zero_ratings() -> None:
    # every pinprick rated 0: mean log10(0 + 0.1) = -1, MPS = 10 ** -1 - 0.1 = 0
    proc = mps()
    run(proc, lambda s: Answer(RATING, 0.0))
    measures = by_name(proc.result())
    assert measures["MPS"].value == pytest.approx(0.0, abs=1e-12)
    assert convention("MPS").transformed(measures["MPS"].value) == pytest.approx(-1.0)
    assert measures["DMA"].value == 0.0


def test_mps_partial_result_is_incomplete() -> None:
    proc = mps()
    assert proc.result() == []
    proc.next_stimulus()
    proc.record(Answer(RATING, 20.0))
    [measure] = proc.result()
    assert measure.flags == ("incomplete",)
    assert measure.name == ("MPS" if proc.order[0].is_pinprick else "DMA")


@pytest.mark.parametrize("answer", [
    Answer(YES), Answer(NO), Answer(VALUE, 5.0), Answer(RATING, None), Answer(RATING, -1.0),
    Answer(RATING, 100.5), Answer(RATING, float("nan")), Answer(RATING, float("inf")),
    Answer(RATING, True), Answer(RATING, "50")])  # type: ignore[arg-type]
def test_mps_wrong_rating_rejected(answer: Answer) -> None:
    proc = mps()
    stim = proc.next_stimulus()
    with pytest.raises(ProtocolError) as err:
        proc.record(answer)
    assert "\n" not in str(err.value) and str(err.value).startswith("MPS: ")
    assert proc.next_stimulus() is stim and proc.result() == []


def test_rating_ends_of_scale_accepted() -> None:
    proc = mps()
    for value in (0, 100, np.float64(55.5)):
        proc.next_stimulus()
        proc.record(Answer(RATING, value))  # type: ignore[arg-type]
    assert len(proc.ratings) == 3


# --- WUR ----------------------------------------------------------------------------------

def wur(single: list[float], train: list[float], **kwargs: float) -> tuple[Measure, list]:
    proc = WurProcedure(**kwargs)  # type: ignore[arg-type]
    ratings = iter(r for pair in zip(single, train, strict=True) for r in pair)
    stimuli = run(proc, lambda s: Answer(RATING, next(ratings)))
    [measure] = proc.result()
    return measure, stimuli


def test_wur_sequence_alternates_single_and_train() -> None:
    _, stimuli = wur([10.0] * 5, [20.0] * 5)
    assert [s.params["count"] for s in stimuli] == [1, 10] * 5
    assert all(s.params["force_mN"] == 256.0 and s.kind == MANUAL for s in stimuli)
    assert stimuli[1].params["rate_hz"] == 1.0 and "rate_hz" not in stimuli[0].params
    assert [s.repetition for s in stimuli] == list(range(1, 11))
    assert stimuli[0].instruction.startswith("Pair 1/5: apply a single 256 mN pinprick")
    assert "train of 10 pinpricks" in stimuli[1].instruction
    assert "whole series" in stimuli[1].participant_instruction
    _, custom = wur([5.0] * 3, [5.0] * 3, force_mN=128.0, pairs=3, train_length=5)
    assert len(custom) == 6 and custom[1].params == {
        "instrument": "pinprick", "force_mN": 128.0, "count": 5, "scale": "NRS 0-100",
        "rate_hz": 1.0}


def test_wur_hand_computed() -> None:
    # singles 10, 20, 30, 20, 20 -> mean 20; trains 40, 50, 60, 30, 20 -> mean 40;
    # WUR = 40 / 20 = 2.0
    measure, _ = wur([10, 20, 30, 20, 20], [40, 50, 60, 30, 20])
    assert measure.name == "WUR" and measure.value == pytest.approx(2.0)
    assert measure.unit == "ratio" and measure.transform == "log10" and measure.flags == ()
    assert measure.trials == (10, 40, 20, 50, 30, 60, 20, 30, 20, 20)  # application order
    assert measure.extra["single_ratings"] == [10, 20, 30, 20, 20]


def test_wur_single_mean_zero_adds_offset_and_flags() -> None:
    # singles all 0, trains mean (10+20+30+10+30)/5 = 20 -> (20 + 0.1) / (0 + 0.1) = 201
    measure, _ = wur([0] * 5, [10, 20, 30, 10, 30])
    assert measure.value == pytest.approx(201.0)
    assert measure.flags == ("single-rating-zero",)
    assert math.isfinite(convention("WUR").transformed(measure.value))


def test_wur_train_mean_zero_and_both_zero() -> None:
    # singles mean 9.9, trains 0 -> (0 + 0.1) / (9.9 + 0.1) = 0.01
    measure, _ = wur([9.9] * 5, [0] * 5)
    assert measure.value == pytest.approx(0.01) and measure.flags == ("train-rating-zero",)
    # both 0 -> 0.1 / 0.1 = 1 (no wind-up)
    measure, _ = wur([0] * 5, [0] * 5)
    assert measure.value == pytest.approx(1.0)
    assert measure.flags == ("single-rating-zero", "train-rating-zero")


def test_wur_partial_results() -> None:
    proc = WurProcedure()
    proc.next_stimulus()
    proc.record(Answer(RATING, 10.0))
    assert proc.result() == []  # no train yet
    for rating in (30.0, 20.0):  # train 1, single 2
        proc.next_stimulus()
        proc.record(Answer(RATING, rating))
    [measure] = proc.result()
    # singles 10, 20 -> 15; train 30 -> WUR 2
    assert measure.value == pytest.approx(2.0) and measure.flags == ("incomplete",)
    assert measure.trials == (10, 30, 20)


def test_wur_rejects_detection_answer() -> None:
    proc = WurProcedure()
    proc.next_stimulus()
    with pytest.raises(ProtocolError, match="WUR: answer kind 'yes'"):
        proc.record(Answer(YES))


# --- VDT ----------------------------------------------------------------------------------

def test_vdt_hand_computed() -> None:
    # readings 6, 6.5, 7.25 -> mean 19.75 / 3 = 6.5833 x/8, no transform
    readings = iter([6.0, 6.5, 7.25])
    proc = VdtProcedure(site="medial malleolus")
    stimuli = run(proc, lambda s: Answer(VALUE, next(readings)))
    assert len(stimuli) == 3 and stimuli[2].repetition == 3
    assert stimuli[0].params["frequency_hz"] == 64.0 and stimuli[0].params["scale"] == "x/8"
    assert "1/3" in stimuli[0].instruction and "vibration" in stimuli[0].participant_instruction
    [vdt] = proc.result()
    assert vdt.name == "VDT" and vdt.value == pytest.approx(19.75 / 3)
    assert vdt.unit == "/8" and vdt.transform == "none" and vdt.site == "medial malleolus"
    assert vdt.trials == (6.0, 6.5, 7.25) and vdt.flags == ()


@pytest.mark.parametrize("answer", [Answer(VALUE, 8.125), Answer(VALUE, -0.5),
                                    Answer(VALUE, None), Answer(RATING, 5.0), Answer(YES)])
def test_vdt_out_of_scale_rejected(answer: Answer) -> None:
    proc = VdtProcedure()
    proc.next_stimulus()
    with pytest.raises(ProtocolError) as err:
        proc.record(answer)
    assert "\n" not in str(err.value) and str(err.value).startswith("VDT: ")


def test_vdt_scale_ends_and_incomplete() -> None:
    proc = VdtProcedure()
    for value in (0.0, 8.0):
        proc.next_stimulus()
        proc.record(Answer(VALUE, value))
    [vdt] = proc.result()
    assert vdt.value == 4.0 and vdt.flags == ("incomplete",)
    proc.next_stimulus()
    proc.record(Answer(VALUE, 4.0))
    assert proc.done and proc.next_stimulus() is None and proc.result()[0].flags == ()
    with pytest.raises(ProtocolError, match="no stimulus pending"):
        proc.record(Answer(VALUE, 4.0))


# --- all of them --------------------------------------------------------------------------

def test_simulated_session_matches_dfns_conventions() -> None:
    person = MechanicalParticipant(seed=5, gain=0.6, exponent=0.8, windup=2.0)
    measures: list[Measure] = []
    for proc in (mps(5), WurProcedure(), VdtProcedure()):
        run(proc, person.answer)
        measures += proc.result()
    named = by_name(measures)
    assert set(named) == {"MPS", "DMA", "WUR", "VDT"}
    assert named["DMA"].value == 0.0  # healthy: light touch is never painful
    assert named["WUR"].value == pytest.approx(2.0, rel=0.15)
    for measure in measures:
        conv = convention(measure.name)
        assert (measure.unit, measure.transform) == (conv.unit, conv.transform)
        json.dumps(measure.as_payload(), allow_nan=False)
