"""Scanner-run paradigms: files, the schedule on volumes, the state machine (pure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.interfaces import CapabilityError, ThermalCapabilities
from protocols.base import DONE, RATING, SCANNER_LOCKED, Answer, ProtocolError
from protocols.files import ProtocolFileError, builtin_names, load_protocol, parse_protocol
from protocols.paradigm import ParadigmRun, Scanner, TrialPlan, schedule

HEAD = """
[protocol]
name = "run1"
title = "t"
kind = "fmri-run"
device = "thermode"

[scanner]
tr_s = 2.0
dummy_volumes = 4
volumes = 60

[stimulus]
plateau_s = 3.0
"""


def plan(onset_s: float, **kw: object) -> TrialPlan:
    values = {"modality": "heat", "level": "VAS50", "target": 46.0, "baseline": 32.0,
              "rise": 10.0, "ret": 10.0, "plateau_s": 3.0, **kw}
    return TrialPlan(onset_s=onset_s, **values)  # type: ignore[arg-type]


def test_onsets_become_a_volume_and_a_delay_after_its_trigger() -> None:
    scanner = Scanner(tr_s=2.0, dummy_volumes=4, volumes=60)
    trials = schedule(scanner, [plan(30.0), plan(0.0), plan(61.3)], np.random.default_rng(0))
    # time zero = volume 5 (the first after 4 dummies); 30 s = 15 TRs later = volume 20
    assert [(t.number, t.volume) for t in trials] == [(1, 5), (2, 20), (3, 35)]
    assert [t.delay_s for t in trials] == [0.0, 0.0, pytest.approx(1.3)]


def test_jitter_is_seeded_and_only_later() -> None:
    scanner = Scanner(tr_s=2.0, dummy_volumes=0, volumes=100)
    onsets = [0.0, 20.0, 40.0]
    a = schedule(scanner, [plan(t) for t in onsets], np.random.default_rng(7), jitter_s=3.0)
    b = schedule(scanner, [plan(t) for t in onsets], np.random.default_rng(7), jitter_s=3.0)
    assert [t.onset_s for t in a] == [t.onset_s for t in b]
    assert all(0.0 <= t.onset_s - o <= 3.0 for t, o in zip(a, onsets, strict=True))
    assert any(t.delay_s > 0 for t in a)


def test_overlapping_or_late_trials_are_refused_before_the_run() -> None:
    scanner = Scanner(tr_s=2.0, dummy_volumes=0, volumes=20)
    with pytest.raises(ProtocolError, match=r"trial 2 at 10 s starts before trial 1"):
        schedule(scanner, [plan(0.0), plan(10.0)], np.random.default_rng(0))
    with pytest.raises(ProtocolError, match=r"trial 1 ends at 41.4 s, after the last volume"):
        schedule(scanner, [plan(37.0)], np.random.default_rng(0))


def test_the_state_machine_gives_each_trial_then_waits_for_the_last_volume() -> None:
    scanner = Scanner(tr_s=2.0, dummy_volumes=2, volumes=40)
    trials = schedule(scanner, [plan(4.0), plan(30.0, level="VAS70", target=47.0)],
                      np.random.default_rng(0))
    run = ParadigmRun(scanner, trials, site="forearm")
    first = run.next_stimulus()
    assert first is not None and first.kind == SCANNER_LOCKED
    assert (first.params["volume"], first.params["target"], first.params["action"]) == \
        (5, 46.0, "stimulus")
    assert run.next_stimulus() == first  # asking twice gives the same stimulus
    run.record(Answer(RATING, 40.0, extra={"onset_error_s": 0.0004}))
    run.record(Answer(RATING, None, extra={"onset_error_s": -0.0002, "missing": True}))
    end = run.next_stimulus()
    assert end is not None and (end.params["action"], end.params["volume"]) == ("end", 42)
    with pytest.raises(ProtocolError, match="takes 'done'"):
        run.record(Answer(RATING, 1.0))
    run.record(Answer(DONE))
    assert run.done and run.next_stimulus() is None
    results = {m.name: m for m in run.result()}
    assert results["RATING-VAS50"].value == 40.0
    assert "RATING-VAS70" not in results  # its only rating is missing
    assert results["ONSET-ERROR"].value == pytest.approx(0.4)
    assert results["ONSET-ERROR"].unit == "ms"


def test_builtin_paradigms_parse_and_resolve_calibrated_levels() -> None:
    assert {"fmri-heat", "fmri-pressure"} <= set(builtin_names())
    heat = load_protocol("fmri-heat")
    assert heat.roles == ("thermode", "rating", "scanner")
    with pytest.raises(ProtocolError, match=r"asks for VAS50, which has no temperature"):
        heat.procedure(np.random.default_rng(0))
    run = heat.with_calibration({"T30": 45.0, "T50": 46.0, "T70": 47.5}).procedure(
        np.random.default_rng(0))
    assert len(run.trials) == 9 and run.trials[0].volume == 7  # 6 s after 3 dummies, TR 2
    assert {t.plan.level: t.plan.target for t in run.trials} == {
        "VAS30": 45.0, "VAS50": 46.0, "VAS70": 47.5}
    pressure = load_protocol("fmri-pressure").procedure(np.random.default_rng(0))
    assert [(t.volume, t.plan.target, t.plan.modality) for t in pressure.trials][:2] == [
        (9, 25.0, "pressure"), (39, 35.0, "pressure")]


def test_device_limits_are_checked_per_trial() -> None:
    heat = load_protocol("fmri-heat").with_calibration({"T30": 49.0, "T50": 50.0, "T70": 51.0})
    small = ThermalCapabilities("probe", 5, 0.0, 50.0, 300, 300)
    with pytest.raises(CapabilityError, match=r"fmri-heat trial 2 \(VAS70\)"):
        heat.check_devices({"thermode": small})


@pytest.mark.parametrize(("extra", "message"), [
    ("[[trials]]\nlevel = 'VAS50'\n", r"run1.toml:1\d: trials\[1\]: give exactly one of onset_s"),
    ("[[trials]]\nonset_s = 2.0\n", r"give exactly one of level, target_c and pressure_kpa"),
    ("[[trials]]\nonset_s = 2.0\npressure_kpa = 30.0\n", r"pressure_kpa on a thermode run"),
    ("[[trials]]\nonset_s = 2.0\nlevel = 'warm'\n", r"neither VASnn nor in \[levels\]"),
    ("", r"needs at least one trial"),
])
def test_bad_paradigm_files_get_one_line_errors(extra: str, message: str) -> None:
    with pytest.raises(ProtocolFileError, match=message) as caught:
        parse_protocol(HEAD + extra, "run1.toml")
    assert "\n" not in str(caught.value)


def test_trials_from_a_tsv_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "run1.tsv").write_text("onset_s\tlevel\tplateau_s\n10\tVAS50\t\n40.5\tVAS70\t5\n")
    path = tmp_path / "run1.toml"
    path.write_text('trials_file = "run1.tsv"\n' + HEAD)
    paradigm = load_protocol(path)
    assert [(t.onset_s, t.level, t.plateau_s) for t in paradigm.trials] == [
        (10.0, "VAS50", None), (40.5, "VAS70", 5.0)]
    (tmp_path / "run1.tsv").write_text("onset_s\tlevel\n10\tVAS50\n-3\tVAS70\n")
    with pytest.raises(ProtocolFileError, match=r"run1.tsv:3: onset_s: Input should be greater"):
        load_protocol(path)
    path.write_text('trials_file = "missing.tsv"\n' + HEAD)
    with pytest.raises(ProtocolFileError, match=r"missing.tsv: cannot read the trials file"):
        load_protocol(path)
