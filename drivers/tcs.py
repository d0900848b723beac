"""QST.Lab TCS II thermal stimulator driver: typed commands.

Each method encodes one command (or a checked sequence) with :mod:`drivers.tcs_wire` and
sends it through the gate in :class:`drivers.tcs_core.TcsCore`, which refuses anything
outside the configured limits before a byte is written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import datetime

from drivers import tcs_settings as ts
from drivers import tcs_wire as wire
from drivers import thermal_safety as safety
from drivers.errors import DeviceError, DeviceFault, LimitError, NotConnected
from drivers.interfaces import ThermalCapabilities
from drivers.tcs_core import DeviceInfo, TcsCore, TemperatureSample, decode_one
from drivers.thermal_safety import ZoneStimulus

__all__ = ["DeviceInfo", "TcsDriver", "TemperatureSample"]

_START = decode_one(b"L")


def _finite(what: str, value: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise LimitError(f"{what} {value!r} is not a finite number")
    return float(value)


def _zone_arg(zone: int, allow_all: bool = True) -> int:
    if not isinstance(zone, int) or not (0 if allow_all else 1) <= zone <= wire.ZONES:
        also = ", or 0 for all" if allow_all else ""
        raise LimitError(f"zone {zone!r} does not exist (1-5{also})")
    return zone


def _mask(zones: Sequence[int]) -> tuple[bool, ...]:
    chosen = {_zone_arg(z, allow_all=False) for z in zones}
    return tuple(z in chosen for z in range(1, wire.ZONES + 1))


class TcsDriver(TcsCore):
    """Driver for one TCS II on a serial port (or any :class:`Transport`).

    Implements :class:`drivers.interfaces.ThermalStimulator`.
    """

    @property
    def capabilities(self) -> ThermalCapabilities:
        limits = self.limits
        return ThermalCapabilities(
            device="QST.Lab TCS II", zones=wire.ZONES, min_celsius=limits.min_celsius,
            max_celsius=limits.max_celsius, max_rise_rate=limits.max_rate,
            max_return_rate=limits.max_rate, ramp_and_hold=True, follow=True,
            profiles=True, trigger_input=True, check_stimulus=self._check_stimulus,
        )

    def _check_stimulus(self, baseline: float, target: float, rise: float, ret: float,
                        hold_s: float) -> None:
        """What :meth:`prepare_ramp_and_hold` then ``start`` would refuse, without sending."""
        self.limits.check_baseline(baseline)
        ramp_s = abs(target - baseline) / rise
        duration_ms = int(round((ramp_s + hold_s) * 1000))
        safety.check_stimulus(self.limits, 1, baseline,
                              safety.ZoneStimulus(target, rise, ret, duration_ms))

    def prepare_ramp_and_hold(self, target: float, rise: float, ret: float, hold_s: float,
                              zones: tuple[int, ...] = ()) -> None:
        """Program ramp to ``target``, hold ``hold_s``, return, on ``zones`` (all if empty)."""
        chosen = tuple(zones) or tuple(range(1, wire.ZONES + 1))
        ramp_s = abs(_finite("target", target) - self._settings.baseline) / _finite("rate", rise)
        duration_ms = int(round((ramp_s + _finite("hold", hold_s)) * 1000))
        with self._wire_lock:
            self.enable_zones(chosen)
            if len(chosen) == wire.ZONES:
                self.configure(0, target=target, rise=rise, ret=ret, duration_ms=duration_ms)
            else:
                for zone in chosen:
                    self.configure(zone, target=target, rise=rise, ret=ret,
                                   duration_ms=duration_ms)

    # ------------------------------------------------------------------ stimulus settings

    def set_baseline(self, celsius: float) -> None:
        """``N``: neutral temperature the probe holds between stimuli."""
        self._send(wire.encode("baseline", wire.tenths(_finite("baseline", celsius))))
        self.baseline = self._settings.baseline

    def enable_zones(self, zones: Sequence[int]) -> None:
        """``S``: the zones (1-5) that take part in the next stimulation."""
        self._send(wire.encode_mask("enable_zones", _mask(zones)))

    def configure(
        self, zone: int, *, target: float, rise: float, ret: float, duration_ms: int
    ) -> None:
        """``C``/``V``/``R``/``D`` for one zone (0 = all), written in an order that stays safe.

        The whole stimulus is checked first; the four fields are then sent in the first
        order whose every intermediate state is also within limits (the device could start
        from its trigger input in between).
        """
        _zone_arg(zone)
        frames = [
            wire.encode("target", zone, wire.tenths(_finite("target", target))),
            wire.encode("rise_rate", zone, wire.tenths(_finite("rise rate", rise))),
            wire.encode("return_rate", zone, wire.tenths(_finite("return rate", ret))),
            wire.encode("duration", zone, int(duration_ms)),
        ]
        with self._wire_lock:
            final = self._settings
            for raw in frames:
                final = ts.apply(final, decode_one(raw))
            ts.check(self.limits, final)
            for order in itertools.permutations(frames):
                if self._sequence_safe(order):
                    self._send_sequence(order)
                    return
            self._checked_sequence(frames)  # raises the rule that blocks it
            raise LimitError(f"zone {zone}: no safe order to write this stimulus")

    def set_target(self, zone: int, celsius: float) -> None:
        self._send(wire.encode("target", _zone_arg(zone), wire.tenths(_finite("target", celsius))))

    def set_rise_rate(self, zone: int, rate: float) -> None:
        self._send(wire.encode("rise_rate", _zone_arg(zone), wire.tenths(_finite("rate", rate))))

    def set_return_rate(self, zone: int, rate: float) -> None:
        self._send(wire.encode("return_rate", _zone_arg(zone), wire.tenths(_finite("rate", rate))))

    def set_duration(self, zone: int, duration_ms: int) -> None:
        self._send(wire.encode("duration", _zone_arg(zone), int(duration_ms)))

    def set_target_fine(self, zone: int, celsius: float) -> None:
        """``Ot``: target in 0.01 °C."""
        value = wire.hundredths(_finite("target", celsius))
        self._send(wire.encode("fine_target", _zone_arg(zone), value))

    def set_rise_rate_fine(self, zone: int, rate: float) -> None:
        """``Ov``: rise rate in 0.01 °C/s."""
        value = wire.hundredths(_finite("rate", rate))
        self._send(wire.encode("fine_rise_rate", _zone_arg(zone), value))

    def set_trigger(self, number: int, pulse_ms: int = 300) -> None:
        """``T``: the output trigger number (1-255) and pulse length (10-999 ms)."""
        self._send(wire.encode("trigger_setup", int(number), int(pulse_ms)))

    def set_max_temperature(self, celsius: float) -> None:
        """``Om``: the device's own maximum; never above the configured maximum."""
        value = wire.tenths(_finite("maximum temperature", celsius))
        self._send(wire.encode("max_temperature", value))

    def stimulus(self, zone: int) -> ZoneStimulus:
        """The stimulus programmed for ``zone`` (1-5)."""
        return self._settings.zones[_zone_arg(zone, allow_all=False) - 1]

    # ------------------------------------------------------------------ running

    def verify_settings(self) -> None:
        """Read ``P`` back and raise DeviceFault if the device differs from what was sent.

        Setting commands are not acknowledged and the unit can lose characters, so
        :meth:`start` verifies first whenever settings changed since the last check.
        """
        with self._wire_lock:
            lines = self.parameters()
            try:
                reported = wire.decode_parameters(lines)
            except DeviceError as exc:
                raise DeviceFault(f"{self.port}: cannot verify settings: {exc}") from None
            found = ts.mismatches(self._settings, reported)
            if found:
                raise DeviceFault(
                    f"{self.port}: device settings differ from those sent: {'; '.join(found)}"
                )
            self._verified = True

    def start(self, generation: int | None = None) -> None:
        """``L``: start the programmed stimulation on the enabled zones.

        With ``generation`` (read from :attr:`generation` when the operator asked to
        start), a STOP pressed since then cancels the start.
        """
        with self._wire_lock:
            self._checked(_START)  # refuse before anything is written
            if self.verify_before_start and not self._verified:
                self.verify_settings()
            self._send_start(generation)

    def try_start(self, generation: int | None = None) -> bool:
        """``L`` now, if nothing has to wait for it; False (nothing sent) otherwise.

        For the moment of a trigger: never waits for another command on the wire, nor
        reads the settings back. It returns False when the wire is in use or the settings
        changed since they were last verified: call :meth:`start` then (it waits and
        verifies). Every check of :meth:`start` applies; a refusal raises the same errors.
        """
        if not self._wire_lock.acquire(blocking=False):
            return False
        try:
            if self.verify_before_start and not self._verified:
                return False
            self._checked(_START)
            self._send_start(generation)
            return True
        finally:
            self._wire_lock.release()

    def _send_start(self, generation: int | None) -> None:
        """``L`` on the wire; the caller holds the wire lock and has checked it.

        What :meth:`_send` would do for ``L`` without its no-ops (``L`` changes no setting
        and has no reply to wait for), so that the byte leaves as soon as possible.
        """
        if not self._link.is_open:
            raise NotConnected(f"{self.port}: not connected")
        if generation is not None and generation != self._generation:
            raise DeviceError(f"{self.port}: 'L' not sent: STOP was requested")
        self._link.write_urgent(b"L")
        self._mark_started(self.clock.now())

    def follow(self, setpoint: float) -> None:
        """``Od``: hold the enabled zones (all, if none) at ``setpoint`` until :meth:`abort`.

        The device's own dose protection is off in this mode, so a watchdog here aborts
        when the dose envelope (including the return) is used up, or when follow() is not
        called again within ``limits.follow_heartbeat_s``. The dose carries over to the
        next follow period unless the probe has rested at least as long as it followed.
        """
        value = wire.tenths(_finite("follow setpoint", setpoint))
        self.limits.check_temperature("follow setpoint", value / 10.0)
        if self.limits.max_hold_s(value / 10.0) <= 0:
            raise LimitError(f"follow setpoint {value / 10:.1f} °C: the dose envelope allows "
                             "no time at this temperature")
        with self._wire_lock:
            frames = [wire.encode("target", 0, value)]
            entering = not self._following
            if entering:
                # durations mean nothing in follow mode; the shortest keeps every zone's
                # programmed stimulus within the dose envelope at the new setpoint
                frames.insert(0, wire.encode("duration", 0, 10))
                if not self._settings.enabled_zones():
                    frames.insert(0, wire.encode_mask("enable_zones", [True] * wire.ZONES))
                frames.append(b"Od")
            self._send_sequence(frames)
            now = self.clock.now()
            self._last_feed = now
            if entering:
                rested = self._follow_left is None or now - self._follow_left >= self._follow_time
                if rested:
                    self._follow_dose = self._follow_time = 0.0
                self._follow_entered = now
                self._follow_zones = self._settings.enabled_zones()
                self._following = True
                self._mark_started(now)
                self._stim_end = None

    def feed_watchdog(self) -> None:
        """Tell the follow-mode watchdog that the program is still in control."""
        self._last_feed = self.clock.now()

    def upload_profile(self, segments: Sequence[tuple[float, float]], zones: Sequence[int]) -> None:
        """``Uw`` + ``Ue``: a user profile of (seconds, end °C) segments on ``zones``.

        Each segment lasts 0.01-9.99 s (10 ms steps) and ramps linearly to its end
        temperature. The profile must end at a temperature that may be held indefinitely.
        """
        raw_segments = []
        for i, (seconds, celsius) in enumerate(segments, start=1):
            ticks = int(round(_finite(f"segment {i} duration", seconds) * 100))
            if not 1 <= ticks <= 999 or abs(ticks - seconds * 100) > 1e-6:
                raise LimitError(f"profile segment {i}: duration {seconds} s is not 0.01-9.99 s "
                                 "in 10 ms steps")
            raw_segments.append((ticks, wire.tenths(_finite(f"segment {i} end", celsius))))
        mask = _mask(zones)
        self._send_sequence(
            [wire.encode_profile(mask, raw_segments), wire.encode_mask("profile_enable", mask)]
        )

    def disable_profile(self) -> None:
        self._send(wire.encode_mask("profile_enable", [False] * wire.ZONES))

    def read_profile(self) -> tuple[tuple[bool, ...], tuple[tuple[float, float], ...]]:
        """``Ur``: the zones and (seconds, end °C) segments stored in the device."""
        zones, segments = wire.decode_profile(self._query(b"Ur", "profile"))
        return zones, tuple((d / 100.0, t / 10.0) for d, t in segments)

    def set_trigger_input(self, enabled: bool) -> None:
        """``Ose``/``Osd``: arm the trigger input to start the programmed stimulus once.

        After the start (seen in the 100 Hz stream) the driver sends ``Osd`` itself, so
        a train of scanner pulses cannot restart the stimulus; arm again for the next.
        """
        self._send(b"Ose" if enabled else b"Osd")
        self._armed = enabled

    def send_trigger(self) -> None:
        """``Oo``: emit the output trigger now."""
        self._send(b"Oo")

    # ------------------------------------------------------------------ device settings

    def set_fine_resolution(self) -> None:
        """``Oe``: temperatures in 0.01 °C from now on."""
        self._send(b"Oe")

    def set_streaming(self, idle: bool, stimulation: bool) -> None:
        """``F``/``Oa``/``Ob``: stream at 1 Hz between and 100 Hz during stimulations."""
        with self._wire_lock:
            s = self._settings
            if (s.stream_idle and not idle) or (s.stream_stimulation and not stimulation):
                self._send(b"F")
            if idle and not self._settings.stream_idle:
                self._send(b"Oa")
            if stimulation and not self._settings.stream_stimulation:
                self._send(b"Ob")

    def set_mri_filter(self, level: int) -> None:
        """``Of``: MRI probe filter 1-3 (stronger = slower probe)."""
        self._send(wire.encode("mri_filter", int(level)))

    def beep(self, duration: int, frequency: int) -> None:
        """``Z``: buzzer (device units 1-999 each)."""
        self._send(wire.encode("buzzer", int(duration), int(frequency)))

    def reset(self) -> None:
        """``Oc``: reset as a power cycle, then program the known safe state again."""
        with self._wire_lock:
            self._reset_run_state()
            self._send(b"Oc")
            self._program_known_state()

    def calibrate_neutral(self) -> float:
        """``G``: auto-calibrate the neutral temperature; returns it in °C."""
        return wire.decode_neutral(self._query(b"G", "neutral"))

    # ------------------------------------------------------------------ queries

    def identify(self) -> str:
        return wire.decode_identity(self._query(b"?", "identity"))

    def temperatures(self) -> wire.Temperatures:
        """``E``: neutral and zone temperatures now."""
        return wire.decode_temperatures(self._query(b"E", "temperatures"), self._settings.fine)

    def temperatures_and_buttons(self) -> tuple[wire.Temperatures, wire.Buttons]:
        body = self._query(b"Og", "temperatures_buttons")
        return wire.decode_temperatures_buttons(body, self._settings.fine)

    def buttons(self) -> wire.Buttons:
        return wire.decode_buttons(self._query(b"K", "buttons"))

    def battery(self) -> int:
        """``B``: battery charge in percent."""
        return wire.decode_battery(self._query(b"B", "battery"))

    def parameters(self) -> list[str]:
        """``P``: the device's current parameters as text lines."""
        return self._lines(b"P")

    def help_text(self) -> list[str]:
        """``H``: the firmware's help text (firmware version, probe id and type)."""
        return self._lines(b"H")

    def clock_time(self) -> datetime:
        """``Xr``: the device's real-time clock."""
        return datetime.strptime(wire.decode_clock(self._query(b"Xr", "clock")), "%H%M%S%d%m%y")
