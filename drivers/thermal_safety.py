"""Thermal safety limits: temperature range, rates and the dose envelope.

The dose envelope gives the longest allowed plateau at each temperature. Between its
points the allowed time is interpolated linearly in log(time), as burn-injury curves are
(Moritz & Henriques). Below the first point a temperature may be held indefinitely.
A configured envelope must be at least as strict as the TCS II firmware's own
time/temperature function (2 s at 60 °C, 12 s at 50 °C).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from drivers.errors import LimitError

HARD_MAX_C = 60.0
DEVICE_ENVELOPE: tuple[tuple[float, float], ...] = ((50.0, 12.0), (60.0, 2.0))
# Defaults: indefinite up to 44 °C; 45 °C for 300 s (the usual review safety margin);
# allows the published tonic-heat protocol of 46.5 °C for 120 s (160 s allowed);
# then down to the firmware's 12 s at 50 °C and 2 s at 60 °C.
DEFAULT_ENVELOPE: tuple[tuple[float, float], ...] = (
    (44.0, 3600.0),
    (45.0, 300.0),
    (47.0, 130.0),
    (50.0, 12.0),
    (60.0, 2.0),
)


def envelope_seconds(points: Sequence[tuple[float, float]], celsius: float) -> float:
    """Longest allowed time at ``celsius`` under the envelope ``points``."""
    if celsius < points[0][0]:
        return math.inf
    for (t0, s0), (t1, s1) in zip(points, points[1:], strict=False):
        if t0 <= celsius <= t1:
            frac = (celsius - t0) / (t1 - t0)
            return math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0)))
    t_last, s_last = points[-1]
    return s_last if celsius == t_last else 0.0


@dataclass(frozen=True)
class ThermalLimits:
    """Configured limits of one thermal stimulator. Validated on construction."""

    min_celsius: float = 0.0
    max_celsius: float = 50.0
    max_rate: float = 300.0  # °C/s
    envelope: tuple[tuple[float, float], ...] = field(default=DEFAULT_ENVELOPE)
    follow_heartbeat_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_celsius < self.max_celsius <= HARD_MAX_C:
            raise ValueError(
                f"temperature limits must satisfy 0 <= min < max <= {HARD_MAX_C} °C, "
                f"got min {self.min_celsius}, max {self.max_celsius}"
            )
        if not 0.1 <= self.max_rate <= 300.0:
            raise ValueError(f"max_rate must be 0.1-300 °C/s (the device's range), "
                             f"got {self.max_rate}")
        pts = tuple((float(t), float(s)) for t, s in self.envelope)
        object.__setattr__(self, "envelope", pts)
        if not pts:
            raise ValueError("dose envelope needs at least one (temperature, seconds) point")
        temps = [t for t, _ in pts]
        secs = [s for _, s in pts]
        if temps != sorted(set(temps)) or any(b > a for a, b in zip(secs, secs[1:], strict=False)):
            raise ValueError("dose envelope: temperatures must rise and times must not grow")
        if any(s <= 0 for s in secs):
            raise ValueError("dose envelope: every time must be positive")
        for step in range(0, 101):
            celsius = 50.0 + step * 0.1
            if envelope_seconds(pts, celsius) > envelope_seconds(DEVICE_ENVELOPE, celsius) + 1e-9:
                raise ValueError(
                    f"dose envelope allows longer than the device at {celsius:.1f} °C "
                    "(device: 12 s at 50 °C, 2 s at 60 °C)"
                )
        if not self.follow_heartbeat_s > 0:
            raise ValueError("follow_heartbeat_s must be positive")

    def max_hold_s(self, celsius: float) -> float:
        return envelope_seconds(self.envelope, celsius)

    def check_temperature(self, what: str, celsius: float) -> None:
        if not self.min_celsius <= celsius <= self.max_celsius:
            raise LimitError(
                f"{what} {celsius:.2f} °C is outside the configured limits "
                f"{self.min_celsius:g}-{self.max_celsius:g} °C"
            )

    def check_rate(self, what: str, rate: float) -> None:
        if not 0 < rate <= self.max_rate:
            raise LimitError(f"{what} {rate:g} °C/s is outside the limit 0-{self.max_rate:g} °C/s")

    def check_baseline(self, celsius: float) -> None:
        self.check_temperature("baseline", celsius)
        if math.isfinite(self.max_hold_s(celsius)):
            raise LimitError(
                f"baseline {celsius:.1f} °C cannot be held indefinitely under the dose envelope "
                f"(it allows {self.max_hold_s(celsius):.0f} s)"
            )


@dataclass(frozen=True)
class ZoneStimulus:
    """What one zone will do on ``L``: ramp from baseline to target, hold, return."""

    target: float
    rise: float
    ret: float
    duration_ms: int

    def ramp_s(self, baseline: float) -> float:
        return abs(self.target - baseline) / self.rise

    def plateau_s(self, baseline: float) -> float:
        """Time at target: duration covers ramp plus plateau, not the return."""
        return max(0.0, self.duration_ms / 1000.0 - self.ramp_s(baseline))

    def peak(self, baseline: float) -> float:
        """Temperature actually reached (the ramp may end before the target)."""
        reach = self.rise * self.duration_ms / 1000.0
        if self.target >= baseline:
            return min(self.target, baseline + reach)
        return max(self.target, baseline - reach)


    def segments(self, baseline: float) -> list[tuple[float, float, float]]:
        """The planned trajectory as (seconds, from °C, to °C): rise, plateau, return."""
        peak = self.peak(baseline)
        rise_s = abs(peak - baseline) / self.rise
        return [
            (rise_s, baseline, peak),
            (self.plateau_s(baseline), peak, peak),
            (abs(peak - baseline) / self.ret, peak, baseline),
        ]


def check_stimulus(limits: ThermalLimits, zone: int, baseline: float, stim: ZoneStimulus) -> None:
    """Raise LimitError if one zone's programmed stimulus breaks a limit.

    The dose counts the whole trajectory (rise, plateau and return), so slow ramps or a
    slow return near the envelope are refused as well as long plateaus.
    """
    where = f"zone {zone}"
    limits.check_temperature(f"{where} target", stim.target)
    limits.check_rate(f"{where} rise rate", stim.rise)
    limits.check_rate(f"{where} return rate", stim.ret)
    dose = stimulus_dose(limits, baseline, stim)
    if dose > 1.0 + 1e-9:
        peak = stim.peak(baseline)
        raise LimitError(
            f"{where}: {stim.plateau_s(baseline):.2f} s at {peak:.1f} °C with its ramps uses "
            f"{dose:.0%} of the dose envelope ({limits.max_hold_s(peak):.1f} s allowed at "
            f"{peak:.1f} °C)"
        )


@lru_cache(maxsize=4096)
def stimulus_dose(limits: ThermalLimits, baseline: float, stim: ZoneStimulus) -> float:
    """Fraction of the dose envelope one stimulus uses, ramps and return included."""
    return trajectory_dose(limits, stim.segments(baseline))


def trajectory_dose(limits: ThermalLimits, segments: Sequence[tuple[float, float, float]]
                    ) -> float:
    """Dose of linear (seconds, from °C, to °C) segments: the sum of ``dt / max_hold(T)``.

    Miner's rule over the burn-injury envelope; 1.0 is the limit. Time below the
    envelope's first temperature costs nothing. Integrated in steps of at most 10 ms.
    """
    threshold = limits.envelope[0][0]
    dose = 0.0
    for seconds, start, end in segments:
        if seconds <= 0 or max(start, end) < threshold:
            continue
        steps = min(2000, max(1, math.ceil(seconds / 0.01)))
        for i in range(steps):
            allowed = limits.max_hold_s(start + (end - start) * (i + 0.5) / steps)
            if allowed <= 0:
                return math.inf
            dose += (seconds / steps) / allowed
    return dose


def profile_dose(limits: ThermalLimits, baseline: float, segments: Sequence[tuple[float, float]]
                 ) -> float:
    """Dose of a device profile of (seconds, end °C) segments starting at ``baseline``."""
    linear, start = [], baseline
    for seconds, end in segments:
        linear.append((seconds, start, end))
        start = end
    return trajectory_dose(limits, linear)
