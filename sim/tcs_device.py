"""A simulated QST.Lab TCS II: command handling and per-zone thermal physics (no I/O).

Bytes go in through :meth:`TcsDevice.receive`, time advances through :meth:`step`, and
both return the bytes the device sends back. Commands are decoded and encoded with the
same functions as the driver (:mod:`drivers.tcs_wire`, :mod:`drivers.tcs_settings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from drivers import tcs_settings as ts
from drivers import tcs_wire as wire
from drivers.tcs_settings import Settings
from drivers.thermal_safety import DEVICE_ENVELOPE, envelope_seconds

PHYSICAL_MAX_RATE = 300.0  # °C/s
LAG_S = 0.02  # first-order lag of the probe surface behind the setpoint
NOISE_C = 0.02  # sensor noise, standard deviation
MISMATCH_C = 3.0  # firmware aborts when a zone is this far from where it should be
MISMATCH_S = 0.05
STREAM_IDLE_S = 1.0
STREAM_STIM_S = 0.01
HELP_LINES = (
    "TCS II.1 thermal cutaneous stimulator (qst-station simulator)",
    "Firmware: 2.4-sim",
    "Probe ID: SIM-0001",
    "Probe TYPE: T03 5 zones",
    "Commands: N S C V R D T L A E F P K B Q G H ? Oa Ob Oc Od Oe Of Og Om Oo Os Ot Ov U X Z",
)


@dataclass
class Zone:
    temperature: float
    setpoint: float
    expected: float
    phase: str = "idle"  # idle | ramp | return | follow | profile
    target: float = 0.0
    rate: float = 1.0
    end_at: float = math.inf  # when the ramp+plateau ends (then return)
    profile_start: float = 0.0
    broken: bool = False
    mismatch_since: float | None = None


@dataclass
class TcsDevice:
    """Device state machine. ``seed`` makes the sensor noise reproducible."""

    seed: int = 0
    settings: Settings = field(default_factory=Settings)
    battery: int = 87
    buttons: wire.Buttons = field(default_factory=lambda: wire.Buttons(False, False))
    error_codes: list[int] = field(default_factory=lambda: [0] * 6)
    triggers_received: int = 0
    triggers_sent: int = 0
    beeps: int = 0
    log: list[wire.Command] = field(default_factory=list)
    rejected: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._parser = wire.CommandParser()
        base = self.settings.baseline
        self.zones = [Zone(base, base, base) for _ in range(wire.ZONES)]
        self.neutral = base
        self._now = 0.0
        self._next_stream = 0.0

    # -------------------------------------------------------------- input

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed host bytes; returns the replies."""
        self._advance(now)
        out = bytearray()
        for byte in data:
            cmd = self._parser.feed(byte)
            if cmd is not None:
                self.log.append(cmd)
                out += self._execute(cmd, now)
        if self._parser.errors:
            self.rejected += self._parser.errors
            self._parser.errors.clear()
        return bytes(out)

    def _execute(self, cmd: wire.Command, now: float) -> bytes:
        s = self.settings
        match cmd.name:
            case "start":
                self._start(now)
            case "abort":
                self._return_all(now)
            case "follow":
                for z in s.enabled_zones():
                    zone = self.zones[z - 1]
                    zone.phase, zone.target = "follow", self._capped(s.zones[z - 1].target)
                    zone.rate = s.zones[z - 1].rise
            case "reset":
                self.settings = Settings()
                self._return_all(now)
                self.error_codes = [0] * 6
            case "trigger_out":
                self.triggers_sent += 1
            case "buzzer":
                self.beeps += 1
            case "calibrate_neutral":
                self.neutral = s.baseline
                return wire.encode_neutral(self.neutral)
            case "temperatures":
                return wire.encode_temperatures(self._readout(), s.fine)
            case "temperatures_buttons":
                return wire.encode_temperatures_buttons(self._readout(), self.buttons, s.fine)
            case "buttons":
                return wire.encode_buttons(self.buttons)
            case "battery":
                return wire.encode_battery(self.battery)
            case "errors":
                return wire.encode_errors(self.error_codes)
            case "identify":
                return wire.encode_identity()
            case "clock":
                return wire.encode_clock(datetime.now().strftime("%H%M%S%d%m%y"))
            case "help":
                return wire.encode_lines(HELP_LINES)
            case "parameters":
                return wire.encode_lines(self._parameter_lines())
            case "profile_read":
                return wire.encode_profile_readback(s.profile_zones, s.profile or ((1, 0),))
        self.settings = ts.apply(s, cmd)
        if cmd.name == "target":  # follow mode tracks setpoint changes
            for z in self.settings.enabled_zones():
                zone = self.zones[z - 1]
                if zone.phase == "follow":
                    zone.target = self._capped(self.settings.zones[z - 1].target)
        return b""

    def _parameter_lines(self) -> list[str]:
        s = self.settings
        lines = [f"N{wire.tenths(s.baseline):03d}",
                 "S" + "".join(str(int(e)) for e in s.enabled)]
        for i, z in enumerate(s.zones, start=1):
            lines.append(
                f"{i} C{wire.tenths(z.target):03d} V{wire.tenths(z.rise):04d} "
                f"R{wire.tenths(z.ret):04d} D{z.duration_ms:05d}"
            )
        if s.max_temperature is not None:
            lines.append(f"Om{wire.tenths(s.max_temperature):03d}")
        return lines

    def _capped(self, target: float) -> float:
        top = self.settings.max_temperature
        return min(target, top if top is not None else 60.0, 60.0)

    def _start(self, now: float) -> None:
        s = self.settings
        if any(z.phase == "follow" for z in self.zones):
            return
        profile_zones = [i + 1 for i, on in enumerate(s.profile_enabled) if on]
        for z in profile_zones:
            if s.profile:
                zone = self.zones[z - 1]
                zone.phase, zone.profile_start = "profile", now
        for z in s.enabled_zones():
            if z in profile_zones:
                continue
            stim = s.zones[z - 1]
            zone = self.zones[z - 1]
            target = self._capped(stim.target)
            ramp = abs(target - s.baseline) / stim.rise
            dwell = max(0.0, stim.duration_ms / 1000 - ramp)
            dwell = min(dwell, envelope_seconds(DEVICE_ENVELOPE, target))  # firmware dose limit
            zone.phase, zone.target, zone.rate = "ramp", target, stim.rise
            zone.end_at = now + ramp + dwell if dwell > 0 else now + stim.duration_ms / 1000

    def _return_all(self, now: float) -> None:
        for i, zone in enumerate(self.zones):
            if zone.phase != "idle":
                zone.phase = "return"
                zone.rate = self.settings.zones[i].ret

    # -------------------------------------------------------------- outside world

    def press(self, button1: bool, button2: bool = False) -> None:
        self.buttons = wire.Buttons(button1, button2)

    def external_trigger(self, now: float) -> None:
        """A pulse on the trigger input: counted, and starts a stimulation if enabled."""
        self._advance(now)
        self.triggers_received += 1
        if self.settings.trigger_input and self.idle:
            self._start(now)

    def break_zone(self, zone: int) -> None:
        """Fault injection: the zone stops following its setpoint."""
        self.zones[zone - 1].broken = True

    @property
    def idle(self) -> bool:
        return all(z.phase == "idle" for z in self.zones)

    # -------------------------------------------------------------- time

    def step(self, now: float) -> bytes:
        """Advance physics to ``now``; returns the stream line due, if any."""
        self._advance(now)
        s = self.settings
        active = not self.idle
        period = STREAM_STIM_S if active else STREAM_IDLE_S
        enabled = s.stream_stimulation if active else s.stream_idle
        if now < self._next_stream:
            if active and self._next_stream - now > STREAM_STIM_S:
                self._next_stream = now  # a stimulation began: switch to 100 Hz now
            else:
                return b""
        self._next_stream = now + period
        if not enabled:
            return b""
        return wire.encode_stream_line(self._readout(), (0, 0), s.fine)

    def _readout(self) -> list[float]:
        noise = self._rng.normal(0.0, NOISE_C, 6)
        values = [self.neutral] + [z.temperature for z in self.zones]
        return [v + n for v, n in zip(values, noise, strict=True)]

    def _advance(self, now: float) -> None:
        dt = now - self._now
        if dt <= 0:
            return
        self._now = now
        for i, zone in enumerate(self.zones):
            self._move_setpoint(i, zone, now, dt)
            alpha = 1.0 - math.exp(-dt / LAG_S)
            step = (zone.setpoint - zone.expected) * alpha
            step = max(-PHYSICAL_MAX_RATE * dt, min(PHYSICAL_MAX_RATE * dt, step))
            zone.expected += step
            if not zone.broken:
                zone.temperature = zone.expected
            self._check_follows(i, zone, now)
        self.neutral += (self.settings.baseline - self.neutral) * (1 - math.exp(-dt / 2.0))

    def _move_setpoint(self, i: int, zone: Zone, now: float, dt: float) -> None:
        base = self.settings.baseline
        if zone.phase == "idle":
            zone.setpoint = base
        elif zone.phase in ("ramp", "follow"):
            if zone.phase == "ramp" and now >= zone.end_at:
                zone.phase, zone.rate = "return", self.settings.zones[i].ret
                return
            zone.setpoint = _toward(zone.setpoint, zone.target, zone.rate * dt)
        elif zone.phase == "profile":
            value = self._profile_value(now - zone.profile_start)
            if value is None:
                zone.phase, zone.rate = "return", self.settings.zones[i].ret
                zone.setpoint = self.settings.profile_segments_s()[-1][1]
            else:
                zone.setpoint = value
        elif zone.phase == "return":
            zone.setpoint = _toward(zone.setpoint, base, zone.rate * dt)
            if zone.setpoint == base:
                zone.phase = "idle"

    def _profile_value(self, elapsed: float) -> float | None:
        start = self.settings.baseline
        for seconds, end in self.settings.profile_segments_s():
            if elapsed <= seconds:
                return start + (end - start) * elapsed / seconds
            elapsed -= seconds
            start = end
        return None

    def _check_follows(self, i: int, zone: Zone, now: float) -> None:
        if abs(zone.temperature - zone.expected) <= MISMATCH_C:
            zone.mismatch_since = None
            return
        if zone.mismatch_since is None:
            zone.mismatch_since = now
        elif now - zone.mismatch_since >= MISMATCH_S:
            self.error_codes[i + 1] = 1
            self.beeps += 1
            self._return_all(now)
            zone.mismatch_since = None

    def snapshot(self) -> dict[str, object]:
        """Zone phases and temperatures, for tests and the CLI."""
        return {
            "phases": [z.phase for z in self.zones],
            "temperatures": [round(z.temperature, 2) for z in self.zones],
            "settings": replace(self.settings),
        }


def _toward(value: float, goal: float, max_step: float) -> float:
    if abs(goal - value) <= max_step:
        return goal
    return value + math.copysign(max_step, goal - value)
