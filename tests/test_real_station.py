"""Protocol runs on configured devices (``options["station"] = "real"``), with a person.

The "lab" is simulators started here on ptys, named in a station configuration exactly as
real ports would be; the "person" is scripted: the simulated participant pressing the
simulated button box, a fake rating screen, an examiner answering at the "console".
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.interfaces import CapabilityError
from drivers.responses import Response
from protocols.base import DONE, PRESSURE_RAMP, SCANNER_LOCKED, THERMAL_PULSE, YES, Stimulus
from protocols.files import load_protocol, parse_protocol
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.config import StationConfig, parse_config
from qst_station.examiner_answers import ExaminerAnswers
from qst_station.protocol_session import ProtocolSession
from qst_station.real_station import StationError
from qst_station.recording import Event, Subscriber
from sim.algometer import SimulatedAlgometer
from sim.button_box import SimulatedButtonBox
from sim.cuff import SimulatedCuff
from sim.participant import SimulatedParticipant
from sim.perceiver import ThermalPerceiver
from sim.scanner import SimulatedScanner
from sim.tcs import SimulatedTcs
from tests.test_scanner_run import PARADIGM
from tests.test_simulated_run import RT, SHORT, exact_participant

SPEED = 5.0
PERSON = {"participant": "P017", "operator": "tester"}
PRESSURE = """
[protocol]
name = "short-pressure"
title = "PPT and cPDT, one site each"
kind = "pressure-ppt"

[[tests]]
sites = ["thenar", "tibialis"]
repetitions = 1
isi_s = [1.0, 1.0]

[[tests]]
test = "cPDT"
sites = ["leg"]
repetitions = 2
rate_kpa_s = 5.0
limit_kpa = 80.0
stop_vas_cm = 2.0
isi_s = [1.0, 1.0]
"""
CALIBRATION = """
[protocol]
name = "short-calibration"
title = "three rated pulses"
kind = "heat-calibration"

[calibration]
temperatures_c = [43.0, 44.0, 45.0]
repetitions = 1
targets = [50.0]

[pulse]
hold_s = 1.0
rating_window_s = 3.0
isi_s = [1.0, 1.0]
"""


def lab_config(ports: dict[str, str], name: str = "test bench") -> StationConfig:
    """A station file naming these ports (kind -> port) as a lab's would."""
    drivers = {"tcs": "tcs2", "box": "button-box", "cuff": "ocp1-cuff", "gauge": "wagner-fdix",
               "scanner": "trigger-box"}
    text = f'[station]\nname = "{name}"\n' + "".join(
        f'[devices.{kind}]\ndriver = "{drivers[kind]}"\nport = "{port}"\n'
        for kind, port in ports.items())
    return parse_config(text, "lab.toml")


def fds_to(path: str) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == path
        except OSError:
            continue
    return count


