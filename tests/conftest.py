"""Test setup: offscreen Qt, LSL confined to this machine, seeded hypothesis, sim fixtures."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qst_station.lsl_setup import machine_scope_config  # noqa: E402

os.environ["LSLAPICFG"] = str(machine_scope_config(f"qst-station-tests-{os.getpid()}"))

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from drivers.tcs import TcsDriver  # noqa: E402
from qst_station.clock import Clock, LslClock, SimulatedClock  # noqa: E402
from sim.tcs import SimulatedTcs  # noqa: E402

settings.register_profile(
    "qst", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("qst")


@pytest.fixture
def clock() -> Clock:
    return LslClock()


@pytest.fixture
def fast_clock() -> Clock:
    """Ten times real time, shared by simulator and driver."""
    return SimulatedClock(speed=10.0)


@pytest.fixture
def sim(clock: Clock) -> Iterator[SimulatedTcs]:
    with SimulatedTcs(clock, seed=1) as simulator:
        yield simulator


@pytest.fixture
def driver(sim: SimulatedTcs, clock: Clock) -> Iterator[TcsDriver]:
    tcs = TcsDriver(sim.port, clock=clock, quiet_s=0.05)
    tcs.connect()
    yield tcs
    tcs.disconnect()
