"""Property: no sequence of driver calls, with any arguments, puts an out-of-limit command
on the wire. The bytes written are replayed through the device-state model and every
state they lead to is checked against the limits."""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from drivers import tcs_settings as ts
from drivers import tcs_wire as wire
from drivers.errors import DeviceError, LimitError
from drivers.tcs import TcsDriver
from drivers.thermal_safety import ThermalLimits
from qst_station.clock import SimulatedClock
from sim.loopback import LoopbackTransport
from sim.tcs_device import TcsDevice

temps = st.one_of(
    st.floats(min_value=-20, max_value=80, allow_nan=False),
    st.sampled_from([0.0, 44.0, 45.0, 46.5, 50.0, 60.0, math.nan, math.inf, -math.inf]),
)
rates = st.one_of(st.floats(min_value=-5, max_value=1200), st.sampled_from([0.1, 300.0, 999.9]))
zones = st.integers(min_value=-1, max_value=6)
durations = st.integers(min_value=-10, max_value=200_000)
segments = st.lists(
    st.tuples(st.sampled_from([0.005, 0.01, 0.5, 1.0, 5.0, 9.99, 10.0]), temps),
    min_size=1,
    max_size=6,
)
Action = Callable[[TcsDriver], object]

actions: st.SearchStrategy[Action] = st.one_of(
    st.builds(lambda c: lambda d: d.set_baseline(c), temps),
    st.builds(lambda z: lambda d: d.enable_zones(z), st.lists(zones, max_size=6)),
    st.builds(
        lambda z, t, r, q, ms: lambda d: d.configure(z, target=t, rise=r, ret=q, duration_ms=ms),
        zones, temps, rates, rates, durations,
    ),
    st.builds(lambda z, t: lambda d: d.set_target(z, t), zones, temps),
    st.builds(lambda z, t: lambda d: d.set_target_fine(z, t), zones, temps),
    st.builds(lambda z, r: lambda d: d.set_rise_rate(z, r), zones, rates),
    st.builds(lambda z, r: lambda d: d.set_rise_rate_fine(z, r), zones, rates),
    st.builds(lambda z, r: lambda d: d.set_return_rate(z, r), zones, rates),
    st.builds(lambda z, ms: lambda d: d.set_duration(z, ms), zones, durations),
    st.builds(lambda t: lambda d: d.set_max_temperature(t), temps),
    st.builds(lambda t: lambda d: d.follow(t), temps),
    st.builds(lambda s, z: lambda d: d.upload_profile(s, z), segments,
              st.lists(zones, min_size=1, max_size=3)),
    st.builds(lambda on: lambda d: d.set_trigger_input(on), st.booleans()),
    st.just(lambda d: d.start()),
    st.just(lambda d: d.abort()),
    st.just(lambda d: d.reset()),
)
limit_sets = st.builds(
    lambda low, span, rate: ThermalLimits(min_celsius=low, max_celsius=min(60.0, low + span),
                                          max_rate=rate),
    st.sampled_from([0.0, 5.0, 10.0, 20.0]),
    st.sampled_from([25.0, 30.0, 40.0, 60.0]),
    st.sampled_from([1.0, 10.0, 300.0]),
)


def _replay_and_check(limits: ThermalLimits, written: list[bytes]) -> None:
    """Check every state, except inside the connect/reset programming block.

    That block starts from the device's unknown prior settings (modelled as power-on
    defaults), after ``A`` and ``Osd``; it ends with ``Ob``.
    """
    state, programming = ts.Settings(), True
    for raw in written:
        parser = wire.CommandParser()
        cmds = [c for c in (parser.feed(b) for b in raw) if c is not None]
        assert len(cmds) == 1 and not parser.errors, f"malformed command on the wire: {raw!r}"
        state = ts.apply(state, cmds[0])
        if cmds[0].name == "reset":
            programming = True
        if programming:
            assert not state.trigger_input or cmds[0].name == "identify"
            programming = cmds[0].name != "stream_stimulation"
            continue
        ts.check(limits, state)


@given(limits=limit_sets, calls=st.lists(actions, min_size=1, max_size=25))
def test_no_out_of_limit_command_reaches_the_wire(
    limits: ThermalLimits, calls: list[Action]
) -> None:
    clock = SimulatedClock(speed=50.0)
    transport = LoopbackTransport(TcsDevice(seed=0), clock)
    baseline = (max(20.0, limits.min_celsius) + min(limits.max_celsius, 44.0)) / 2
    driver = TcsDriver("loop", limits=limits, clock=clock, baseline=baseline, quiet_s=0.005,
                       transport_factory=lambda port: transport)
    driver.connect()
    try:
        for call in calls:
            before = len(transport.written)
            try:
                call(driver)
            except LimitError:
                assert len(transport.written) == before, "a refused call wrote bytes"
            except DeviceError:
                pass
    finally:
        driver.disconnect()
    assert transport.written[:2] == [b"A", b"?"]
    _replay_and_check(limits, transport.written)