class FakeRatingScreen(Subscriber):
    """A console rating screen: rates each prompted pulse ``(target - 42) * 20`` 0.3 s later."""

    name = "rating-screen"

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock, self.connected, self.target = clock, False, 0.0
        self._callbacks: list[Callable[[Response], None]] = []

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    def subscribe(self, callback: Callable[[Response], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return lambda: None

    def instruct(self, stimulus: Stimulus) -> None:  # a session listener
        if stimulus.kind in (THERMAL_PULSE, SCANNER_LOCKED):
            self.target = float(stimulus.params.get("target_c", stimulus.params.get("target")))

    def on_event(self, event: Event) -> None:  # a recording subscriber
        if event.kind == "rating_prompt" and self.connected:
            value = (self.target - 42.0) * 20.0
            threading.Timer(0.3 / SPEED, self._rate, args=(value,)).start()

    def _rate(self, value: float) -> None:
        for callback in list(self._callbacks):
            callback(Response(self.clock.now(), self.name, "vas", value))


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(SPEED)


@pytest.fixture
def lab(clock: SimulatedClock) -> Iterator[dict[str, Any]]:
    """The bench: a TCS II, a button box, a cuff and an algometer, each on its own pty."""
    with SimulatedTcs(clock, seed=5) as tcs, SimulatedButtonBox(clock, seed=5) as box, \
            SimulatedCuff(clock, seed=5) as cuff, SimulatedAlgometer(clock, seed=5) as gauge:
        yield {"tcs": tcs, "box": box, "cuff": cuff, "gauge": gauge}


def ports(lab: dict[str, Any], *kinds: str) -> dict[str, str]:
    return {kind: lab[kind].port for kind in kinds}


def real(config: StationConfig, **more: Any) -> dict[str, Any]:
    return {"station": "real", "config": config, **more}


def test_thermal_limits_on_the_configured_tcs_and_button_box(lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    participant = SimulatedParticipant(5, exact_participant())
    person = ThermalPerceiver(participant, lab["tcs"], lab["box"], None, clock).start()
    screen = FakeRatingScreen(clock)
    config = lab_config(ports(lab, "tcs", "box", "cuff", "gauge"))
    path = tmp_path / "limits.h5"
    try:
        run = ProtocolSession(parse_protocol(SHORT, "short.toml"), clock, path, None, 0, "v1",
                              lambda line: None, real(config, responses=[screen]),
                              listeners=[person.instruct], info=PERSON)
        measures = {m.name: m for m in run.run()}
    finally:
        person.stop()
    assert measures["CDT"].value == pytest.approx(1.0 + RT * 1.0, abs=0.15)
    assert measures["HPT"].value == pytest.approx(45.0 + RT * 1.0, abs=0.15)
    assert not screen.connected  # connected by the session for the run, then let go
    s = session.open(path)
    part = s.parts[0]
    assert (s.participant, s.status, part.protocol, part.operator) == ("P017", "success",
                                                                       "short-thermal", "tester")
    assert part.simulation is None
    assert "test bench" in part.station_config
    devices = {d["kind"]: d for d in part.devices}
    assert set(devices) == {"tcs2", "button-box", "responses"}  # cuff and gauge: not needed
    assert devices["tcs2"]["port"] == lab["tcs"].port and devices["tcs2"]["name"] == "tcs"
    assert devices["tcs2"]["firmware"] and devices["tcs2"]["identity"]
    assert devices["button-box"]["port"] == lab["box"].port
    assert devices["responses"]["identity"] == "rating-screen"
    assert [t["test"] for t in s.trials()] == ["CDT", "CDT", "HPT", "HPT"]
    assert set(s.results()) == {"CDT", "HPT"}
    presses = [e for e in s.events_of("response") if e.payload["action"] == "press"]
    assert len(presses) == 4 and {e.payload["source"] for e in presses} == {"box"}
    assert s.streams["thermode"].source.startswith("TCS II ")


def test_ratings_come_from_the_consoles_rating_screen(lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    screen = FakeRatingScreen(clock)
    screen.connect()  # as the console does on its GUI thread: the session leaves it connected
    path = tmp_path / "calibration.h5"
    (calibration,) = ProtocolSession(
        parse_protocol(CALIBRATION, "c.toml"), clock, path, None, 0, "v1", lambda line: None,
        real(lab_config(ports(lab, "tcs")), responses=[screen]), subscribers=[screen],
        listeners=[screen.instruct], info=PERSON).run()
    assert screen.connected
    s = session.open(path)
    trials = s.trials()
    assert len(trials) == 3  # each rated as the screen rated it
    assert all(t["value"] == pytest.approx((t["target_c"] - 42.0) * 20.0) for t in trials)
    assert (calibration.name, calibration.value) == ("T50", pytest.approx(44.5, abs=0.01))
    assert s.results()["T50"]["value"] == pytest.approx(44.5, abs=0.01)
    ratings = [e for e in s.events_of("response") if e.payload["action"] == "vas"]
    assert {e.payload["source"] for e in ratings} == {"rating-screen"}


def test_algometer_and_cuff_with_a_scripted_examiner(lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    gauge, box = lab["gauge"], lab["box"]

    def examiner(stimulus: Stimulus) -> None:  # pushes the probe; the participant presses
        if stimulus.kind != PRESSURE_RAMP or stimulus.params.get("device") == "cuff":
            return
        if stimulus.params.get("phase") == "release":
            gauge.release()
        else:
            gauge.press(50.0)
            box.respond_after(3.0, 1)

    path = tmp_path / "pressure.h5"
    measures = ProtocolSession(
        parse_protocol(PRESSURE, "p.toml"), clock, path, None, 0, "v1", lambda line: None,
        real(lab_config(ports(lab, "box", "cuff", "gauge"))), listeners=[examiner],
        info=PERSON).run()
    by_name = {m.name: m for m in measures}
    assert 60.0 < by_name["PPT"].value < 250.0  # about 3 s of a hand-made 50 kPa/s ramp
    assert 15.0 < by_name["cPDT"].value < 60.0  # where the cuff's VAS reached 2 cm
    s = session.open(path)
    kinds = {d["kind"]: d["port"] for d in s.parts[0].devices}
    assert kinds == {"button-box": box.port, "ocp1-cuff": lab["cuff"].port,
                     "wagner-fdix": gauge.port}
    assert {"pressure", "cuff"} <= set(s.streams)
    assert [t["answer"] for t in s.trials()] == ["stopped"] * 4


def test_a_scanner_run_follows_the_trigger_box(lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    paradigm = parse_protocol(PARADIGM.replace("{timeout}", "2.0"), "fmri-test.toml")
    scanner = SimulatedScanner(0.5, volumes=26, clock=clock, seed=3, start_delay_s=1.0)
    screen = FakeRatingScreen(clock)

    def operator(line: str) -> None:  # starts the scanner once the station listens
        if line.startswith("scanner: TR"):
            scanner.start()

    path = tmp_path / "scan.h5"
    try:
        ProtocolSession(paradigm, clock, path, None, 0, "v1", operator,
                        real(lab_config({**ports(lab, "tcs"), "scanner": scanner.port}),
                             responses=[screen]),
                        subscribers=[screen], listeners=[screen.instruct], info=PERSON).run()
    finally:
        scanner.stop()
    s = session.open(path)
    assert s.status == "success"
    devices = {d["kind"]: d["port"] for d in s.parts[0].devices}
    assert devices["trigger-box"] == scanner.port and devices["tcs2"] == lab["tcs"].port
    assert len(s.events_of("trigger")) == 26
    onsets = s.events_of("stimulus_onset")
    assert [(e.payload["volume"], e.payload["delay_s"]) for e in onsets] == [(5, 0.0),
                                                                               (19, 0.25)]
    triggers = {e.payload["volume"]: e.timestamp for e in s.events_of("trigger")}
    for onset in onsets:  # locked to the trigger box's volumes
        scheduled = triggers[onset.payload["volume"]] + onset.payload["delay_s"]
        assert 0.0 <= onset.timestamp - scheduled < 0.1
    assert [t["value"] for t in s.trials()][:2] == [80.0, 60.0]  # 46 and 45 °C rated


def test_the_examiner_answers_at_the_console_and_stop_ends_the_wait(clock, tmp_path: Path
                                                                    ) -> None:
    answers = ExaminerAnswers()
    asked: list[int] = []

    def console(question: Any) -> None:  # answered on another thread, as a GUI would
        if question is not None:
            count = int(question.stimulus.params.get("count", 1))
            asked.append(count)
            threading.Timer(0.01, answers.rating, args=(60.0 if count > 1 else 40.0,)).start()

    unsubscribe = answers.on_question(console)
    options = real(lab_config({}), examiner=answers)
    (tsp,) = ProtocolSession(load_protocol("tsp-pinprick"), clock, tmp_path / "tsp.h5", None,
                             0, "v1", lambda line: None, options, info=PERSON).run()
    assert (tsp.name, tsp.value) == ("TSP", 20.0) and len(asked) == 6
    unsubscribe()

    run = ProtocolSession(load_protocol("tsp-pinprick"), clock, tmp_path / "stop.h5", None, 0,
                          "v1", lambda line: None, options, info=PERSON)
    answers.on_question(lambda q: q is not None and threading.Timer(
        0.05, run.stop, args=("the participant left",)).start())
    run.run()  # nobody answers: STOP ends the wait
    assert (run.status, run.reason) == ("aborted", "the participant left")
    assert session.open(tmp_path / "stop.h5").status == "aborted"


def test_configured_lsl_inlets_are_recorded_along(clock, tmp_path: Path) -> None:  # noqa: ANN001
    from qst_station.lsl_setup import pylsl_module

    pylsl = pylsl_module()
    name = f"qst-test-ecg-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "ECG", 1, 100.0, pylsl.cf_float32,
                                                 f"test-{name}"))
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(0.01):
            outlet.push_sample([1.0])

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    config = parse_config(f'[devices.ecg]\ndriver = "lsl-inlet"\nstream = "{name}"\n'
                          '[devices.cues]\ndriver = "lsl-inlet"\nstream = "qst-no-such"\n'
                          "resolve_timeout_s = 0.2\n")
    answers = ExaminerAnswers()
    answers.on_question(lambda q: q is not None and threading.Timer(  # 0.1 s per answer
        0.1, answers.rating, args=(50.0,)).start())
    protocol = load_protocol("tsp-pinprick")

    def run(path: Path, inlets: list[str] | None) -> ProtocolSession:
        options = real(config, examiner=answers, lsl_inlets=inlets)
        session_ = ProtocolSession(protocol, clock, path, None, 0, "v1", lambda line: None,
                                   options, info=PERSON)
        session_.run()
        return session_

    try:
        run(tmp_path / "ecg.h5", ["ecg"])
        with pytest.raises(StationError, match=r"^lsl: no lsl-inlet entry named 'nope'"):
            run(tmp_path / "nope.h5", ["nope"])
        with pytest.raises(StationError, match=r"^lsl: the LSL stream 'cues' on name "
                                               r"'qst-no-such' did not open: no LSL stream"):
            run(tmp_path / "all.h5", None)
    finally:
        stop.set()
        sender.join()
    s = session.open(tmp_path / "ecg.h5")
    assert len(s.streams["ecg"].time) > 0
    (ecg,) = [d for d in s.parts[0].devices if d["kind"] == "lsl-inlet"]
    assert ecg["name"] == "ecg" and ecg["port"].startswith(f"lsl:{name}@")


def test_examiner_answers_must_fit_the_question(clock) -> None:  # noqa: ANN001
    answers = ExaminerAnswers(clock)
    with pytest.raises(ValueError, match="no question"):
        answers.yes()
    got: list[Any] = []
    step = Stimulus("CPM", "confirm", {}, instruction="cold water on")
    touch = Stimulus("MDT", "manual", {"force_mN": 8.0})

    def console(question: Any) -> None:
        if question is None:
            return
        for wrong in (answers.yes if question.confirm else answers.done,
                      lambda: answers.rating(float("nan"))):
            with pytest.raises(ValueError):
                wrong()
        got.append(answers.done() if question.confirm else answers.yes())

    answers.on_question(console)
    answers.confirm(step)
    assert answers.answer(touch).kind == YES and [a.kind for a in got] == [DONE, YES]
    answers.cancel("gone")
    with pytest.raises(RuntimeError, match="gone"):
        answers.answer(touch)


def test_a_missing_role_is_one_line_before_anything_opens(lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    box = lab["box"].port
    held = fds_to(os.path.realpath(box))
    cases = [
        (PRESSURE, {"box": box}, {}, 'short-pressure needs an algometer: add a [devices.<name>]'
         ' entry with driver = "wagner-fdix" (see docs/configuration.md)'),
        (SHORT, {"tcs": lab["tcs"].port}, {}, "short-thermal needs the participant's button: "
         'add a [devices.<name>] entry with driver = "button-box" (see docs/configuration.md),'
         ' or let the participant answer on the keyboard (options["responses"])'),
        (CALIBRATION, {"tcs": lab["tcs"].port, "box": box}, {}, "short-calibration needs a "
         "rating source for the participant: pass the console's rating screen in "
         'options["responses"]'),
    ]
    for text, named, more, message in cases:
        run = ProtocolSession(parse_protocol(text, "t.toml"), clock, tmp_path / "x.h5", None, 0,
                              "v1", lambda line: None, real(lab_config(named), **more),
                              info=PERSON)
        with pytest.raises(StationError) as error:
            run.run()
        assert str(error.value) == message
    run = ProtocolSession(load_protocol("tsp-pinprick"), clock, tmp_path / "x.h5", None, 0,
                          "v1", lambda line: None, real(lab_config({})), info=PERSON)
    with pytest.raises(StationError, match=r'needs the examiner at the console: pass an '
                                           r'ExaminerAnswers in options\["examiner"\]$'):
        run.run()
    assert not (tmp_path / "x.h5").exists() and fds_to(os.path.realpath(box)) == held


def test_a_device_that_does_not_open_is_one_line_and_leaves_no_port_open(
        lab, clock, tmp_path: Path) -> None:  # noqa: ANN001
    box = os.path.realpath(lab["box"].port)
    master, slave = os.openpty()  # a port where nothing answers
    silent = os.ttyname(slave)
    try:
        held = (fds_to(box), fds_to(silent))
        for port, why in ((silent, "did not open: .*"), ("/dev/qst-no-such-port",
                                                          "did not open: cannot open .*")):
            run = ProtocolSession(parse_protocol(SHORT, "s.toml"), clock, tmp_path / "x.h5",
                                  None, 0, "v1", lambda line: None,
                                  real(lab_config({"box": box, "tcs": port})), info=PERSON)
            with pytest.raises(StationError, match=f"^thermode: the TCS II 'tcs' on {port} "
                                                   f"{why}$") as error:
                run.run()
            assert "\n" not in str(error.value)
            assert (fds_to(box), fds_to(silent)) == held  # the button box was closed again
            assert not run.station and not (tmp_path / "x.h5").exists()
    finally:
        os.close(master)
        os.close(slave)


def test_a_medoc_is_refused_for_ramps_with_its_capability_error(lab, clock, tmp_path: Path
                                                               ) -> None:  # noqa: ANN001
    config = parse_config(f'[devices.medoc]\ndriver = "medoc"\nhost = "sim"\n'
                          f'[devices.box]\ndriver = "button-box"\nport = "{lab["box"].port}"\n')
    run = ProtocolSession(parse_protocol(SHORT, "s.toml"), clock, tmp_path / "m.h5", None, 0,
                          "v1", lambda line: None, real(config), info=PERSON)
    with pytest.raises(CapabilityError, match=r"^Medoc TSA-II / Pathway \(ATS\) cannot do what "
                                              r"short-thermal step 1 \(CDT\) needs: stimuli "
                                              r"defined by the program$"):
        run.run()
    assert not run.station.drivers["thermode"].connected
    assert not (tmp_path / "m.h5").exists()
