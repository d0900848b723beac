"""PPT over sites, side differences and CPM: pure state machines and protocol files."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.interfaces import CapabilityError
from protocols.base import (
    CONFIRM,
    CUFF_PROGRAM,
    CUTOFF,
    DONE,
    PRESSURE_RAMP,
    STOPPED,
    THERMAL_RAMP,
    Answer,
    ProtocolError,
)
from protocols.files import ProtocolFileError, load_protocol, parse_protocol
from protocols.pressure import (
    Battery,
    Conditioning,
    CpmProcedure,
    CpmSpec,
    HeatTest,
    PptProcedure,
    PptTest,
    SitePair,
    cpm_measures,
    side_differences,
)
from qst_station.deliver_pressure import PressureCapabilities
from sim.participant import ParticipantModel, SimulatedParticipant


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def stop(kpa: float, rate: float | None = 50.0) -> Answer:
    return Answer(STOPPED, kpa, extra={"unit": "kPa", "mean_rate_kpa_s": rate})


def run(procedure, answers) -> list:  # noqa: ANN001
    stimuli = []
    for answer in answers:
        stimuli.append(procedure.next_stimulus())
        procedure.record(answer)
    assert procedure.done and procedure.next_stimulus() is None
    return stimuli


# -- PPT per site ------------------------------------------------------------------------------

def test_ppt_is_the_mean_per_site_in_kpa_log10_with_rates() -> None:
    p = PptProcedure(PptTest(("lumbar", "thenar"), repetitions=3), rng())
    stimuli = run(p, [stop(300), stop(330), stop(360), stop(400), stop(420), stop(440)])
    assert [(s.site, s.repetition) for s in stimuli] == [
        ("lumbar", 1), ("lumbar", 2), ("lumbar", 3), ("thenar", 1), ("thenar", 2), ("thenar", 3)]
    assert all(s.kind == PRESSURE_RAMP and s.test == "PPT" for s in stimuli)
    assert stimuli[0].params == {"device": "algometer", "rate_kpa_s": 50.0, "limit_kpa": 1000.0,
                                 "tolerance": 0.2}
    assert stimuli[0].isi_s == 0.0 and all(8.0 <= s.isi_s <= 12.0 for s in stimuli[1:])
    lumbar, thenar = p.result()
    assert (lumbar.name, lumbar.site, lumbar.value, lumbar.unit, lumbar.transform) == (
        "PPT", "lumbar", 330.0, "kPa", "log10")
    assert lumbar.trials == (300.0, 330.0, 360.0) and lumbar.flags == ()
    assert thenar.value == pytest.approx(420.0)
    assert lumbar.extra["rates_kpa_s"] == [50.0, 50.0, 50.0]
    assert lumbar.extra["mean_rate_kpa_s"] == 50.0


def test_rate_off_by_more_than_20_percent_and_cutoff_are_flagged() -> None:
    p = PptProcedure(PptTest(("a",), repetitions=3), rng())
    # 59 kPa/s is 18 % fast (on target); 61 is 22 % fast; a cut-off counts as the limit
    run(p, [stop(300, 59.0), stop(320, 61.0), Answer(CUTOFF, 1000.0, extra={"unit": "kPa"})])
    (m,) = p.result()
    assert m.value == pytest.approx((300 + 320 + 1000) / 3)
    # and 1000 is more than twice the median 320: an outlier too
    assert m.flags == ("cutoff-reached", "rate-off-target", "outlier")
    assert m.extra["rates_kpa_s"] == [59.0, 61.0, None]
    assert m.extra["mean_rate_kpa_s"] == pytest.approx(60.0)


def test_rotating_order_and_incomplete_sites() -> None:
    p = PptProcedure(PptTest(("a", "b"), repetitions=2, order="rotating"), rng())
    assert [p.next_stimulus().site] == ["a"]
    p.record(stop(300))
    assert p.next_stimulus().site == "b"
    p.record(stop(400))
    assert p.next_stimulus().site == "a" and p.next_stimulus().repetition == 2
    a, b = p.result()
    assert a.flags == b.flags == ("incomplete",)


def test_ppt_record_refuses_wrong_answers() -> None:
    p = PptProcedure(PptTest(("a",), repetitions=1), rng())
    with pytest.raises(ProtocolError, match="answered with"):
        p.record(Answer(DONE))
    with pytest.raises(ProtocolError, match="value reached"):
        p.record(Answer(STOPPED, None))
    p.record(stop(300))
    with pytest.raises(ProtocolError, match="all ramps"):
        p.record(stop(300))


def test_cuff_ramps_are_not_rate_checked() -> None:
    spec = PptTest(("leg",), "cPDT", "cuff", 1, 1.0, 100.0, outlet=2, stop_vas_cm=1.0)
    p = PptProcedure(spec, rng())
    (s,) = run(p, [Answer(STOPPED, 28.0, extra={"unit": "kPa"})])
    assert s.params == {"device": "cuff", "rate_kpa_s": 1.0, "limit_kpa": 100.0,
                        "tolerance": 0.2, "outlet": 2, "stop_vas_cm": 1.0}
    (m,) = p.result()
    assert (m.name, m.value, m.transform, m.flags) == ("cPDT", 28.0, "none", ())


# -- side-to-side differences ------------------------------------------------------------------

def test_side_difference_is_site_minus_reference_in_kpa_and_percent() -> None:
    battery = Battery([PptProcedure(PptTest(("painful", "other"), repetitions=1), rng())],
                      [SitePair("lumbar", "painful", "other")])
    run(battery, [stop(300), stop(400)])
    measures = {m.name: m for m in battery.result()}
    diff, pct = measures["PPT-diff:lumbar"], measures["PPT-diff-pct:lumbar"]
    # painful side lower threshold = more sensitive: negative
    assert (diff.value, diff.unit) == (-100.0, "kPa")
    assert (pct.value, pct.unit) == (-25.0, "%")
    assert diff.trials == (300.0, 400.0) and diff.flags == ()
    assert diff.extra["site_a"] == "painful" and "negative = site more sensitive" in \
        diff.extra["sign"]


def test_large_side_difference_flagged_and_missing_site_skipped() -> None:
    ms = PptProcedure(PptTest(("L", "R"), repetitions=1), rng())
    run(ms, [stop(540), stop(400)])
    diff, pct = side_differences(ms.result(), SitePair("legs", "l", "r", flag_percent=30.0))
    assert diff.value == 140.0 and pct.value == pytest.approx(35.0)  # case-insensitive sites
    assert pct.flags == ("large-side-difference",)
    assert side_differences(ms.result(), SitePair("x", "L", "thenar")) == []


# -- CPM ---------------------------------------------------------------------------------------

def test_cpm_absolute_and_percent_with_sign() -> None:
    ms = {m.name: m for m in cpm_measures([300.0, 320.0, 340.0], [400.0, 380.0, 420.0], "kPa")}
    assert ms["CPM-baseline"].value == 320.0 and ms["CPM-conditioned"].value == 400.0
    assert (ms["CPM"].value, ms["CPM"].unit) == (80.0, "kPa")
    assert (ms["CPM-pct"].value, ms["CPM-pct"].unit) == (25.0, "%")
    assert "positive = the threshold rose" in ms["CPM"].extra["sign"]
    assert "inhibition" in ms["CPM"].extra["sign"]
    facilitation = {m.name: m.value for m in cpm_measures([400.0], [360.0], "kPa")}
    assert facilitation["CPM"] == -40.0 and facilitation["CPM-pct"] == -10.0


def ppt_cpm(mode: str, conditioning: Conditioning | None = None) -> CpmProcedure:
    spec = CpmSpec(PptTest(("tibialis",), repetitions=2), conditioning or Conditioning(),
                   mode, 2, "tibialis", (1.0, 2.0), lead_in_s=20.0, delay_s=10.0)
    return CpmProcedure(spec, rng())


def test_parallel_cpm_tests_during_the_cuff() -> None:
    p = ppt_cpm("parallel")
    stimuli = run(p, [stop(300), stop(340), Answer(DONE, 40.0), stop(380), stop(420),
                      Answer(DONE, None, extra={"ended_early": False})])
    kinds = [(s.kind, s.params.get("cpm_phase") or s.params.get("action")) for s in stimuli]
    assert kinds == [(PRESSURE_RAMP, "baseline"), (PRESSURE_RAMP, "baseline"),
                     (CUFF_PROGRAM, "start"), (PRESSURE_RAMP, "conditioned"),
                     (PRESSURE_RAMP, "conditioned"), (CUFF_PROGRAM, "stop")]
    assert stimuli[2].params["level_kpa"] == 40.0 and stimuli[2].params["hold_s"] == 0.0
    assert stimuli[3].isi_s == 20.0 and stimuli[5].isi_s == 0.0  # lead-in, stop at once
    ms = {m.name: m for m in p.result()}
    assert ms["CPM"].value == 80.0 and ms["CPM-pct"].value == 25.0
    assert ms["CPM"].site == "tibialis" and ms["CPM"].flags == ()
    assert ms["CPM"].extra["mode"] == "parallel" and ms["CPM"].extra["baseline_trials"] == [
        300.0, 340.0]
    assert ms["CPM"].extra["conditioning_level_kpa"] == 40.0


def test_sequential_cpm_conditions_first_and_flags() -> None:
    cold = Conditioning("cold-water", "hand", level_kpa=None, duration_s=60.0,
                        temperature_c=8.0)
    p = ppt_cpm("sequential", cold)
    stimuli = run(p, [stop(300, 70.0), stop(300), Answer(DONE), Answer(DONE), stop(270),
                      stop(270)])
    assert [s.kind for s in stimuli][2:4] == [CONFIRM, CONFIRM]
    start, end = stimuli[2], stimuli[3]
    assert start.params == {"action": "start", "conditioning": "cold-water",
                            "mode": "sequential", "hold_s": 60.0, "temperature_c": 8.0}
    assert "8 °C" in start.instruction and end.params["action"] == "stop"
    assert stimuli[4].isi_s == 10.0  # delay after the end of conditioning
    ms = {m.name: m for m in p.result()}
    assert ms["CPM"].value == -30.0 and ms["CPM-pct"].value == -10.0  # facilitation
    assert ms["CPM"].flags == ("rate-off-target",)


def test_parallel_cuff_that_ended_early_is_flagged() -> None:
    p = ppt_cpm("parallel")
    run(p, [stop(300), stop(300), Answer(DONE, 40.0), stop(330), stop(330),
            Answer(DONE, None, extra={"ended_early": True})])
    assert "conditioning-ended-early" in p.result()[0].flags


def test_cpm_with_heat_test_stimuli() -> None:
    spec = CpmSpec(HeatTest(), Conditioning("tonic-heat", level_kpa=None), "parallel", 1,
                   "forearm")
    p = CpmProcedure(spec, rng())
    first = p.next_stimulus()
    assert (first.test, first.kind, first.params["direction"], first.params["limit_c"]) == (
        "HPT", THERMAL_RAMP, "warm", 50.0)
    run(p, [Answer(STOPPED, 44.0), Answer(DONE), Answer(STOPPED, 45.0), Answer(DONE)])
    ms = {m.name: m for m in p.result()}
    assert (ms["CPM"].value, ms["CPM"].unit) == (1.0, "degC")
    assert ms["CPM-pct"].value == pytest.approx(100.0 / 44.0)
    p2 = CpmProcedure(spec, rng())
    p2.record(Answer(STOPPED, 44.0))
    with pytest.raises(ProtocolError, match="conditioning step"):
        p2.record(Answer(STOPPED, 44.0))


# -- protocol files ----------------------------------------------------------------------------

def test_builtin_files() -> None:
    ppt, cpm = load_protocol("ppt"), load_protocol("cpm")
    assert ppt.roles == ("algometer", "buttons")
    assert cpm.roles == ("algometer", "buttons", "cuff")
    assert ppt.steps() == ["PPT (4 sites)", "PPT-diff:lumbar", "PPT-diff-pct:lumbar"]
    first = ppt.procedure(rng()).next_stimulus()
    assert (first.site, first.params["rate_kpa_s"], first.params["limit_kpa"]) == (
        "lumbar painful side", 50.0, 1000.0)
    assert ppt.procedure(rng(), site="thenar").next_stimulus().site == "thenar"
    first = cpm.procedure(rng()).next_stimulus()
    assert (first.site, first.params["cpm_phase"]) == ("tibialis anterior", "baseline")


HEAD = '[protocol]\nname = "x"\ntitle = "x"\nkind = "{kind}"\n'


@pytest.mark.parametrize(("kind", "body", "message"), [
    ("pressure-ppt", '[[tests]]\nsites = ["a", "b"]\n[[pairs]]\nname = "p"\nsite = "a"\n'
                     'reference = "c"\n', "'c' is not a site of a PPT test"),
    ("pressure-ppt", '[[tests]]\nsites = ["a"]\nstop_vas_cm = 1.0\n',
     r"f.toml:5: tests\[1\]: stop_vas_cm: only for cPDT"),
    ("pressure-ppt", '[[tests]]\nsites = ["a", "A "]\n', "a site is listed twice"),
    ("cpm", '[[tests]]\nlevel_kpa = 40\nrate_c_s = 2.0\n', "rate_c_s: only for HPT"),
    ("cpm", '[[tests]]\n', "needs one of level_kpa or level_vas_cm"),
    ("cpm", '[[tests]]\nconditioning = "cold-water"\nlevel_kpa = 40\n',
     "level_kpa: only for cuff conditioning"),
    ("cpm", '[[tests]]\nlevel_kpa = 40\nduration_s = 10\n', "longer than lead_in_s"),
])
def test_file_errors_are_one_line(kind: str, body: str, message: str) -> None:
    with pytest.raises(ProtocolFileError, match=message) as error:
        parse_protocol(HEAD.format(kind=kind) + body, "f.toml")
    assert "\n" not in str(error.value)


def test_cpm_file_roles_follow_stimulus_and_conditioning() -> None:
    text = HEAD.format(kind="cpm") + ('[[tests]]\ntest_stimulus = "HPT"\n'
                                      'conditioning = "cold-water"\n')
    assert parse_protocol(text).roles == ("thermode", "buttons", "operator")


def test_check_devices_refuses_beyond_the_devices() -> None:
    caps = {"algometer": PressureCapabilities("gauge", 500.0),
            "cuff": PressureCapabilities("cuff", 100.0, (1, 2), 100.0)}
    with pytest.raises(CapabilityError, match=r"ppt step 1 \(PPT\) needs: 1000 kPa"):
        load_protocol("ppt").check_devices(caps)
    caps["algometer"] = PressureCapabilities("gauge", 5000.0)
    load_protocol("ppt").check_devices(caps)
    load_protocol("cpm").check_devices(caps)
    caps["cuff"] = PressureCapabilities("cuff", 60.0, (1, 2), 100.0)
    with pytest.raises(CapabilityError, match="conditioning needs: 80 kPa"):
        load_protocol("cpm").check_devices(caps)


# -- the simulated participant ----------------------------------------------------------------

def test_participant_ppt_per_site_and_conditioning() -> None:
    model = ParticipantModel.model_validate({
        "thresholds": {"PPT": 350.0, "HPT": 45.0}, "noise": {"PPT": 0.0, "HPT": 0.0},
        "ppt_sites": {"Lumbar painful side": 250.0},
        "cpm": {"effect_percent": 20.0, "effect_heat_c": 1.5}})
    p = SimulatedParticipant(0, model)
    assert p.ppt("lumbar painful side ") == 250.0 and p.ppt("thenar") == 350.0
    p.conditioned = True
    assert p.ppt("lumbar painful side") == pytest.approx(300.0)
    assert p.threshold("HPT") == pytest.approx(46.5)
    assert p.threshold("PPT") == pytest.approx(420.0)
    assert "ppt_sites" in p.truth() and p.truth()["cpm"]["effect_percent"] == 20.0
