"""Cuff stimulator (OCP/1): the reference simulator's semantics, the driver's gate, and the
driver against the simulator over a real pty on a simulated clock at 20x.

Every wait is bounded (in clock seconds) and nothing asserts on wall-clock timing; an
exception escaping a driver thread fails the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import cuff_wire as wire
from drivers.cuff import CuffDriver, CuffEvent, CuffSample, DeviceRefused
from drivers.cuff_program import Dec, Inc, Step, plan_program
from drivers.errors import DeviceError, LimitError, NotConnected
from qst_station.clock import SimulatedClock
from sim.cuff import CuffDevice, Outlet, SimulatedCuff
from tests.helpers import wait_for

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
SPEED = 20.0


# ------------------------------------------------------------------ the reference device

def send(device: CuffDevice, text: str, now: float = 10.0) -> list[wire.DeviceLine]:
    out = device.receive(text.encode() + b"\n", now)
    return [wire.decode_line(raw) for raw in out.splitlines()]


def run(device: CuffDevice, start: float, seconds: float) -> list[wire.DeviceLine]:
    out = b"".join(device.step(start + k * 0.05 + 0.001) for k in range(1, round(seconds * 20)))
    return [wire.decode_line(raw) for raw in out.splitlines()]


def test_device_runs_step_inc_dec_with_repeats_then_ends() -> None:
    device = CuffDevice(seed=0)
    replies = send(device, "STREAM ON\nPSTEP 1 20.0 100\nPINC 1 10.0 200\nPDEC 1 20.0 100\n"
                           "PREP 1 2\nPINC 2 5.0 300\nSTART\n")
    assert replies[-1] == wire.Started(10_000)
    lines = run(device, 10.0, 1.5)
    data = [x for x in lines if isinstance(x, wire.Data)]
    assert [d.t_ms for d in data[:3]] == [10_050, 10_100, 10_150]  # 20 Hz from START
    one = [20.0, 20.0, 20.5, 21.0, 21.5, 22.0, 21.0, 20.0]
    assert [d.target1 for d in data[:17]] == one * 2 + [0.0]
    assert [d.target2 for d in data[:7]] == [0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 0.0]  # half up
    stops = [x for x in lines if isinstance(x, wire.Stopped)]
    assert [(s.reason, s.t_ms, s.p1) for s in stops] == [("END", 10_800, data[15].p1)]
    assert lines.index(stops[0]) == lines.index(data[15]) + 1  # after the tick's data line
    assert not device.running


def test_device_refusals_follow_the_spec() -> None:
    device = CuffDevice(seed=0)
    assert send(device, "START")[0].code == "EMPTY"  # type: ignore[union-attr]
    assert send(device, "LIMIT 150.0\nLIMIT 50") == [wire.Ack(wire.SetLimit(100.0)),
                                                    wire.Ack(wire.SetLimit(50.0))]
    send(device, "PINC 1 1.0 60000")
    assert send(device, "START")[0] == wire.Refused(
        "LIMIT", "outlet 1 program reaches 60.0 kPa, above LIMIT 50.0")
    assert send(device, "PCLR 1\nPDEC 1 1.0 1000\nSTART")[-1].code == "RANGE"  # type: ignore
    replies = send(device, "PCLR 1\n" + "PSTEP 1 30.0 1000\n" * 33)
    assert replies[-2] == wire.Ack(wire.AddSegment(1, "STEP", 30.0, 1000))
    assert replies[-1].code == "FULL"  # type: ignore[union-attr]
    device.participant.held_vas = 2.0
    run(device, 10.0, 0.1)
    assert send(device, "START")[0] == wire.Refused("VAS", "VAS reads 2.0 cm, not 0")
    assert isinstance(send(device, "START FORCE")[0], wire.Started)
    busy = send(device, "PSTEP 1 10.0 100\nLIMIT 80.0\nMODE BUTTON\nSTART FORCE")
    assert [r.code for r in busy] == ["BUSY"] * 4  # type: ignore[union-attr]
    assert send(device, "PSTEP 1 300.0 100")[0].code == "RANGE"  # type: ignore[union-attr]
    assert send(device, "STATUS")[0].running  # type: ignore[union-attr]
    garbled = send(device, "STPO", now=11.0)  # may have been a STOP: the run ends
    assert garbled[0].code == "SYNTAX"  # type: ignore[union-attr]
    assert garbled[1] == wire.Stopped("FAULT", 11_000, 0.0, 0.0, 2.0)
    assert not device.running and all(o.target == 0.0 for o in device.outlets)


def test_device_dumps_a_runaway_pump() -> None:
    device = CuffDevice(seed=0)
    device.participant.held_vas, device.participant.held_button = 0.0, False  # feels nothing
    send(device, "LIMIT 60.0\nPSTEP 1 30.0 60000\nSTART")
    run(device, 10.0, 2.0)
    device.runaway(1)
    lines = run(device, 12.0, 3.0)
    stop = next(x for x in lines if isinstance(x, wire.Stopped))
    assert stop.reason == "LIMIT" and stop.p1 > 60.0 + wire.OVERPRESSURE_MARGIN
    assert device.outlets[0].pressure < 1.0  # dumped
    device.runaway(2)  # idle: no run to stop, still dumped and reported
    assert wire.Fault("VALVE", 2) in run(device, 15.0, 4.0)
    assert device.outlets[1].pressure < 1.0


def test_participant_is_seeded_and_plausible() -> None:
    a, b, c = CuffDevice(seed=3), CuffDevice(seed=3), CuffDevice(seed=4)
    assert (a.participant.detection, a.participant.tolerance) == (
        b.participant.detection, b.participant.tolerance)
    assert a.participant.tolerance != c.participant.tolerance
    for device in (a, c):
        assert 20.0 <= device.participant.detection <= 30.0
        assert 50.0 <= device.participant.tolerance <= 70.0


# ------------------------------------------------------------------ the driver's gate

def tick_targets(segments: tuple[wire.AddSegment, ...], repeat: int) -> list[float]:
    """Target at every 50 ms tick, computed here independently of driver and simulator."""
    targets, target = [], 0.0
    for _ in range(repeat):
        for seg in segments:
            base = target
            for k in range(1, seg.ms // wire.TICK_MS + 1):
                sign = 1.0 if seg.kind == "INC" else -1.0
                target = seg.value if seg.kind == "STEP" else base + sign * seg.value * k * 0.05
                targets.append(target)
    return targets


seconds = st.floats(0.0, 1.5)
segment = st.one_of(st.builds(Step, st.floats(-10.0, 150.0), seconds),
                    st.builds(Inc, st.floats(-1.0, 120.0), seconds),
                    st.builds(Dec, st.floats(-1.0, 120.0), seconds))


@given(st.lists(segment, min_size=1, max_size=5), st.integers(1, 3),
       st.sampled_from([30.0, 50.0, 100.0]))
def test_no_program_through_the_gate_leaves_0_to_max(
        segments: list[Step | Inc | Dec], repeat: int, max_kpa: float) -> None:
    try:
        plan = plan_program(1, segments, repeat, max_kpa)
    except LimitError:
        return
    expected = tick_targets(plan.segments, plan.repeat)
    assert all(-1e-9 <= t <= max_kpa + 1e-9 for t in expected)
    assert max(expected) == pytest.approx(plan.peak_kpa)
    assert len(expected) == round(plan.duration_s * 20)
    outlet = Outlet(segments=list(plan.segments), repeat=plan.repeat)  # the reference device
    outlet.begin()
    executed = []
    while (outlet.advance(), outlet.active)[1]:
        executed.append(outlet.target)
    assert executed == pytest.approx(expected, abs=1e-9)


# ------------------------------------------------------------------ driver vs simulator

@dataclass
class Rig:
    clock: SimulatedClock
    sim: SimulatedCuff
    driver: CuffDriver
    samples: list[CuffSample] = field(default_factory=list)
    events: list[CuffEvent] = field(default_factory=list)
    status: list[tuple[str, str]] = field(default_factory=list)

    def wait(self, condition: object, timeout: float = 10.0) -> bool:
        return wait_for(condition, self.clock, timeout)  # type: ignore[arg-type]

    def said(self, kind: str, text: str, timeout: float = 20.0) -> bool:
        """A ``kind`` report containing ``text`` arrives within ``timeout`` clock seconds."""
        def found() -> bool:
            self.driver.drain_status()
            return any(k == kind and text in m for k, m in self.status)
        return self.wait(found, timeout)

    def stopped(self, timeout: float = 20.0) -> wire.Stopped:
        assert self.wait(lambda: self.driver.last_stop is not None, timeout)
        event = self.driver.last_stop.event  # type: ignore[union-attr]
        assert isinstance(event, wire.Stopped)
        return event


@contextlib.contextmanager
def rig(tmp_path: Path, seed: int = 1, **driver_options: object) -> Iterator[Rig]:
    clock = SimulatedClock(speed=SPEED)
    with SimulatedCuff(clock, link=tmp_path / "cuff", seed=seed) as sim:
        driver = CuffDriver(sim.port, clock=clock, **driver_options)  # type: ignore[arg-type]
        r = Rig(clock, sim, driver)
        driver.subscribe(r.samples.append)
        driver.on_event(r.events.append)
        driver.on_status(lambda kind, message: r.status.append((kind, message)))
        driver.connect()
        try:
            yield r
        finally:
            driver.disconnect()


@pytest.mark.parametrize(("mode", "reason"), [("vas", "VAS"), ("button", "BUTTON")])
def test_ramp_of_1_kpa_s_stops_at_tolerance(tmp_path: Path, mode: str, reason: str) -> None:
    with rig(tmp_path) as r:
        r.driver.set_stop_mode(mode)
        plan = r.driver.program(1, [Inc(1.0, 100.0)])
        assert (plan.peak_kpa, plan.duration_s) == (100.0, 100.0)
        start_ms = r.driver.start()
        stop = r.stopped(timeout=90.0)
        assert stop.reason == reason and stop.vas >= (10.0 if mode == "vas" else 9.0)
        tolerance = r.sim.participant.tolerance
        assert tolerance - 3.0 < stop.p1 < tolerance + 3.0 and stop.p2 < 1.0
        run = [s for s in r.samples if start_ms < s.t_ms <= stop.t_ms]
        assert run[0].t_ms == start_ms + 50
        assert all(b.t_ms - a.t_ms == 50 for a, b in zip(run, run[1:], strict=False))
        span = run[-1].timestamp - run[0].timestamp  # on the program clock
        assert (len(run) - 1) / span == pytest.approx(20.0, rel=0.1)
        slope = (run[-1].target1 - run[20].target1) / (run[-1].timestamp - run[20].timestamp)
        assert slope == pytest.approx(1.0, rel=0.1)
        assert run[-1].target1 - 1.0 < run[-1].p1 <= run[-1].target1 + 0.5  # lags a little
        vas = [s.vas for s in run]
        assert vas[0] == 0.0 and max(vas) == 10.0
        detected = next(s.p1 for s in run if s.vas > 0)
        assert abs(detected - r.sim.participant.detection) < 3.0
        assert r.wait(lambda: r.samples[-1].p1 < 1.0, 5.0)  # deflated
        assert not r.driver.running and r.said("stopped", f"stopped ({reason})")


def test_start_is_refused_unless_the_vas_reads_0_or_forced(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.driver.program(1, [Step(20.0, 5.0)])
        r.sim.hold_vas(3.0)
        assert r.wait(lambda: r.samples[-1].vas == 3.0)
        with pytest.raises(DeviceRefused, match=r"VAS reads 3\.0 cm.*force=True") as info:
            r.driver.start()
        assert info.value.code == "VAS" and not r.driver.running
        assert not r.driver.status().running
        r.driver.start(force=True)
        assert r.driver.running
        stop = r.stopped()
        assert stop.reason == "END" and 17.0 < stop.p1 < 21.0 and stop.vas == 3.0


def test_programs_beyond_the_limit_are_refused_with_nothing_written(tmp_path: Path) -> None:
    with rig(tmp_path, max_kpa=50.0) as r:
        assert r.driver.limit == 50.0 and r.sim.device.limit == 50.0
        written = len(r.sim.device.lines)
        refused = [
            ([Inc(1.0, 60.0)], 1, "reaches 60.0 kPa"), ([Step(50.1, 1.0)], 1, "outside"),
            ([Inc(10.0, 1.0)], 6, "reaches 60.0 kPa"), ([Step(10.0, 1.0), Dec(1.0, 11.0)], 1,
                                                       "below 0"),
            ([Step(10.0, 601.0)], 1, "duration"), ([Step(10.0, 0.02)], 1, "duration"),
            ([Inc(0.04, 1.0)], 1, "outside"), ([Inc(150.0, 0.1)], 1, "outside"),
            ([Step(float("nan"), 1.0)], 1, "finite"), ([], 1, "segments"),
            ([Step(10.0, 1.0)] * 33, 1, "segments"), ([Step(10.0, 1.0)], 0, "repeat"),
        ]
        for segments, repeat, reason in refused:
            with pytest.raises(LimitError, match=reason):
                r.driver.program(1, segments, repeat)  # type: ignore[arg-type]
        with pytest.raises(LimitError, match="outlets 1 and 2"):
            r.driver.program(3, [Step(10.0, 1.0)])
        assert len(r.sim.device.lines) == written and not r.driver.programs
        assert r.driver.program(1, [Inc(1.0, 50.0)]).peak_kpa == 50.0  # the limit itself
        plan = r.driver.program(2, [Step(12.34, 1.024)], repeat=2)  # rounded as documented
        assert plan.segments == (wire.AddSegment(2, "STEP", 12.3, 1000),)
        assert r.sim.device.outlets[1].segments == list(plan.segments)
        assert r.sim.device.outlets[1].repeat == 2


def test_stop_deflates_both_outlets(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.driver.program(1, [Step(40.0, 30.0)])
        r.driver.program(2, [Step(20.0, 30.0)])
        r.driver.start()
        assert r.wait(lambda: r.samples[-1].p1 > 38.0 and r.samples[-1].p2 > 18.0)
        with pytest.raises(LimitError, match="running"):
            r.driver.program(1, [Step(10.0, 1.0)])
        r.driver.stop()
        stop = r.stopped()
        assert stop.reason == "STOP" and stop.p1 > 38.0 and stop.p2 > 18.0
        assert r.wait(lambda: r.samples[-1].p1 < 1.0 and r.samples[-1].p2 < 1.0, 3.0)
        assert (r.samples[-1].target1, r.samples[-1].target2) == (0.0, 0.0)
        assert not r.driver.status().running


def test_a_start_decided_before_a_stop_is_not_sent_after_it(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.driver.program(1, [Step(40.0, 30.0)])
        decided = r.driver.generation
        r.driver.stop()  # the operator's STOP comes in between
        written = len(r.sim.device.lines)
        with pytest.raises(DeviceError, match="not sent: STOP was requested"):
            r.driver.start(generation=decided)
        assert len(r.sim.device.lines) == written and not r.driver.status().running
        r.driver.start(generation=r.driver.generation)  # a new decision starts it
        assert r.wait(lambda: r.samples[-1].p1 > 5.0)
        r.driver.stop()


def test_pulled_cable_is_reported_and_reconnect_restores(tmp_path: Path) -> None:
    with rig(tmp_path, max_kpa=80.0) as r:
        r.driver.program(1, [Step(30.0, 60.0)])
        r.driver.start()
        assert r.wait(lambda: r.samples[-1].p1 > 20.0)
        r.sim.disconnect()
        assert r.said("lost", "connection lost")
        assert not r.driver.connected and not r.driver.running
        assert not r.sim.device.running and r.sim.device.outlets[0].target == 0.0  # deflates
        with pytest.raises(NotConnected):
            r.driver.start()
        r.sim.reattach()
        r.driver.reconnect()
        count = len(r.samples)
        assert r.wait(lambda: len(r.samples) > count + 10)
        assert r.sim.device.limit == 80.0 and r.sim.device.stream and not r.driver.programs


def test_device_fault_is_reported_and_deflates(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.driver.program(1, [Step(30.0, 60.0)])
        r.driver.start()
        assert r.wait(lambda: r.samples[-1].p1 > 25.0)
        r.sim.fault("LEAK", 1)
        assert r.stopped().reason == "FAULT"
        kinds = [e.event for e in r.events]
        assert kinds[0] == wire.Fault("LEAK", 1) and isinstance(kinds[1], wire.Stopped)
        assert r.said("error", "device fault LEAK on outlet 1")
        assert r.said("error", "stopped (FAULT)")
        assert r.wait(lambda: r.samples[-1].p1 < 1.0, 3.0)


def test_runaway_pump_stops_with_reason_limit(tmp_path: Path) -> None:
    with rig(tmp_path, max_kpa=50.0) as r:
        r.driver.program(1, [Step(30.0, 60.0)])
        r.driver.start()
        assert r.wait(lambda: r.samples[-1].p1 > 25.0)
        r.sim.hold_vas(0.0)  # the participant feels nothing: only the limit can stop it
        r.sim.hold_button(False)
        r.sim.runaway(1)
        stop = r.stopped()
        assert stop.reason == "LIMIT" and stop.p1 > 50.0 + wire.OVERPRESSURE_MARGIN
        assert r.said("error", "stopped (LIMIT)")
        assert r.wait(lambda: r.samples[-1].p1 < 1.0, 3.0)


def test_device_reset_is_reported_and_settings_are_applied_again(tmp_path: Path) -> None:
    with rig(tmp_path, max_kpa=60.0) as r:
        r.driver.program(1, [Step(30.0, 5.0)])
        r.sim.power_cycle()
        assert r.wait(lambda: r.sim.device.limit == 60.0 and r.sim.device.stream, 5.0)
        assert r.said("error", "restarted") and not r.driver.programs
        assert r.events[-1].event == wire.Reset("OCP/1")
        count = len(r.samples)
        assert r.wait(lambda: len(r.samples) > count + 10)


def test_bad_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.sim.pty.inject(b"D 1 2 3\nHELLO\n" + b"X" * 200 + b"\n")
        count = len(r.samples)
        assert r.wait(lambda: r.driver.bad_lines == 3 and len(r.samples) > count + 5)
        assert r.said("warning", "not an OCP/1 device line")


def test_silence_sends_stop_and_is_reported(tmp_path: Path) -> None:
    with rig(tmp_path, silence_s=0.3) as r:
        r.driver.program(1, [Step(30.0, 60.0)])
        r.driver.start()
        r.sim.pty.stall(0.6)  # real seconds: the device hangs, then answers again
        assert r.said("error", "no data from the device", timeout=60.0)  # 3 s real
        assert r.said("warning", "data lines again", timeout=60.0)
        assert r.stopped().reason in ("STOP", "FAULT")  # STOP was sent when it went quiet
