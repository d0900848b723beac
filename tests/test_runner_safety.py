"""The second reader's findings on the runner and deliveries, each as a test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from drivers.interfaces import CapabilityError
from drivers.responses import Response
from protocols.base import CUTOFF, STOPPED, THERMAL_RAMP, Stimulus
from protocols.files import parse_protocol
from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.deliver_thermal import ThermalDelivery
from qst_station.recording import Recording, SessionInfo
from qst_station.runner import ProtocolRunner, RunContext
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel


def exact(**thresholds: float) -> ParticipantModel:
    return ParticipantModel.model_validate({
        "participant": {"reaction_time_s": 0.4, "reaction_time_sd_s": 0.0},
        "thresholds": thresholds, "noise": {k: 0.0 for k in thresholds}})


def ramps(test: str, **fields: float) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in fields.items())
    return f"""
[protocol]
name = "safety"
title = "t"
kind = "thermal-limits"

[[tests]]
test = "{test}"
repetitions = 1
{extra}"""


def test_the_protocols_baseline_reaches_the_thermode(tmp_path: Path) -> None:
    (wdt,) = run_simulated(parse_protocol(ramps("WDT", baseline_c=35.0)), SimulatedClock(5.0),
                           tmp_path / "s.h5", exact(WDT=1.0), progress=lambda line: None)
    # warmth felt 1.0 °C above the 35 °C baseline, pressed 0.4 s later at 1 °C/s
    assert wdt.value == pytest.approx(1.4, abs=0.15)


def test_a_press_after_the_cut_off_is_the_cut_off(tmp_path: Path) -> None:
    text = ramps("HPT", return_rate_c_s=5.0)
    (hpt,) = run_simulated(parse_protocol(text), SimulatedClock(20.0), tmp_path / "s.h5",
                           exact(HPT=49.9), progress=lambda line: None)
    assert (hpt.value, hpt.flags) == (50.0, ("cutoff-reached",))


class FakeThermode:
    """Answers like a thermode; a press arrives (stamped early) while ``start`` runs."""

    baseline, busy = 32.0, False

    def __init__(self, clock: SimulatedClock, press: object) -> None:
        self.clock, self.press, self.aborted = clock, press, 0
        self._samples = []

    def subscribe(self, callback: object) -> None:
        self._samples.append(callback)

    def prepare_ramp_and_hold(self, *args: float) -> None: ...

    def start(self) -> None:
        self.press(Response(self.clock.now() - 0.5, "buttons", "press", 1.0))  # too early

    def abort(self) -> None:
        self.aborted += 1


class FakeButtons:
    def subscribe(self, callback: object) -> None:
        self.callback = callback


def test_a_press_from_before_the_ramp_is_not_its_answer() -> None:
    clock = SimulatedClock(50.0)
    buttons = FakeButtons()
    thermode = FakeThermode(clock, lambda r: buttons.callback(r))
    delivery = ThermalDelivery(thermode, buttons)
    recording = Recording(clock)
    recording.start(SessionInfo("P1", "v1"))
    stimulus = Stimulus("HPT", THERMAL_RAMP, {"baseline_c": 32.0, "limit_c": 33.0,
                                              "rate_c_s": 10.0, "return_rate_c_s": 10.0,
                                              "direction": "warm"})
    answer = delivery.deliver(stimulus, 1, RunContext(recording))
    assert answer.kind == CUTOFF  # the early press was skipped; nobody pressed during the ramp
    assert answer.kind != STOPPED


def test_the_dose_of_every_pulse_is_checked_before_the_run(tmp_path: Path) -> None:
    text = """
[protocol]
name = "long-cal"
title = "t"
kind = "heat-calibration"

[calibration]
temperatures_c = [44.0, 46.0, 49.0]

