"""The trigger-to-stimulus path: the scanner's timed writes, time-critical trigger
subscribers, the TCS II driver's non-waiting start and the demo's stimulator.

No assertion on how long anything takes (that is ``bench/trigger_to_stimulus.py``); every
wait is bounded.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from drivers.errors import LimitError
from drivers.serial_input import time_critical
from drivers.tcs import TcsDriver
from drivers.thermal_safety import ThermalLimits
from drivers.trigger_box import SerialTriggerSource
from drivers.volumes import Volume, VolumeCounter
from qst_station.clock import Clock, LslClock
from qst_station.demo_session import DemoPlan, _Stimulator
from sim.scanner import SimulatedScanner
from sim.tcs import SimulatedTcs
from tests.helpers import wait_for

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


# ---------------------------------------------------------------------- scanner


def test_scanner_writes_each_volume_when_due_not_on_its_tick() -> None:
    """With a one-minute fallback tick, only waking for the due times can send them all."""
    clock = LslClock()
    scanner = SimulatedScanner(0.05, volumes=6, clock=clock, start_delay_s=0.05,
                               tick_real_s=60.0)
    with scanner:
        assert scanner.wait_done(20.0)
    assert [s.index for s in scanner.sent] == [1, 2, 3, 4, 5, 6]
    for send in scanner.sent:  # never before its place on the grid
        assert send.time >= scanner.scheduled[send.index]


def test_scanner_finished_is_reported_when_the_last_volume_is_dropped() -> None:
    scanner = SimulatedScanner(0.05, volumes=3, clock=LslClock(), drop=[3])
    with scanner:
        assert scanner.wait_done(20.0)
    assert [s.index for s in scanner.sent] == [1, 2] and scanner.dropped == [3]


# ---------------------------------------------------------------------- subscribers


def test_time_critical_subscribers_are_called_before_the_others() -> None:
    clock = LslClock()
    calls: list[tuple[str, int]] = []

    def later(volume: Volume) -> None:
        calls.append(("later", volume.index))

    @time_critical
    def critical(volume: Volume) -> None:
        calls.append(("critical", volume.index))

    scanner = SimulatedScanner(0.05, volumes=4, clock=clock, start_delay_s=0.2)
    source = SerialTriggerSource(scanner.port, clock=clock, counter=VolumeCounter(tr_s=0.05))
    source.subscribe(later)
    source.subscribe(critical)
    stop_first = source.subscribe(lambda v: calls.append(("first", v.index)), first=True)
    source.connect()
    try:
        with scanner:
            assert wait_for(lambda: len(calls) >= 6, clock, 10.0)
            stop_first()
            assert scanner.wait_done(10.0)
            assert wait_for(lambda: ("later", 4) in calls, clock, 5.0)
    finally:
        source.disconnect()
    assert calls[:3] == [("critical", 1), ("first", 1), ("later", 1)]
    assert calls[3:6] == [("critical", 2), ("first", 2), ("later", 2)]
    assert [name for name, index in calls if index == 4] == ["critical", "later"]


# ---------------------------------------------------------------------- TcsDriver.try_start


def _program(driver: TcsDriver, target: float = 40.0, verify: bool = True) -> None:
    driver.enable_zones([1, 2, 3, 4, 5])
    driver.configure(0, target=target, rise=100.0, ret=100.0, duration_ms=200)
    if verify:
        driver.verify_settings()


def _starts(sim: SimulatedTcs) -> int:
    with sim.lock:
        return sum(1 for cmd in sim.device.log if cmd.name == "start")


def test_try_start_sends_L_when_programmed_and_verified(
        sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    _program(driver)
    assert driver.try_start()
    assert driver.busy and driver.stimulating
    assert wait_for(lambda: _starts(sim) == 1, clock, 2.0)


def test_try_start_never_reads_back_settings_itself(
        sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    _program(driver, verify=False)
    assert not driver.try_start()  # start() would read P back first: left to it
    assert not driver.busy
    driver.start()  # verifies, then starts
    assert wait_for(lambda: _starts(sim) == 1, clock, 2.0)


def test_try_start_never_waits_for_the_wire(
        sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    _program(driver)
    held, release = threading.Event(), threading.Event()

    def hold_wire() -> None:  # another command in progress
        with driver._wire_lock:
            held.set()
            release.wait(5.0)

    other = threading.Thread(target=hold_wire)
    other.start()
    try:
        assert held.wait(5.0)
        assert not driver.try_start()
    finally:
        release.set()
        other.join(5.0)
    assert not driver.busy and _starts(sim) == 0
    assert driver.try_start()
    assert wait_for(lambda: _starts(sim) == 1, clock, 2.0)


def test_try_start_keeps_every_check_of_start(
        sim: SimulatedTcs, driver: TcsDriver, clock: Clock) -> None:
    driver.enable_zones([])
    driver.verify_settings()
    with pytest.raises(LimitError, match="no zone is enabled"):
        driver.try_start()
    _program(driver, target=45.0)
    driver.limits = ThermalLimits(max_celsius=44.0)  # checked again: a new limits object
    with pytest.raises(LimitError):
        driver.try_start()
    with pytest.raises(LimitError):
        driver.start()
    driver.limits = ThermalLimits()
    assert driver.try_start()
    with pytest.raises(LimitError, match="running or returning"):
        driver.try_start()  # the first one is still running
    assert wait_for(lambda: _starts(sim) == 1, clock, 2.0)
    generation = driver.generation
    driver.abort()
    assert wait_for(lambda: not driver.busy, clock, 5.0)
    _program(driver)
    with pytest.raises(Exception, match="STOP was requested"):
        driver.try_start(generation)
    assert _starts(sim) == 1


# ---------------------------------------------------------------------- the demo's stimulator


class FakeTcs:
    def __init__(self, fast: bool | Exception) -> None:
        self.fast = fast
        self.calls: list[str] = []

    def try_start(self) -> bool:
        self.calls.append("try_start")
        if isinstance(self.fast, Exception):
            raise self.fast
        return self.fast

    def start(self) -> None:
        self.calls.append("start")


class FakeRecording:
    def __init__(self) -> None:
        self.clock = LslClock()
        self.events: list[tuple[str, dict[str, Any], float | None]] = []

    def event(self, kind: str, payload: dict[str, Any], timestamp: float | None = None) -> None:
        self.events.append((kind, payload, timestamp))


@pytest.mark.parametrize("fast", [True, False])
def test_stimulator_starts_from_the_reader_or_falls_back_to_its_thread(fast: bool) -> None:
    tcs, recording = FakeTcs(fast), FakeRecording()
    plan = DemoPlan(volumes=6, every=3, first=3)
    stimulator = _Stimulator(tcs, recording, plan)  # type: ignore[arg-type]
    try:
        stimulator.on_volume(Volume(2, 1.0, False))  # not scheduled
        stimulator.on_volume(Volume(3, 2.0, True))  # inferred: never started blind
        assert tcs.calls == []
        stimulator.on_volume(Volume(3, 3.0, False))
        assert stimulator.changed.wait(5.0)
    finally:
        stimulator.close()
    assert tcs.calls == (["try_start"] if fast else ["try_start", "start"])
    [(kind, payload, onset)] = recording.events
    assert kind == "stimulus_onset" and payload["volume"] == 3 and payload["trial"] == 1
    assert isinstance(onset, float)
    assert stimulator.given == [(1, plan.targets_c[0], onset)]


def test_stimulator_records_a_refused_start_and_goes_on() -> None:
    tcs, recording = FakeTcs(LimitError("too hot")), FakeRecording()
    plan = DemoPlan(volumes=6, every=3, first=3)
    stimulator = _Stimulator(tcs, recording, plan)  # type: ignore[arg-type]
    try:
        stimulator.on_volume(Volume(3, 3.0, False))
    finally:
        stimulator.close()
    assert stimulator.errors == ["volume 3: too hot"]
    assert recording.events == [("note", {"message": "stimulus not given: too hot"}, None)]
    assert stimulator.given == []
