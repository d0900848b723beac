"""Shared fixtures and helpers of the Medoc tests: simulator, driver, status log, waits.

The clock runs 10x real time, shared by driver and simulator. Every wait is bounded and
conditional (no timed assertions); the simulator's noise is seeded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceSilent
from drivers.medoc import MedocDriver, MedocSample
from drivers.medoc_wire import Command, Status
from qst_station.clock import SimulatedClock
from sim.medoc_device import DEFAULT_PROGRAMS, Program
from sim.medoc_server import SimulatedMedoc

SPEED = 10.0
WAIT_S = 5.0  # real seconds, an upper bound only
PROGRAMS = {
    **DEFAULT_PROGRAMS,
    60: Program("warm 38 °C held 600 s", target=38.0, rise=4.0, ret=4.0, hold_s=600.0),
    61: Program("two short 39 °C stimuli", target=39.0, rise=8.0, ret=8.0, hold_s=0.5,
                stimuli=2),
    99: Program("53 °C: above the configured 50 °C", target=53.0, rise=8.0, ret=8.0, hold_s=5.0),
}


def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Events:
    """``on_status`` reports as (kind, message); bounded waits."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, message: str) -> None:
        with self._cond:
            self.items.append((kind, message))
            self._cond.notify_all()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.items]

    def wait_for(self, kind: str, contains: str = "", timeout: float = WAIT_S) -> str:
        def find() -> str | None:
            return next((m for k, m in self.items if k == kind and contains in m), None)

        with self._cond:
            self._cond.wait_for(lambda: find() is not None, timeout)
            found = find()
        assert found is not None, f"no {kind!r} report containing {contains!r}: {self.items}"
        return found


def commands(sim: SimulatedMedoc, since: int = 0) -> list[int]:
    return [r.command for r in sim.device.log[since:]]


def sent(sim: SimulatedMedoc, command: Command, since: int = 0) -> int:
    return commands(sim, since).count(command)


@pytest.fixture
def mclock() -> SimulatedClock:
    return SimulatedClock(speed=SPEED)


def make_sim(mclock: SimulatedClock, **kwargs: object) -> SimulatedMedoc:
    options: dict = {"seed": 7, "programs": PROGRAMS, **kwargs}
    return SimulatedMedoc(mclock, **options)


@pytest.fixture
def sim(mclock: SimulatedClock) -> Iterator[SimulatedMedoc]:
    with make_sim(mclock) as simulator:
        yield simulator


def make_driver(sim: SimulatedMedoc, mclock: SimulatedClock, **kwargs: object) -> MedocDriver:
    options: dict = {"clock": mclock, "reply_timeout_s": 0.5, **kwargs}
    return MedocDriver("127.0.0.1", sim.port, **options)


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def driver(sim: SimulatedMedoc, mclock: SimulatedClock, events: Events) -> Iterator[MedocDriver]:
    medoc = make_driver(sim, mclock)
    medoc.on_status(events)
    medoc.connect()
    yield medoc
    medoc.disconnect()


@pytest.fixture
def samples(driver: MedocDriver) -> list[MedocSample]:
    got: list[MedocSample] = []
    driver.subscribe(got.append)
    return got


def run_to_running(driver: MedocDriver, code: int) -> Status:
    driver.select_program(code)
    return driver.start()



def answers(driver: MedocDriver) -> bool:
    """True if MMS answers GET_STATUS now."""
    try:
        return driver.get_status().ok
    except DeviceSilent:
        return False