[pulse]
hold_s = 30.0
"""
    with pytest.raises(CapabilityError, match=r"long-cal \(calibration pulse\) at 49 °C needs: "
                                              r"zone 1: .* of the dose envelope"):
        run_simulated(parse_protocol(text), SimulatedClock(20.0), tmp_path / "s.h5",
                      progress=lambda line: None)
    path = tmp_path / "long.toml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["run", str(path), "--simulate", "--out", str(tmp_path)])
    assert result.exit_code == 1 and result.output.count("\n") == 2  # title line + the error
    assert "dose envelope" in result.output.splitlines()[-1]


def test_stop_makes_every_device_safe_even_if_one_fails() -> None:
    class Broken:
        kinds = ("a",)

        def abort(self) -> None:
            raise OSError("port gone")

    class Cuff:
        kinds = ("b",)
        stopped = False

        def abort(self) -> None:
            self.stopped = True

    cuff = Cuff()
    runner = ProtocolRunner(None, Recording(SimulatedClock()), [Broken(), cuff])  # type: ignore[arg-type]
    with pytest.raises(OSError, match="port gone"):
        runner.stop()
    assert cuff.stopped and runner.context.stopped.is_set()


def test_nonsense_protocol_values_are_refused_by_the_schema() -> None:
    from protocols.files import ProtocolFileError

    bad_cal = """
[protocol]
name = "c"
title = "t"
kind = "heat-calibration"

[calibration]
temperatures_c = [44.0, nan, 46.0]
"""
    with pytest.raises(ProtocolFileError, match="calibration.temperatures_c.1"):
        parse_protocol(bad_cal)
    with pytest.raises(ProtocolFileError, match="isi_s must be"):
        parse_protocol(bad_cal.replace("nan", "45.0") + "[pulse]\nisi_s = [-5.0, -10.0]\n")
    adaptive = """
[protocol]
name = "a"
title = "t"
kind = "thermal-adaptive"

[procedure]
name = "WDT-stair"
method = "staircase"
judge = "WDT"
lower = -10.0
upper = 5.0
"""
    with pytest.raises(ProtocolFileError, match=r"WDT levels must lie in 0-25"):
        parse_protocol(adaptive)


def test_a_run_that_fails_is_stored_as_failed(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from qst_station import session
    from qst_station.deliver_thermal import ThermalDelivery as Delivery

    def broken(self, stimulus, trial, run):  # noqa: ANN001, ANN202
        raise RuntimeError("probe unplugged")

    monkeypatch.setattr(Delivery, "deliver", broken)
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError, match="probe unplugged"):
        run_simulated(parse_protocol(ramps("HPT")), SimulatedClock(20.0), path,
                      progress=lambda line: None)
    part = session.open(path).parts[0]
    assert (part.status, part.reason) == ("failed", "RuntimeError: probe unplugged")


class _Waiting:
    """A delivery that waits in a stimulus until something ends the run."""

    kinds = (THERMAL_RAMP,)

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.aborted = error, 0

    def abort(self) -> None:
        self.aborted += 1

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> object:
        if self.error is not None:
            raise self.error
        run.wait(30.0)
        raise AssertionError("the stop did not end the wait")


class _Other:
    kinds = ("cuff-program",)

    def __init__(self) -> None:
        self.aborted = 0

    def abort(self) -> None:
        self.aborted += 1


def _runner(delivery: object, other: _Other) -> tuple[ProtocolRunner, Recording]:
    from protocols.thermal import RampProcedure, RampTest

    recording = Recording(SimulatedClock(10.0))
    recording.start(SessionInfo("P1", "v1"))
    procedure = RampProcedure(RampTest("HPT", repetitions=1), np.random.default_rng(0))
    return ProtocolRunner(procedure, recording, [delivery, other]), recording


def test_a_stop_during_a_stimulus_makes_every_device_safe() -> None:
    import threading

    from qst_station.runner import RunAborted

    waiting, other = _Waiting(), _Other()
    runner, recording = _runner(waiting, other)
    threading.Timer(0.05, runner.stop).start()
    with pytest.raises(RunAborted):
        runner.run()
    assert waiting.aborted >= 1 and other.aborted >= 1
    assert recording.state == "recording"  # the caller records the exit status


def test_a_device_error_during_a_stimulus_makes_every_device_safe() -> None:
    failing, other = _Waiting(OSError("port gone")), _Other()
    runner, _ = _runner(failing, other)
    with pytest.raises(OSError, match="port gone"):
        runner.run()
    assert failing.aborted == 1 and other.aborted == 1
