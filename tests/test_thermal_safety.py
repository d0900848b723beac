"""Safety limits: temperature range, rates, dose envelope, profiles."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from drivers import tcs_settings as ts
from drivers.errors import LimitError
from drivers.thermal_safety import (
    DEFAULT_ENVELOPE,
    DEVICE_ENVELOPE,
    ThermalLimits,
    ZoneStimulus,
    check_stimulus,
    envelope_seconds,
    stimulus_dose,
    trajectory_dose,
)


def test_default_envelope_matches_device_and_allows_tonic_heat() -> None:
    limits = ThermalLimits(max_celsius=60.0)
    assert limits.max_hold_s(60.0) == pytest.approx(2.0)
    assert limits.max_hold_s(50.0) == pytest.approx(12.0)
    assert limits.max_hold_s(46.5) >= 120.0  # published tonic heat: 46.5 °C for 120 s
    assert limits.max_hold_s(45.0) == pytest.approx(300.0)
    assert math.isinf(limits.max_hold_s(43.9))
    for celsius in (50.0, 52.5, 55.0, 57.5, 60.0):
        assert limits.max_hold_s(celsius) <= envelope_seconds(DEVICE_ENVELOPE, celsius) + 1e-9


def test_envelope_is_monotonic() -> None:
    temps = [40 + 0.1 * i for i in range(201)]
    times = [envelope_seconds(DEFAULT_ENVELOPE, t) for t in temps]
    assert all(b <= a for a, b in zip(times, times[1:], strict=False))
    assert envelope_seconds(DEFAULT_ENVELOPE, 60.1) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_celsius": 61.0}, "<= 60"),
        ({"min_celsius": 20.0, "max_celsius": 20.0}, "min < max"),
        ({"max_rate": 400.0}, "max_rate"),
        ({"envelope": ((50.0, 30.0), (60.0, 2.0))}, "longer than the device"),
        ({"envelope": ((45.0, 10.0), (44.0, 20.0))}, "must rise"),
        ({"envelope": ()}, "at least one"),
    ],
)
def test_invalid_limits_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ThermalLimits(**kwargs)  # type: ignore[arg-type]


def test_plateau_excludes_ramp_and_return() -> None:
    stim = ZoneStimulus(target=60.0, rise=300.0, ret=300.0, duration_ms=300)
    assert stim.ramp_s(30.0) == pytest.approx(0.1)
    assert stim.plateau_s(30.0) == pytest.approx(0.2)
    short = ZoneStimulus(target=50.0, rise=1.0, ret=1.0, duration_ms=5000)
    assert short.peak(32.0) == pytest.approx(37.0)  # ramp cut off before the target
    assert short.plateau_s(32.0) == 0.0


def test_stimulus_checks_name_the_limit() -> None:
    limits = ThermalLimits()
    check_stimulus(limits, 1, 32.0, ZoneStimulus(46.5, 1.0, 5.0, int((14.5 + 120) * 1000)))
    with pytest.raises(LimitError, match=r"zone 2: 20.00 s at 50.0 °C with its ramps uses 169%"):
        check_stimulus(limits, 2, 32.0, ZoneStimulus(50.0, 18.0, 5.0, 21000))
    with pytest.raises(LimitError, match="zone 1 target 51.00 °C is outside"):
        check_stimulus(limits, 1, 32.0, ZoneStimulus(51.0, 1.0, 1.0, 100))
    with pytest.raises(LimitError, match="zone 3 return rate 0 °C/s"):
        check_stimulus(limits, 3, 32.0, ZoneStimulus(40.0, 1.0, 0.0, 100))
    cold = ThermalLimits(min_celsius=5.0)
    with pytest.raises(LimitError, match="outside the configured limits 5-50"):
        check_stimulus(cold, 1, 32.0, ZoneStimulus(0.0, 1.0, 1.0, 100))


def test_baseline_must_be_holdable_indefinitely() -> None:
    limits = ThermalLimits()
    limits.check_baseline(32.0)
    with pytest.raises(LimitError, match="cannot be held indefinitely"):
        limits.check_baseline(45.0)


def test_profile_checks() -> None:
    limits = ThermalLimits()
    ts.check_profile(limits, 32.0, [(1.0, 40.0), (5.0, 40.0), (1.0, 32.0)])
    with pytest.raises(LimitError, match="ends at 46.0 °C"):
        ts.check_profile(limits, 32.0, [(1.0, 46.0)])
    with pytest.raises(LimitError, match="exceeds the rate limit"):
        ts.check_profile(ThermalLimits(max_rate=5.0), 32.0, [(1.0, 40.0), (1.0, 32.0)])
    hot = [(1.0, 50.0)] + [(9.99, 50.0)] * 2 + [(1.0, 32.0)]
    with pytest.raises(LimitError, match="of the dose envelope"):
        ts.check_profile(limits, 32.0, hot)


def test_om_above_configured_maximum_is_refused() -> None:
    limits = ThermalLimits(max_celsius=48.0)
    state = ts.Settings(zones=(ZoneStimulus(40.0, 10.0, 10.0, 100),) * 5, max_temperature=50.0)
    with pytest.raises(LimitError, match="device maximum temperature 50.0"):
        ts.check(limits, state)


def test_slow_ramps_and_returns_count_towards_the_dose() -> None:
    limits = ThermalLimits()
    fast = ZoneStimulus(target=50.0, rise=300.0, ret=300.0, duration_ms=11_000)
    check_stimulus(limits, 1, 32.0, fast)
    slow_return = ZoneStimulus(target=50.0, rise=300.0, ret=0.1, duration_ms=11_000)
    with pytest.raises(LimitError, match="dose envelope"):
        check_stimulus(limits, 1, 32.0, slow_return)
    slow_rise = ZoneStimulus(target=50.0, rise=0.1, ret=10.0, duration_ms=82_000)
    assert slow_rise.plateau_s(43.0) == pytest.approx(12.0)
    with pytest.raises(LimitError, match="dose envelope"):
        check_stimulus(limits, 1, 43.0, slow_rise)
    ramps = trajectory_dose(limits, [(0.06, 32.0, 50.0), (0.06, 50.0, 32.0)])
    assert stimulus_dose(limits, 32.0, fast) == pytest.approx((11.0 - 0.06) / 12.0 + ramps,
                                                             rel=1e-3)


def test_a_stored_profile_is_only_checked_when_enabled() -> None:
    limits = ThermalLimits()
    hot = ((100, 500),)  # ends at 50 °C: not allowed to run
    stored = ts.Settings(zones=(ZoneStimulus(32.0, 10.0, 10.0, 100),) * 5, profile=hot)
    ts.check(limits, stored)
    with pytest.raises(LimitError, match="ends at 50.0 °C"):
        ts.check(limits, replace(stored, profile_enabled=(True, False, False, False, False)))
