"""The TCS II's programmable state and how each command changes it (pure).

The driver predicts the device state after every command it is about to send with
:func:`apply` and refuses the command if :func:`check` fails; the simulator keeps its
state with the same function, and the property tests replay wire bytes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from drivers.errors import LimitError
from drivers.tcs_wire import ZONES, Command
from drivers.thermal_safety import ThermalLimits, ZoneStimulus, check_stimulus, profile_dose

# Power-on values from the manual's table; the rates are probe dependent (assumed 10 °C/s).
DEFAULT_ZONE = ZoneStimulus(target=10.0, rise=10.0, ret=10.0, duration_ms=100)


@dataclass(frozen=True)
class Settings:
    baseline: float = 30.0
    zones: tuple[ZoneStimulus, ...] = (DEFAULT_ZONE,) * ZONES
    enabled: tuple[bool, ...] = (False,) * ZONES
    max_temperature: float | None = None  # Om; unknown until the driver sets it
    profile: tuple[tuple[int, int], ...] = ()  # (10 ms units, 0.1 °C)
    profile_zones: tuple[bool, ...] = (False,) * ZONES
    profile_enabled: tuple[bool, ...] = (False,) * ZONES
    trigger_number: int = 255
    trigger_pulse_ms: int = 300
    fine: bool = False
    stream_idle: bool = True
    stream_stimulation: bool = True
    trigger_input: bool = False
    mri_filter: int = 1

    def enabled_zones(self) -> list[int]:
        return [i + 1 for i, on in enumerate(self.enabled) if on]

    def profile_segments_s(self) -> list[tuple[float, float]]:
        """The profile as (seconds, end °C) segments."""
        return [(d / 100.0, t / 10.0) for d, t in self.profile]


def _set_zone(settings: Settings, zone: int, **changes: float | int) -> Settings:
    zones = list(settings.zones)
    for i in range(ZONES) if zone == 0 else [zone - 1]:
        zones[i] = replace(zones[i], **changes)
    return replace(settings, zones=tuple(zones))


def apply(settings: Settings, cmd: Command) -> Settings:
    """The state after ``cmd``; commands that change nothing return ``settings``."""
    v = cmd.values
    match cmd.name:
        case "baseline":
            return replace(settings, baseline=v[0] / 10.0)
        case "enable_zones":
            return replace(settings, enabled=tuple(bool(x) for x in v))
        case "target":
            return _set_zone(settings, v[0], target=v[1] / 10.0)
        case "fine_target":
            return _set_zone(settings, v[0], target=v[1] / 100.0)
        case "rise_rate":
            return _set_zone(settings, v[0], rise=v[1] / 10.0)
        case "fine_rise_rate":
            return _set_zone(settings, v[0], rise=v[1] / 100.0)
        case "return_rate":
            return _set_zone(settings, v[0], ret=v[1] / 10.0)
        case "duration":
            return _set_zone(settings, v[0], duration_ms=v[1])
        case "trigger_setup":
            return replace(settings, trigger_number=v[0], trigger_pulse_ms=v[1])
        case "max_temperature":
            return replace(settings, max_temperature=v[0] / 10.0)
        case "profile_write":
            return replace(settings, profile=cmd.segments, profile_zones=tuple(map(bool, v[:5])))
        case "profile_enable":
            return replace(settings, profile_enabled=tuple(bool(x) for x in v))
        case "fine_resolution":
            return replace(settings, fine=True)
        case "stream_off":
            return replace(settings, stream_idle=False, stream_stimulation=False)
        case "stream_idle":
            return replace(settings, stream_idle=True)
        case "stream_stimulation":
            return replace(settings, stream_stimulation=True)
        case "trigger_input_on":
            return replace(settings, trigger_input=True)
        case "trigger_input_off":
            return replace(settings, trigger_input=False)
        case "mri_filter":
            return replace(settings, mri_filter=v[0])
        case "reset":
            return Settings()
    return settings


def check(limits: ThermalLimits, s: Settings) -> None:
    """Raise LimitError naming the first limit the state breaks."""
    limits.check_baseline(s.baseline)
    for zone, stim in enumerate(s.zones, start=1):
        check_stimulus(limits, zone, s.baseline, stim)
    if s.max_temperature is not None and s.max_temperature > limits.max_celsius:
        raise LimitError(
            f"device maximum temperature {s.max_temperature:.1f} °C is above the configured "
            f"maximum {limits.max_celsius:g} °C"
        )
    if s.profile and any(s.profile_enabled):  # a stored, disabled profile cannot run
        check_profile(limits, s.baseline, s.profile_segments_s())


def check_profile(limits: ThermalLimits, baseline: float,
                  segments: list[tuple[float, float]]) -> None:
    start = baseline
    for i, (seconds, end) in enumerate(segments, start=1):
        limits.check_temperature(f"profile segment {i} end", end)
        rate = abs(end - start) / seconds
        if rate > limits.max_rate:
            raise LimitError(
                f"profile segment {i}: {rate:.1f} °C/s exceeds the rate limit "
                f"{limits.max_rate:g} °C/s"
            )
        start = end
    if math.isfinite(limits.max_hold_s(start)):
        raise LimitError(
            f"profile ends at {start:.1f} °C, which cannot be held indefinitely; "
            "end it at a safe temperature"
        )
    dose = profile_dose(limits, baseline, segments)
    if dose > 1.0:
        raise LimitError(f"profile uses {dose:.0%} of the dose envelope (limit 100%)")


def mismatches(s: Settings, reported: dict[str, object]) -> list[str]:
    """Where the device's reported parameters differ from the predicted state ``s``."""
    found: list[str] = []
    tolerance = 0.051  # P reports 0.1 units; Ot/Ov set 0.01 units

    def differ(what: str, want: float, got: object) -> None:
        if not isinstance(got, int | float) or abs(want - got) > tolerance:
            found.append(f"{what} {got} (sent {want:g})")

    differ("baseline", s.baseline, reported.get("baseline"))
    if reported.get("enabled") != s.enabled:
        found.append(f"enabled zones {reported.get('enabled')} (sent {s.enabled})")
    zones = reported.get("zones")
    for i, z in enumerate(s.zones, start=1):
        got = zones.get(i) if isinstance(zones, dict) else None
        if got is None:
            found.append(f"zone {i} missing")
            continue
        for name, want, value in zip(("target", "rise", "return"),
                                     (z.target, z.rise, z.ret), got[:3], strict=True):
            differ(f"zone {i} {name}", want, value)
        if got[3] != z.duration_ms:
            found.append(f"zone {i} duration {got[3]} ms (sent {z.duration_ms})")
    if s.max_temperature is not None:
        differ("Om", s.max_temperature, reported.get("max_temperature"))
    return found
