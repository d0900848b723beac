"""Scanner-locked runs end to end: simulated scanner, TCS II, ECG on LSL and participant."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from protocols.files import parse_protocol
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.deliver_scanner import ScannerLockedDelivery
from qst_station.export_bids import export_bids
from qst_station.simulated_run import run_simulated

SPEED = 4.0
LOCKED_S = 0.02  # onset within 20 ms of clock time of its trigger (5 ms of real time at 4x)
PARADIGM = """
[protocol]
name = "fmri-test"
title = "two heat trials"
kind = "fmri-run"
device = "thermode"
site = "forearm"

[scanner]
tr_s = 0.5
dummy_volumes = 2
volumes = 24

[stimulus]
plateau_s = 1.0
rating_delay_s = 0.2
rating_timeout_s = {timeout}
cue_s = 0.3

[levels]
VAS50 = 46.0

[[trials]]
onset_volume = 2
level = "VAS50"

[[trials]]
onset_s = 8.25
target_c = 45.0
"""


def paradigm(timeout: float = 2.5):  # noqa: ANN201
    return parse_protocol(PARADIGM.replace("{timeout}", str(timeout)), "fmri-test.toml")


def run(tmp_path: Path, name: str, **kw: object) -> tuple[Path, list]:
    path = tmp_path / name
    protocol = kw.pop("protocol", None) or paradigm()
    options = kw.pop("options", {"scanner": {}})
    options["scanner"].setdefault("start_delay_s", 1.0)  # type: ignore[index]
    options.setdefault("ecg", False)  # type: ignore[union-attr]  # the clean run has one
    measures = run_simulated(protocol, SimulatedClock(SPEED), path, seed=3,
                             progress=lambda line: None, options=options,  # type: ignore[arg-type]
                             **kw)  # type: ignore[arg-type]
    return path, measures


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    return run(tmp_path_factory.mktemp("scan"), "clean.h5",
               options={"scanner": {}, "ecg": True})


def trigger_times(s: session.Session) -> dict[int, float]:
    return {e.payload["volume"]: e.timestamp for e in s.events_of("trigger")}


def test_each_stimulus_starts_on_its_scheduled_volume(clean) -> None:  # noqa: ANN001
    path, measures = clean
    s = session.open(path)
    onsets = s.events_of("stimulus_onset")
    triggers = trigger_times(s)
    # trial 1 on volume 5 (2 dummies + 2 volumes); trial 2 8.25 s = volume 19 + 0.25 s
    assert [(e.payload["volume"], e.payload["delay_s"]) for e in onsets] == [(5, 0.0), (19, 0.25)]
    for onset in onsets:
        scheduled = triggers[onset.payload["volume"]] + onset.payload["delay_s"]
        assert 0.0 <= onset.timestamp - scheduled < LOCKED_S
        assert onset.payload["inferred_volume"] is False
    error = next(m for m in measures if m.name == "ONSET-ERROR")
    assert error.value < 1000 * LOCKED_S and len(error.trials) == 2
    assert s.status == "success" and len(triggers) == 26


def test_ratings_follow_each_prompt_and_the_cue_comes_first(clean) -> None:  # noqa: ANN001
    path, measures = clean
    s = session.open(path)
    prompts = s.events_of("rating_prompt")
    ratings = s.events_of("rating")
    assert [p.payload["trial"] for p in prompts] == [1, 2]
    assert [r.payload["stimulus"] for r in ratings] == [1, 2]
    assert all(r.timestamp >= p.timestamp for p, r in zip(prompts, ratings, strict=True))
    cues = s.events_of("cue")
    onsets = s.events_of("stimulus_onset")
    assert [round(o.timestamp - c.timestamp, 1) for c, o in zip(cues, onsets, strict=True)] == \
        [0.3, 0.3]
    names = {m.name for m in measures}
    assert {"RATING-VAS50", "RATING-45C", "ONSET-ERROR"} <= names
    assert s.results()["RATING-VAS50"]["value"] == ratings[0].payload["value"]


def test_bids_onsets_match_the_scheduled_volumes(clean, tmp_path: Path) -> None:  # noqa: ANN001
    path, _ = clean
    export_bids(session.open(path), tmp_path / "bids", subject="01", session_label="1",
                task="heat")
    (events,) = (tmp_path / "bids").rglob("*_events.tsv")
    rows = list(csv.DictReader(events.open(), delimiter="\t"))
    heat = [r for r in rows if r["trial_type"] == "heat"]
    # the scheduled onsets from the first stored volume: 2 volumes x 0.5 s, and 8.25 s
    # (the simulated scanner's 1 ms tick moves its triggers by up to 1 ms)
    assert [float(r["onset"]) for r in heat] == [pytest.approx(1.0, abs=LOCKED_S + 0.002),
                                                  pytest.approx(8.25, abs=LOCKED_S + 0.002)]
    assert [r["level"] for r in heat] == ["VAS50", "45C"]
    assert [r["volume"] for r in heat] == ["5", "19"]
    assert {"cue", "rating_prompt", "rating"} <= {r["trial_type"] for r in rows}
    physio = {p.name for p in (tmp_path / "bids").rglob("*_physio.tsv.gz")}
    assert any("cardiac" in name for name in physio)  # the ECG recorded over LSL


def test_a_missed_trigger_on_a_scheduled_volume_starts_the_stimulus_when_due(
        tmp_path: Path) -> None:
    path, measures = run(tmp_path, "drop.h5", options={"scanner": {"drop": {5}}})
    s = session.open(path)
    first = s.events_of("stimulus_onset")[0]
    assert first.payload["inferred_volume"] is True and first.payload["volume"] == 5
    # volume 4's trigger + one TR, plus the grace (a quarter TR, at most 50 ms)
    due = trigger_times(s)[4] + 0.5
    assert 0.05 <= first.timestamp - due < 0.05 + LOCKED_S
    assert trigger_times(s)[5] == pytest.approx(due, abs=0.003)  # filled in afterwards
    error = next(m for m in measures if m.name == "ONSET-ERROR")
    assert error.flags == ("started-on-missed-trigger",)
    assert any("missed" in e.payload.get("message", "") for e in s.events_of("device"))


def test_two_missing_triggers_skip_the_stimulus_and_the_run_goes_on(tmp_path: Path) -> None:
    path, _ = run(tmp_path, "drop2.h5", options={"scanner": {"drop": {4, 5}}})
    s = session.open(path)
    assert [e.payload["trial"] for e in s.events_of("stimulus_onset")] == [2]
    notes = [e.payload["message"] for e in s.events_of("note")]
    assert any("no trigger for volume 5 (2 volume(s) missing)" in n for n in notes)
    assert s.trials()[0]["value"] is None and s.status == "success"


def test_a_rating_not_given_in_time_is_a_timeout(tmp_path: Path) -> None:
    path, measures = run(tmp_path, "late.h5", protocol=paradigm(timeout=0.1))
    s = session.open(path)
    assert [e.payload["trial"] for e in s.events_of("rating_timeout")] == [1, 2]
    assert s.events_of("rating") == []
    assert [m.name for m in measures] == ["ONSET-ERROR"]


def test_the_thermodes_own_trigger_input_can_start_the_stimuli(tmp_path: Path) -> None:
    text = PARADIGM.replace("{timeout}", "2.5").replace("volumes = 24",
                                                        'volumes = 24\nstart = "device-trigger"')
    text = text.replace("onset_s = 8.25", "onset_s = 8.5")  # on a volume: the TTL starts it
    path, _ = run(tmp_path, "ttl.h5", protocol=parse_protocol(text, "ttl.toml"))
    s = session.open(path)
    onsets = s.events_of("stimulus_onset")
    assert [e.payload["started_by"] for e in onsets] == ["device-trigger"] * 2
    thermode = s.streams["thermode"]
    triggers = trigger_times(s)
    for onset in onsets:  # the probe heats right after its own trigger, not an earlier one
        later = (thermode.time > onset.timestamp + 0.3) & (thermode.time < onset.timestamp + 0.6)
        assert thermode.values[later, 1:].mean() > 33.0
        before = ((thermode.time > triggers[onset.payload["volume"] - 3])
                  & (thermode.time < onset.timestamp))
        assert thermode.values[before, 1:].max() < 32.5


def test_the_scanner_view_sees_the_next_stimulus_coming(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = ScannerLockedDelivery._await_start

    def watch(self, job, follower, p, run_context):  # noqa: ANN001, ANN202
        import threading

        def look() -> None:
            while not job.done.is_set():
                seen.append(self.status())
                run_context.clock.sleep(0.05)

        threading.Thread(target=look, daemon=True).start()
        return original(self, job, follower, p, run_context)

    monkeypatch.setattr(ScannerLockedDelivery, "_await_start", watch)
    path, _ = run(tmp_path, "status.h5")
    armed = [s for s in seen if s.next_trial == 2 and s.next_due is not None]
    assert armed and {s.next_volume for s in armed} == {19}
    triggers = trigger_times(session.open(path))
    assert all(s.next_due == pytest.approx(triggers[19] + 0.25, abs=0.01) for s in armed[-3:])
    assert all(s.last_volume <= 19 and s.tr_s == 0.5 for s in armed)  # 19: in its delay


def test_a_stop_during_a_stimulus_aborts_the_thermode_and_keeps_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qst_station.protocol_session import ProtocolSession

    original = ScannerLockedDelivery._after_onset

    def stop_in_plateau(self, job, stimulus, run_context):  # noqa: ANN001, ANN202
        run_context.stopped.set()  # the operator presses STOP during the first stimulus
        return original(self, job, stimulus, run_context)

    monkeypatch.setattr(ScannerLockedDelivery, "_after_onset", stop_in_plateau)
    path = tmp_path / "stop.h5"
    run_session = ProtocolSession(paradigm(), SimulatedClock(SPEED), path, seed=3,
                                  progress=lambda line: None,
                                  options={"scanner": {"start_delay_s": 1.0}})
    assert run_session.run() == []
    s = session.open(path)
    assert s.status == "aborted" and "stopped by the operator" in s.parts[0].reason
    (onset,) = s.events_of("stimulus_onset")
    assert s.events_of("stimulus_offset") == []
    log = run_session.station.drivers["thermode-sim"].device.log
    names = [c.name for c in log]
    assert "abort" in names[names.index("start"):]  # aborted after the start
    thermode = s.streams["thermode"]
    after = thermode.values[thermode.time > onset.timestamp, 1:]
    # aborted at once: the probe never got near the 46 °C it was heading for
    assert after.size == 0 or after.max() < 40.0


def test_a_pressure_block_run_on_the_cuff(tmp_path: Path) -> None:
    text = """
