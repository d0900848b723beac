"""MDT and MPT: method-of-limits series, turning points, floor/ceiling, answer checks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.base import MANUAL, NO, RATING, VALUE, YES, Answer, ProtocolError, Stimulus
from protocols.dfns import convention
from protocols.mechanical import (
    BLUNT,
    MDT_FORCES_MN,
    MPT_FORCES_MN,
    SHARP,
    MdtProcedure,
    MptProcedure,
)
from protocols.method_of_series import SeriesThreshold, factor2_forces
from sim.mechanical_participant import MechanicalParticipant


def run(proc: SeriesThreshold, felt: Callable[[float], bool]) -> list[Stimulus]:
    """Answer every stimulus with ``felt(force)``; the stimuli applied."""
    applied = []
    while (stim := proc.next_stimulus()) is not None:
        applied.append(stim)
        proc.record(Answer(YES if felt(stim.params["force_mN"]) else NO))
    return applied


def forces(stimuli: list[Stimulus]) -> list[float]:
    return [s.params["force_mN"] for s in stimuli]


def test_force_sets() -> None:
    assert MDT_FORCES_MN == (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    assert MPT_FORCES_MN == (8, 16, 32, 64, 128, 256, 512)
    with pytest.raises(ValueError, match="factor-2"):
        factor2_forces(1.0, 3.0)


def test_mdt_descending_first_then_alternating() -> None:
    # true threshold 3 mN, no noise. Start 16 felt -> series 1 descending:
    # 16 Y, 8 Y, 4 Y, 2 N -> turning point 2 (first undetected on the way down).
    # Series 2 ascending starts one step up at 4: Y -> turning point 4. Series 3 descending
    # at 2: N -> 2, and so on: 2, 4, 2, 4, ... (10 points). Geometric mean = sqrt(2 * 4).
    proc = MdtProcedure()
    stimuli = run(proc, lambda f: f > 3.0)
    assert forces(stimuli) == [16, 8, 4, 2] + [4, 2] * 4 + [4]
    assert [p.force_mN for p in proc.turning_points] == [2, 4] * 5
    assert [p.direction for p in proc.turning_points] == ["descending", "ascending"] * 5
    [mdt] = proc.result()
    assert mdt.name == "MDT" and mdt.unit == "mN" and mdt.transform == "log10"
    assert mdt.value == pytest.approx(math.sqrt(8.0))
    assert mdt.trials == (2, 4) * 5 and mdt.flags == ()
    assert mdt.extra["stimuli"] == 13 and mdt.extra["start_force_mN"] == 16


def test_mdt_stimulus_params_and_instructions() -> None:
    proc = MdtProcedure(site="hand dorsum")
    first = proc.next_stimulus()
    assert first is not None and first.kind == MANUAL and first.site == "hand dorsum"
    assert first.params == {"instrument": "von Frey", "force_mN": 16.0, "series": 1,
                            "direction": "start"}
    assert "16 mN von Frey filament" in first.instruction and "1/10" in first.instruction
    assert "touch" in first.participant_instruction
    proc.record(Answer(YES))
    second = proc.next_stimulus()
    assert second is not None and second.repetition == 2
    assert second.params["direction"] == "descending" and second.params["force_mN"] == 8.0
    assert "descending" in second.instruction


def test_mpt_ascending_first_sharp_blunt() -> None:
    # true threshold 40 mN. Start 8 blunt -> series 1 ascending: 8 N, 16 N, 32 N, 64 Y
    # -> turning point 64 (first sharp on the way up); series 2 descending at 32: N -> 32;
    # series 3 ascending at 64: Y -> 64; ... Geometric mean = sqrt(64 * 32) = 45.25 mN.
    assert (SHARP, BLUNT) == (YES, NO)
    proc = MptProcedure()
    stimuli = run(proc, lambda f: f > 40.0)
    assert forces(stimuli) == [8, 16, 32, 64] + [32, 64] * 4 + [32]
    assert all(s.params["instrument"] == "pinprick" for s in stimuli)
    assert "sharp" in stimuli[0].participant_instruction
    [mpt] = proc.result()
    assert mpt.name == "MPT" and mpt.value == pytest.approx(math.sqrt(64 * 32))
    assert [p.direction for p in proc.turning_points] == ["ascending", "descending"] * 5


def test_mpt_ceiling_never_sharp() -> None:
    # series 1: 8..512 all blunt (7 stimuli) -> capped at 512; every later series: one
    # stimulus at 512 (blunt). All 10 turning points 512 -> MPT = 512 mN, flagged.
    proc = MptProcedure()
    stimuli = run(proc, lambda f: False)
    assert forces(stimuli) == list(MPT_FORCES_MN) + [512] * 9
    [mpt] = proc.result()
    assert mpt.value == pytest.approx(512.0) and mpt.flags == ("ceiling",)
    assert mpt.extra["capped_series"] == 5  # the ascending ones; descending ones end on "no"


def test_mdt_floor_always_felt() -> None:
    # series 1: 16 down to 0.25, all felt (7 stimuli) -> capped at 0.25; then 0.25 each time.
    proc = MdtProcedure()
    stimuli = run(proc, lambda f: True)
    assert forces(stimuli) == [16, 8, 4, 2, 1, 0.5, 0.25] + [0.25] * 9
    [mdt] = proc.result()
    assert mdt.value == pytest.approx(0.25) and mdt.flags == ("floor",)


def test_floor_and_ceiling_flags_together() -> None:
    # forces 1 and 2 mN, start 2: "no" -> ascending, already at the top -> ceiling, capped
    # turning point 2; descending starts at 2 again: "yes" -> 1: "yes" -> floor, capped 1.
    proc = MdtProcedure(start_force_mN=2.0, forces_mN=(1.0, 2.0), series_pairs=1)
    stimuli = []
    for kind in (NO, YES, YES):
        stimuli.append(proc.next_stimulus())
        proc.record(Answer(kind))
    assert forces(stimuli) == [2, 2, 1] and proc.done
    assert [(p.force_mN, p.capped) for p in proc.turning_points] == [(2, True), (1, True)]
    [mdt] = proc.result()
    assert mdt.flags == ("ceiling", "floor") and mdt.value == pytest.approx(math.sqrt(2))


def test_same_stimulus_until_record_and_done() -> None:
    proc = MdtProcedure(series_pairs=1)
    first = proc.next_stimulus()
    assert proc.next_stimulus() is first
    with pytest.raises(ProtocolError):
        MdtProcedure().record(Answer(YES))  # nothing pending
    run(proc, lambda f: f > 3.0)
    assert proc.done and proc.next_stimulus() is None
    assert len(proc.turning_points) == 2
    with pytest.raises(ProtocolError, match="no stimulus pending"):
        proc.record(Answer(YES))


@pytest.mark.parametrize("answer", [Answer(RATING, 50.0), Answer(VALUE, 4.0),
                                    Answer("sharp"), Answer("blunt")])
def test_wrong_answer_rejected_without_state_change(answer: Answer) -> None:
    proc = MptProcedure()
    stim = proc.next_stimulus()
    with pytest.raises(ProtocolError) as err:
        proc.record(answer)
    assert "\n" not in str(err.value) and str(err.value).startswith("MPT: ")
    assert "sharp = yes, blunt = no" in str(err.value)
    assert proc.next_stimulus() is stim and proc.result() == []


def test_partial_result_is_flagged_incomplete() -> None:
    proc = MdtProcedure()
    assert proc.result() == []
    for kind in (YES, YES, NO):  # 16, 8, 4 -> turning point 4
        proc.next_stimulus()
        proc.record(Answer(kind))
    [mdt] = proc.result()
    assert mdt.value == 4.0 and mdt.flags == ("incomplete",)


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="start force"):
        MdtProcedure(start_force_mN=3.0)
    with pytest.raises(ValueError, match="series_pairs"):
        MptProcedure(series_pairs=0)


@settings(max_examples=60)
@given(st.lists(st.booleans(), min_size=200, max_size=200), st.sampled_from(MDT_FORCES_MN))
def test_series_invariants_for_any_answers(answers: list[bool], start: float) -> None:
    proc = MdtProcedure(start_force_mN=start)
    seen: list[tuple[float, bool]] = []
    for felt in answers:
        stim = proc.next_stimulus()
        if stim is None:
            break
        assert stim.params["force_mN"] in MDT_FORCES_MN
        proc.record(Answer(YES if felt else NO))
        seen.append((stim.params["force_mN"], felt))
    assert proc.done  # 10 series of at most 12 stimuli each
    points = proc.turning_points
    directions = [p.direction for p in points]
    assert len(points) == 10 and directions.count("ascending") == 5
    assert all(a != b for a, b in zip(directions, directions[1:], strict=False))
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert later[0] / earlier[0] in (0.5, 1.0, 2.0)  # one factor-2 step at most
    for p in points:  # a capped series ends at its end of the range
        assert not p.capped or p.force_mN == (512 if p.direction == "ascending" else 0.25)
    assert proc.result()[0].trials == tuple(p.force_mN for p in points)


@pytest.mark.parametrize(("test", "threshold"), [("MDT", 0.7), ("MDT", 2.0), ("MDT", 5.5),
                                                 ("MPT", 20.0), ("MPT", 45.0),
                                                 ("MPT", 150.0)])
def test_simulated_participant_threshold_recovered(test: str, threshold: float) -> None:
    estimates = []
    for seed in range(100):
        person = MechanicalParticipant(seed=seed, mdt_mN=threshold, mpt_mN=threshold)
        proc = MdtProcedure() if test == "MDT" else MptProcedure()
        while (stim := proc.next_stimulus()) is not None:
            proc.record(person.answer(stim))
        [measure] = proc.result()
        assert measure.flags == ()
        estimates.append(measure.value)
    logs = np.log2(np.asarray(estimates) / threshold)
    assert abs(float(np.mean(logs))) < 0.15  # geometric mean within ~11 % of the truth
    assert float(np.max(np.abs(logs))) <= 1.0  # every run within a factor of 2


def test_simulated_participant_is_reproducible() -> None:
    def estimate(seed: int) -> float:
        person, proc = MechanicalParticipant(seed=seed, mpt_mN=64.0), MptProcedure()
        while (stim := proc.next_stimulus()) is not None:
            proc.record(person.answer(stim))
        return proc.result()[0].value
    assert estimate(3) == estimate(3)


def test_measures_match_dfns_conventions_and_serialize() -> None:
    for proc in (MdtProcedure(), MptProcedure()):
        run(proc, lambda f: f > 30.0)
        [measure] = proc.result()
        conv = convention(measure.name)
        assert (measure.unit, measure.transform) == (conv.unit, conv.transform)
        json.dumps(measure.as_payload(), allow_nan=False)
