"""The Medoc driver against the simulated MMS over real TCP on 127.0.0.1: programs, commands,
return codes, command-line helpers. Faults and safety: test_medoc_faults.py."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from drivers import medoc_wire as wire
from drivers.errors import DeviceError, LimitError
from drivers.interfaces import CapabilityError, ThermalStimulator
from drivers.medoc import (
    MedocDriver,
    MedocSample,
    TestStateTimeout,
    TriggerRefused,
    parse_address,
    probe_lines,
)
from drivers.medoc_wire import Command, ReturnCode, Status, SystemState, TestState
from qst_station.clock import SimulatedClock
from sim.medoc_server import SimulatedMedoc, serve_forever
from tests import medoc_support as support
from tests.medoc_support import (
    WAIT_S,
    Events,
    commands,
    make_driver,
    make_sim,
    run_to_running,
    sent,
    until,
)

# the shared fixtures (here, so they win over conftest's TCS `sim` and `driver`)
mclock, sim, driver, events, samples = (
    support.mclock, support.sim, support.driver, support.events, support.samples)
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

# ---------------------------------------------------------------------- capabilities


def test_capabilities_say_programs_only(driver: MedocDriver) -> None:
    assert isinstance(driver, ThermalStimulator)
    caps = driver.capabilities
    assert caps.programs and not caps.ramp_and_hold
    assert (caps.min_celsius, caps.max_celsius) == (0.0, 50.0)  # ATS 0-55 within limits 0-50
    assert (caps.max_rise_rate, caps.max_return_rate, caps.zones) == (8.0, 8.0, 1)
    with pytest.raises(CapabilityError, match="programs defined in Medoc's software"):
        driver.prepare_ramp_and_hold(45.0, 2.0, 2.0, 3.0)
    with pytest.raises(CapabilityError, match="baseline"):
        driver.set_baseline(30.0)
    with pytest.raises(CapabilityError, match="stimuli defined by the program"):
        caps.require(ramp_and_hold=True, what="a ramp-and-hold protocol")


def test_cheps_capabilities(sim: SimulatedMedoc, mclock: SimulatedClock) -> None:
    caps = make_driver(sim, mclock, thermode="CHEPS").capabilities
    assert (caps.min_celsius, caps.max_celsius) == (30.0, 50.0)
    assert (caps.max_rise_rate, caps.max_return_rate) == (70.0, 40.0)


# ---------------------------------------------------------------------- a program end to end


def test_program_runs_past_the_pretest_and_streams_temperatures(
        sim: SimulatedMedoc, driver: MedocDriver, samples: list[MedocSample]) -> None:
    selected = driver.select_program(1)
    assert (selected.system_state, selected.test_state) == (SystemState.READY, TestState.READY)
    running = driver.start()  # returns only once the pre-test is over
    assert (running.system_state, running.test_state) == (SystemState.TEST, TestState.RUNNING)
    driver.trigger()
    assert sim.device.stimuli_started == 1 and sim.device.lost_triggers == 0
    until(lambda: any(s.temperature > 39.5 for s in samples), "the 40 °C plateau")
    until(lambda: not driver.busy, "the end of the program")
    peak = max(s.temperature for s in samples)
    assert 39.5 < peak < 40.5
    stamps = [s.timestamp for s in samples]
    assert stamps == sorted(stamps) and len(samples) > 20
    assert samples[-1].all == (samples[-1].temperature,)
    assert all(not r.big_endian_length for r in sim.device.log)  # we send little-endian
    assert commands(sim).count(Command.TRIGGER) == 1


def test_two_stimuli_each_need_a_trigger(sim: SimulatedMedoc, driver: MedocDriver) -> None:
    run_to_running(driver, 61)
    for n in (1, 2):
        until(lambda: sim.device.stage == "wait", f"MMS waiting for trigger {n}")
        driver.trigger()
        assert sim.device.stimuli_started == n
    until(lambda: sim.device.test_state == TestState.IDLE, "the end of the test")


def test_naive_trigger_in_the_pretest_is_lost_but_the_driver_refuses_it(
        mclock: SimulatedClock, events: Events) -> None:
    with make_sim(mclock, pretest_s=3600.0) as sim:
        with socket.create_connection(("127.0.0.1", sim.port), 2) as raw:
            for command, parameter in ((Command.SELECT_TP, 1), (Command.START, None),
                                       (Command.TRIGGER, None)):
                raw.sendall(wire.encode_request(command, parameter, timestamp=0))
                answer = wire.ResponseDecoder()
                got: list[Status] = []
                while not got:
                    got = answer.feed(raw.recv(4096))
                assert got[0].ok  # MMS acknowledges the trigger...
        assert sim.device.lost_triggers == 1 and sim.device.stimuli_started == 0  # ...and loses it

        driver = make_driver(sim, mclock)
        driver.on_status(events)
        driver.connect()
        try:
            with pytest.raises(TriggerRefused, match="pre-test: a TRIGGER now would be lost"):
                driver.trigger()
            assert sent(sim, Command.TRIGGER) == 1  # only the naive one
            with pytest.raises(TestStateTimeout, match="no RUNNING test state within 1 s"):
                driver.wait_until_running(timeout_s=1.0)
        finally:
            driver.disconnect()  # aborts the test left in its pre-test
        assert sim.device.system_state == SystemState.READY
        assert commands(sim)[-1] == Command.ABORT


def test_start_that_never_runs_is_aborted(mclock: SimulatedClock) -> None:
    with make_sim(mclock, pretest_s=3600.0) as sim:
        driver = make_driver(sim, mclock)
        driver.connect()
        try:
            driver.select_program(1)
            with pytest.raises(TestStateTimeout, match="RUNNING.*test READY.*test aborted"):
                driver.start(timeout_s=1.0)
            assert sim.device.test_state == TestState.IDLE
            assert Command.ABORT in commands(sim)
        finally:
            driver.disconnect()


def test_abort_ends_a_start_waiting_on_another_thread(mclock: SimulatedClock) -> None:
    with make_sim(mclock, pretest_s=3600.0) as sim:
        driver = make_driver(sim, mclock)
        driver.connect()
        outcome: list[BaseException] = []

        def start() -> None:
            try:
                driver.start()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                outcome.append(exc)

        try:
            driver.select_program(1)
            thread = threading.Thread(target=start)
            thread.start()
            until(lambda: sim.device.stage == "pretest", "the pre-test")
            driver.abort()
            thread.join(WAIT_S)
            assert not thread.is_alive()
            assert isinstance(outcome[0], DeviceError) and "ABORT was sent" in str(outcome[0])
            assert sim.device.test_state == TestState.IDLE
        finally:
            driver.disconnect()


def test_stop_polls_until_idle(sim: SimulatedMedoc, driver: MedocDriver,
                               samples: list[MedocSample]) -> None:
    run_to_running(driver, 60)
    driver.trigger()
    until(lambda: any(s.temperature > 35.0 for s in samples), "heating")
    index = len(sim.device.log)
    stopped = driver.stop()
    assert stopped.test_state == TestState.IDLE and not driver.busy
    after = [c for c in commands(sim, index) if c != Command.GET_STATUS]
    assert after == [Command.STOP]  # then polls only, until IDLE
    until(lambda: samples[-1].temperature < 32.5, "the return to 32 °C")


def test_pause_and_resume(sim: SimulatedMedoc, driver: MedocDriver) -> None:
    run_to_running(driver, 5)
    assert driver.pause().test_state == TestState.PAUSED
    assert sim.device.test_state == TestState.PAUSED
    with pytest.raises(TriggerRefused, match="test PAUSED"):
        driver.trigger()
    assert driver.start().test_state == TestState.RUNNING  # START resumes


# ---------------------------------------------------------------------- responses and commands


def test_yes_no_and_covas_arrive_timestamped(sim: SimulatedMedoc, driver: MedocDriver,
                                             samples: list[MedocSample],
                                             mclock: SimulatedClock) -> None:
    responses: list[tuple[str, int, float]] = []
    driver.on_response(lambda kind, value, when: responses.append((kind, value, when)))
    run_to_running(driver, 3)  # method of limits: heats until YES
    until(lambda: samples and samples[-1].temperature > 33.0, "the heat ramp")
    before = mclock.now()
    sim.press_yes(hold_s=2.0)  # 0.2 s real: seen by several polls
    until(lambda: ("yes", 1) in [(k, v) for k, v, _ in responses], "YES")
    after = mclock.now()
    kind, value, when = next(r for r in responses if r[:2] == ("yes", 1))
    assert before <= when <= after
    until(lambda: ("yes", 0) in [(k, v) for k, v, _ in responses], "YES released")
    assert sim.device.stage in ("return", "idle")  # YES ended the ramp
    sim.set_covas(40)
    until(lambda: ("covas", 40) in [(k, v) for k, v, _ in responses], "CoVAS 40")
    sim.press_no(hold_s=2.0)
    until(lambda: ("no", 1) in [(k, v) for k, v, _ in responses], "NO")
    stamps = [when for _, _, when in responses]
    assert stamps == sorted(stamps)


def test_commands_reach_mms_with_their_parameters(sim: SimulatedMedoc,
                                                  driver: MedocDriver) -> None:
    index = len(sim.device.log)
    driver.covas(55)
    driver.vas(7)
    driver.specify_next(3)
    driver.yes()
    driver.no()
    driver.keyup()
    log = [(r.command, r.parameter) for r in sim.device.log[index:]
           if r.command != Command.GET_STATUS]
    assert log == [(Command.COVAS, 55), (Command.VAS, 7), (Command.SPECIFY_NEXT, 3),
                   (Command.YES, None), (Command.NO, None), (Command.KEYUP, None)]
    assert sim.device.covas == 55 and sim.device.vas_ratings == [7]
    for bad in (lambda: driver.covas(101), lambda: driver.vas(-1), lambda: driver.covas(True)):
        with pytest.raises(LimitError, match="is not an integer"):
            bad()


def test_t_up_and_t_down_are_checked_against_the_limits(sim: SimulatedMedoc,
                                                        driver: MedocDriver) -> None:
    run_to_running(driver, 5)  # VAS search from 40 °C
    until(lambda: sim.device.setpoint == 40.0, "the 40 °C start")
    driver.t_up(2.0)
    driver.t_down(1.5)
    assert sim.device.goal == pytest.approx(40.5)
    steps = [(r.command, r.parameter) for r in sim.device.log
             if r.command in (Command.T_UP, Command.T_DOWN)]
    assert steps == [(Command.T_UP, 200), (Command.T_DOWN, 150)]
    with pytest.raises(LimitError, match="outside 0-50 °C"):
        driver.t_up(15.0)
    with pytest.raises(LimitError, match="positive"):
        driver.t_down(0.0)
    assert sent(sim, Command.T_UP) == 1  # nothing sent for the refused steps


# ---------------------------------------------------------------------- return codes


def test_non_ok_return_codes_raise_errors_naming_code_and_command(
        sim: SimulatedMedoc, driver: MedocDriver) -> None:
    with pytest.raises(wire.IllegalState, match=r"START failed: ILLEGAL_STATE .*no program"):
        driver.start()
    with pytest.raises(wire.IllegalArgument, match="SELECT_TP failed: ILLEGAL_ARG.*code 77"):
        driver.select_program(77)
    with pytest.raises(wire.IllegalTestState, match="PAUSE failed: ILLEGAL_TEST_STATE"):
        driver.pause()
    with pytest.raises(wire.IllegalState, match="STOP failed"):
        driver.stop()
    for code, error in ((ReturnCode.DEVICE_COMM_ERROR, wire.DeviceCommError),
                        (ReturnCode.WAITING_MANUAL_OPERATION, wire.WaitingManualOperation),
                        (0x5555, wire.UnknownReturnCode)):
        sim.fail_next(code, "simulated")
        with pytest.raises(error, match=r"SELECT_TP failed: .*\(simulated\)") as info:
            driver.select_program(1)
        assert info.value.code == code
    assert sim.device.program is None  # none of the failed selections took effect
    driver.abort()  # nothing to abort: not an error


def test_refusals_send_nothing(sim: SimulatedMedoc, mclock: SimulatedClock,
                               driver: MedocDriver) -> None:
    index = len(sim.device.log)
    with pytest.raises(TriggerRefused, match="system READY, test IDLE"):
        driver.trigger()
    with pytest.raises(LimitError, match="not 0-255"):
        driver.select_program(256)
    assert set(commands(sim, index)) <= {Command.GET_STATUS}
    guarded = make_driver(sim, mclock, allowed_programs={1, 2})
    guarded.connect()
    try:
        with pytest.raises(LimitError, match=r"not among the allowed programs \[1, 2\]"):
            guarded.select_program(3)
        assert guarded.select_program(2).ok
    finally:
        guarded.disconnect()


# ---------------------------------------------------------------------- safety

# ---------------------------------------------------------------------- command line helpers


def test_probe_lines(sim: SimulatedMedoc) -> None:
    lines = probe_lines("127.0.0.1", sim.port)
    assert lines[0] == f"address:      127.0.0.1:{sim.port}"
    assert "system state: READY" in lines and "return code:  OK (0x0000): OK" in lines
    assert [r.command for r in sim.device.log] == [Command.GET_STATUS]  # nothing else sent


@pytest.mark.parametrize(("text", "expected"), [
    ("10.64.1.10", ("10.64.1.10", 20121)), ("mms.lab:2000", ("mms.lab", 2000)),
    ("[::1]:20122", ("::1", 20122)), ("[fe80::1]", ("fe80::1", 20121)),
])
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", ":20121", "host:0", "host:port", "host:70000"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_serve_forever_until_stopped() -> None:
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, kwargs={
        "port": 0, "speed": 5.0, "print_line": lines.append, "stop": stop})
    thread.start()
    try:
        until(lambda: bool(lines), "the simulator's first line")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", lines[0]).group(1))
        assert "system state: READY" in probe_lines("127.0.0.1", port)
        assert any("program   1: warm 40" in line for line in lines)
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert lines[-1] == "simulator stopped"