[protocol]
name = "fmri-press"
title = "two cuff blocks"
kind = "fmri-run"
device = "cuff"

[scanner]
tr_s = 0.5
dummy_volumes = 2
volumes = 46

[stimulus]
plateau_s = 4.0
rating_delay_s = 0.3
rating_timeout_s = 3.0

[levels]
strong = 40.0

[[trials]]
onset_volume = 2
pressure_kpa = 20.0

[[trials]]
onset_volume = 26
level = "strong"
"""
    path, measures = run(tmp_path, "press.h5", protocol=parse_protocol(text, "press.toml"))
    s = session.open(path)
    onsets = s.events_of("stimulus_onset")
    triggers = trigger_times(s)
    assert [(e.payload["volume"], e.payload["modality"]) for e in onsets] == [
        (5, "pressure"), (29, "pressure")]
    for onset in onsets:  # the cuff's start waits for its reply: a few ms more
        assert 0.0 <= onset.timestamp - triggers[onset.payload["volume"]] < 2 * LOCKED_S
    cuff = s.streams["cuff"]
    during = (cuff.time > onsets[1].timestamp + 4.0) & (cuff.time < onsets[1].timestamp + 6.0)
    assert cuff.values[during, 0].mean() == pytest.approx(40.0, abs=3.0)  # outlet 1 held
    ratings = {m.name: m.value for m in measures}
    assert ratings["RATING-strong"] > ratings["RATING-20kPa"]  # the participant's pain model


def test_triggers_can_come_as_lsl_markers(tmp_path: Path) -> None:
    path, measures = run(tmp_path, "lsl.h5", options={"scanner": {}, "triggers": "lsl"})
    s = session.open(path)
    onsets = s.events_of("stimulus_onset")
    triggers = trigger_times(s)
    assert [e.payload["volume"] for e in onsets] == [5, 19] and len(triggers) == 26
    for onset in onsets:  # LSL delivers the marker a little later than the pty
        scheduled = triggers[onset.payload["volume"]] + onset.payload["delay_s"]
        assert 0.0 <= onset.timestamp - scheduled < 2 * LOCKED_S


def test_the_cli_runs_a_paradigm_file_and_names_bad_calibrations(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from qst_station.cli import main

    paradigm_file = tmp_path / "short.toml"
    paradigm_file.write_text(PARADIGM.replace("{timeout}", "2.5"))
    result = CliRunner().invoke(main, ["run", str(paradigm_file), "--simulate", "--speed", "4",
                                       "--out", str(tmp_path / "out"), "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "RATING-VAS50" in result.output and "ONSET-ERROR" in result.output
    assert "next: qst-station export" in result.output and "--task test" in result.output
    missing = CliRunner().invoke(main, ["run", "fmri-heat", "--simulate", "--calibration",
                                        str(tmp_path / "none.h5")])
    assert missing.exit_code == 1 and "none.h5" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    wrong = CliRunner().invoke(main, ["run", "ppt", "--simulate", "--calibration",
                                      str(tmp_path / "none.h5")])
    assert wrong.exit_code == 2 and "--calibration is for scanner runs" in wrong.output


class _Device:
    """Records which thread started it; ``busy``: try_start finds the wire in use."""

    def __init__(self, busy: bool) -> None:
        self.busy_wire, self.started_on, self.generation = busy, [], 0

    def try_start(self, generation: int) -> bool:
        if self.busy_wire:
            return False
        self.started_on.append(("try", __import__("threading").current_thread().name))
        return True

    def start(self, generation: int) -> None:
        self.started_on.append(("start", __import__("threading").current_thread().name))


@pytest.mark.parametrize("busy", [False, True])
def test_the_start_goes_out_from_the_trigger_thread_unless_it_would_wait(busy: bool) -> None:
    import threading

    from drivers.volumes import Volume
    from qst_station.deliver_scanner import VolumeFollower, _Armed
    from qst_station.recording import Recording
    from qst_station.runner import RunContext

    class Triggers:
        def subscribe(self, callback):  # noqa: ANN001, ANN202
            self.callback = callback
            return lambda: None

    clock, triggers, device = SimulatedClock(1.0), Triggers(), _Device(busy)
    follower = VolumeFollower(triggers, clock, tr_s=1.0)
    delivery = ScannerLockedDelivery.__new__(ScannerLockedDelivery)
    delivery.thermode, delivery.cuff = device, None
    start, try_start = delivery._start_for(RunContext(Recording(clock)))
    job = _Armed(3, 0.0, start, trial=1, try_start=try_start)
    follower.arm(job)
    reader = threading.Thread(target=lambda: [triggers.callback(Volume(i, clock.now()))
                                              for i in (1, 2, 3)], name="trigger-reader")
    reader.start()
    reader.join()
    assert job.done.wait(5.0) and job.error is None and job.onset is not None
    expected = ("start", "volume-starter") if busy else ("try", "trigger-reader")
    assert device.started_on == [expected]
    follower.close()


def test_a_missed_trigger_in_device_trigger_mode_gives_no_stimulus_at_all(
        tmp_path: Path) -> None:
    """Armed for volume 5, whose pulse is lost: the input is disarmed, so volume 6's pulse
    cannot start the stimulus late."""
    text = PARADIGM.replace("{timeout}", "2.5").replace("volumes = 24",
                                                        'volumes = 24\nstart = "device-trigger"')
    text = text.replace("onset_s = 8.25", "onset_s = 8.5")
    path, _ = run(tmp_path, "ttl-drop.h5", protocol=parse_protocol(text, "ttl.toml"),
                  options={"scanner": {"drop": {5}}})
    s = session.open(path)
    assert [e.payload["trial"] for e in s.events_of("stimulus_onset")] == [2]
    assert any("no trigger for volume 5" in e.payload["message"] for e in s.events_of("note"))
    thermode = s.streams["thermode"]
    first_trial = (thermode.time > trigger_times(s)[5]) & (thermode.time < trigger_times(s)[12])
    assert thermode.values[first_trial, 1:].max() < 33.0  # never heated
