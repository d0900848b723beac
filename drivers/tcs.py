"""QST.Lab TCS II thermal stimulator driver.

Typed methods over a byte transport. Every command is decoded again from its own bytes,
applied to the predicted device state and checked against the configured
:class:`ThermalLimits` before a single byte is written (the driver is the last gate). A
reader thread splits streamed temperature lines from replies and timestamps samples on
the program clock at arrival; a monitor thread guards follow mode (dose and heartbeat),
watches for silence and checks the device's error codes after each stimulation.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from drivers import tcs_settings as ts
from drivers import tcs_wire as wire
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceSilent,
    LimitError,
    NotConnected,
)
from drivers.tcs_link import TcsLink
from drivers.tcs_settings import Settings
from drivers.thermal_safety import ThermalLimits, ZoneStimulus
from drivers.transport import SerialTransport, Transport
from qst_station.clock import Clock, LslClock

STIMULATION_SILENCE_S = 0.5  # a 100 Hz stream silent this long during a stimulation
SampleCallback = Callable[["TemperatureSample"], None]
StatusCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class TemperatureSample:
    """Neutral + zones 1-5 in °C, stamped on the program clock when the line arrived."""

    timestamp: float
    neutral: float
    zones: tuple[float, ...]

    @property
    def all(self) -> tuple[float, ...]:
        return (self.neutral, *self.zones)


@dataclass(frozen=True)
class DeviceInfo:
    identity: str
    firmware: str
    probe_id: str
    probe_type: str
    help_lines: tuple[str, ...]


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


class TcsDriver:
    """Driver for one TCS II on a serial port (or any :class:`Transport`)."""

    def __init__(
        self,
        port: str,
        limits: ThermalLimits | None = None,
        clock: Clock | None = None,
        baseline: float = 32.0,
        char_delay_s: float = 0.001,
        reply_timeout_s: float = 0.5,
        quiet_s: float = 0.15,
        silence_s: float = 3.0,
        transport_factory: Callable[[str], Transport] | None = None,
    ) -> None:
        self.port = port
        self.limits = limits or ThermalLimits()
        self.clock = clock or LslClock()
        self.limits.check_baseline(baseline)
        wire.encode("baseline", wire.tenths(baseline))  # within the device's 20-45 °C field
        self.baseline = baseline
        if silence_s <= 1.0:
            raise ValueError(f"silence_s must exceed the 1 s idle stream period, got {silence_s}")
        self.silence_s = silence_s
        self._factory = transport_factory or (
            lambda p: SerialTransport(p, char_delay_s=char_delay_s)
        )
        self._link = TcsLink(port, self.clock, self._deliver, self._notify, self._on_lost,
                             reply_timeout_s, quiet_s)
        self._settings = Settings()
        self._wire_lock = threading.RLock()
        self._sample_callbacks: list[SampleCallback] = []
        self._status_callbacks: list[StatusCallback] = []
        self._stop = threading.Event()
        self._abort_requested = threading.Event()
        self._monitor: threading.Thread | None = None
        self._stim_end: float | None = None
        self._stim_started = 0.0
        self._abort_pending = False
        self._silent_at: float | None = None
        self._following = False
        self._follow_dose = 0.0
        self._last_feed = 0.0
        self.info: DeviceInfo | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._link.is_open

    @property
    def garbage_bytes(self) -> int:
        """Bytes received that were neither a stream line nor an expected reply."""
        return self._link.garbage_bytes

    @property
    def settings(self) -> Settings:
        """The device state as the driver has programmed it."""
        return self._settings

    @property
    def following(self) -> bool:
        return self._following

    @property
    def stimulating(self) -> bool:
        return self._stim_end is not None

    def connect(self) -> DeviceInfo:
        """Open the port, identify the device and program a known, safe state (incl. ``Om``)."""
        if self.connected:
            raise DeviceError(f"{self.port}: already connected")
        self._link.open(self._factory(self.port))
        self._settings = Settings()
        self._silent_at = None
        self._abort_pending = False
        self._stop.clear()
        self._monitor = threading.Thread(target=self._monitor_loop, name="tcs-monitor",
                                         daemon=True)
        self._monitor.start()
        try:
            self._send(b"A")  # first of all: stop whatever the unit was doing
            identity = self.identify()
            if identity != "TCS":
                raise DeviceFault(f"{self.port}: device answered {identity!r} to '?', not 'TCS'")
            self._program_known_state()
            lines = self.help_text()
            fields = wire.decode_help(lines)
            self.info = DeviceInfo(
                identity,
                fields.get("Firmware", "unknown"),
                fields.get("Probe ID", "unknown"),
                fields.get("Probe TYPE", "unknown"),
                tuple(lines),
            )
        except BaseException:
            self._close()
            raise
        self._notify("connected", f"TCS II on {self.port}, firmware {self.info.firmware}")
        return self.info

    def disconnect(self) -> None:
        """Abort (device returns to baseline), then close the port."""
        if not self.connected:
            return
        with contextlib.suppress(DeviceError):
            self.abort()
        self._close()
        self._notify("disconnected", f"{self.port} closed")

    def reconnect(self) -> DeviceInfo:
        """Close whatever is left of the old connection and connect again."""
        self._close()
        return self.connect()

    def _close(self) -> None:
        self._stop.set()
        self._link.close()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=1.0)
        self._monitor = None
        self._following = False
        self._stim_end = None

    def _program_known_state(self) -> None:
        """Abort, forbid trigger starts, then write every setting the driver relies on.

        The device's prior settings are unknown, so intermediate states are not checked
        (nothing can start: ``A`` and ``Osd`` go first); the resulting state, which no
        longer depends on the prior one, is checked before anything is sent.
        """
        rate = wire.tenths(min(10.0, self.limits.max_rate))
        frames = [
            wire.encode("target", 0, wire.tenths(self.baseline)),
            wire.encode("baseline", wire.tenths(self.baseline)),
            wire.encode("rise_rate", 0, rate),
            wire.encode("return_rate", 0, rate),
            wire.encode("duration", 0, 100),
            wire.encode_mask("enable_zones", [False] * wire.ZONES),
            wire.encode_mask("profile_enable", [False] * wire.ZONES),
            wire.encode("max_temperature", wire.tenths(self.limits.max_celsius)),
            b"Oa",
            b"Ob",
        ]
        with self._wire_lock:
            self._send(b"A")  # (again, after a reset)
            self._send(b"Osd", check=False)
            state = Settings(trigger_input=False)
            for raw in frames:
                state = ts.apply(state, _decode_one(raw))
            ts.check(self.limits, state)
            for raw in frames:
                self._send(raw, check=False)

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: SampleCallback) -> Callable[[], None]:
        """Call ``callback`` (on the reader thread) with every streamed sample."""
        self._sample_callbacks.append(callback)
        return lambda: self._sample_callbacks.remove(callback)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(kind, message)`` on connect, disconnect, errors and warnings."""
        self._status_callbacks.append(callback)
        return lambda: self._status_callbacks.remove(callback)

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        for callback in list(self._status_callbacks):
            callback(kind, message)

    # ------------------------------------------------------------------ the gate

    def _send(
        self, raw: bytes, reply: str | None = None, check: bool = True
    ) -> bytes | list[bytes] | None:
        """Check ``raw`` against the limits, write it, and return its reply if any."""
        with self._wire_lock:
            if not self._link.is_open:
                raise NotConnected(f"{self.port}: not connected")
            if raw != b"A" and self._abort_requested.is_set():
                raise DeviceError(f"{self.port}: {raw.decode()!r} not sent: abort requested")
            cmd = _decode_one(raw)
            after = self._checked(cmd) if check else ts.apply(self._settings, cmd)
            self._settings = after
            self._link.fine = after.fine
            return self._link.transact(raw, reply)

    def _checked(self, cmd: wire.Command) -> Settings:
        after = ts.apply(self._settings, cmd)
        if cmd.name in ("abort", "reset"):
            return after
        if after == self._settings and cmd.name not in ("start", "follow"):
            return after  # queries and outputs change nothing that could hurt
        ts.check(self.limits, after)
        if cmd.name in ("start", "follow"):
            if not (after.enabled_zones() or any(after.profile_enabled)):
                raise LimitError(f"{cmd.name}: no zone is enabled")
            if cmd.name == "start" and self._following:
                raise LimitError("start: the device is in follow mode; abort it first")
        busy = self.stimulating or self._following
        if cmd.name in ("profile_write", "profile_enable") and busy:
            raise LimitError(f"{cmd.name}: not allowed during a stimulation")
        return after

    def _deliver(self, now: float, body: bytes) -> None:
        """A stream line arrived at ``now``: decode it and hand it to the subscribers."""
        try:
            line = wire.decode_stream_line(body, self._link.fine)
        except DeviceError:
            return
        sample = TemperatureSample(now, line.neutral, line.zones)
        for callback in list(self._sample_callbacks):
            callback(sample)

    def _on_lost(self, exc: Exception) -> None:
        self._stop.set()
        self._following = False
        self._stim_end = None
        self._notify("lost", f"{self.port}: connection lost ({exc}); reconnect when available")

    def _monitor_loop(self) -> None:
        last = self.clock.now()
        while not self._stop.wait(0.01):
            now = self.clock.now()
            dt, last = now - last, now
            try:
                self._watch_follow(now, dt)
                self._watch_stimulation(now)
                self._watch_silence()
            except DeviceError as exc:  # reported; the loop keeps guarding
                self._notify("error", str(exc))

    def _watch_follow(self, now: float, dt: float) -> None:
        if not self._following:
            return
        setpoint = max(self._settings.zones[z - 1].target for z in self._settings.enabled_zones())
        self._follow_dose += dt / self.limits.max_hold_s(setpoint)
        if self._follow_dose >= 1.0:
            self._fail_safe(f"follow mode stopped: dose envelope used up at {setpoint:.1f} °C")
        elif now - self._last_feed > self.limits.follow_heartbeat_s:
            self._fail_safe(
                f"follow mode stopped: no setpoint update for {self.limits.follow_heartbeat_s} s"
            )

    def _watch_stimulation(self, now: float) -> None:
        """After each stimulation, read the device's error codes (retried while busy)."""
        if self._stim_end is None or now < self._stim_end:
            return
        if not self._wire_lock.acquire(blocking=False):
            return  # a command is on the wire: next tick
        try:
            self._stim_end = None
            if self.connected:
                self.check_errors()
        finally:
            self._wire_lock.release()

    def _watch_silence(self) -> None:
        """Silence is judged in real time (the wire's), whatever the clock speed."""
        now = time.monotonic()
        if self._silent_at is not None:
            if self._link.last_rx <= self._silent_at:
                return  # still silent; reported once
            self._silent_at = None
            if self._abort_pending:  # the device answers again: deliver the abort it lost
                self._abort_pending = False
                self.abort()
                self._notify("warning", f"{self.port}: device answers again; abort sent again")
            return
        stimulating = self.stimulating or self._following
        streaming = self._settings.stream_stimulation if stimulating else self._settings.stream_idle
        quiet = now - max(self._link.last_rx, self._stim_started if stimulating else 0.0)
        limit = min(self.silence_s, STIMULATION_SILENCE_S) if stimulating else self.silence_s
        if not streaming or quiet <= limit:
            return
        if self.stimulating and self._ended_early():
            return
        self._silent_at = now
        self._abort_pending = True
        self._fail_safe(f"{self.port}: device silent for {quiet:.1f} s")

    def _ended_early(self) -> bool:
        """True if the device answers ``Q``: it stopped streaming fast because it stopped."""
        try:
            codes = self.errors()
        except DeviceSilent:
            return False
        self._stim_end = None
        bad = _describe_errors(codes)
        if bad:
            self._notify("error", f"{self.port}: stimulation ended early; device reports {bad}")
        return True

    def _fail_safe(self, reason: str) -> None:
        """Abort (device back to baseline) and report ``reason``."""
        self._following = False
        try:
            self.abort()
        except DeviceError as exc:
            reason += f"; abort could not be sent: {exc}"
        self._notify("error", reason)

    # ------------------------------------------------------------------ stimulation settings

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
                final = ts.apply(final, _decode_one(raw))
            ts.check(self.limits, final)
            for order in itertools.permutations(frames):
                if self._sequence_safe(order):
                    self._send_sequence(order)
                    return
            raise LimitError(f"zone {zone}: no safe order to write this stimulus")

    def _sequence_safe(self, frames: Sequence[bytes]) -> bool:
        try:
            self._checked_sequence(frames)
        except LimitError:
            return False
        return True

    def _checked_sequence(self, frames: Sequence[bytes]) -> None:
        """Raise LimitError if any state along ``frames`` breaks a limit."""
        state = self._settings
        for raw in frames:
            state = ts.apply(state, _decode_one(raw))
            ts.check(self.limits, state)

    def _send_sequence(self, frames: Sequence[bytes]) -> None:
        """Check the whole sequence first, then send it: all or nothing is refused."""
        with self._wire_lock:
            self._checked_sequence(frames)
            for raw in frames:
                self._send(raw)

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

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        """``L``: start the programmed stimulation on the enabled zones."""
        self._send(b"L")
        self._stim_started = time.monotonic()  # 100 Hz stream from now, not the last line
        settings = self._settings
        length = 0.0
        for z in settings.enabled_zones():
            stim = settings.zones[z - 1]
            length = max(length, stim.duration_ms / 1000 + abs(stim.peak(settings.baseline)
                                                                - settings.baseline) / stim.ret)
        if any(settings.profile_enabled):
            length = max(length, sum(s for s, _ in settings.profile_segments_s()) + 1.0)
        self._stim_end = self.clock.now() + length + 0.2

    def abort(self) -> None:
        """``A``: stop now; the device returns to baseline. Leaves follow mode.

        A command sequence in progress on another thread (e.g. :meth:`configure`) stops
        before its next command, so the abort waits for at most one short command.
        """
        self._following = False
        self._stim_end = None
        self._abort_requested.set()
        try:
            self._send(b"A")
        finally:
            self._abort_requested.clear()

    def follow(self, setpoint: float) -> None:
        """``Od``: hold the enabled zones (all, if none) at ``setpoint`` until :meth:`abort`.

        The device's own dose protection is off in this mode, so a watchdog here aborts
        when the dose envelope is used up or when follow() is not called again within
        ``limits.follow_heartbeat_s``.
        """
        value = wire.tenths(_finite("follow setpoint", setpoint))
        self.limits.check_temperature("follow setpoint", value / 10.0)
        with self._wire_lock:
            frames = [wire.encode("target", 0, value)]
            if not self._following:
                # durations mean nothing in follow mode; the shortest keeps every zone's
                # programmed stimulus within the dose envelope at the new setpoint
                frames.insert(0, wire.encode("duration", 0, 10))
                if not self._settings.enabled_zones():
                    frames.insert(0, wire.encode_mask("enable_zones", [True] * wire.ZONES))
                frames.append(b"Od")
            self._send_sequence(frames)
            self._last_feed = self.clock.now()
            if frames[-1] == b"Od":
                self._follow_dose = 0.0
                self._following = True

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
        body = self._send(b"Ur", "profile")
        assert isinstance(body, bytes)
        zones, segments = wire.decode_profile(body)
        return zones, tuple((d / 100.0, t / 10.0) for d, t in segments)

    def set_trigger_input(self, enabled: bool) -> None:
        """``Ose``/``Osd``: let a pulse on the trigger input start the stimulation."""
        self._send(b"Ose" if enabled else b"Osd")

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
            self._following = False
            self._stim_end = None
            self._send(b"Oc")
            self._program_known_state()

    def calibrate_neutral(self) -> float:
        """``G``: auto-calibrate the neutral temperature; returns it in °C."""
        body = self._send(b"G", "neutral")
        assert isinstance(body, bytes)
        return wire.decode_neutral(body)

    # ------------------------------------------------------------------ queries

    def identify(self) -> str:
        body = self._send(b"?", "identity")
        assert isinstance(body, bytes)
        return wire.decode_identity(body)

    def temperatures(self) -> wire.Temperatures:
        """``E``: neutral and zone temperatures now."""
        body = self._send(b"E", "temperatures")
        assert isinstance(body, bytes)
        return wire.decode_temperatures(body, self._settings.fine)

    def temperatures_and_buttons(self) -> tuple[wire.Temperatures, wire.Buttons]:
        body = self._send(b"Og", "temperatures_buttons")
        assert isinstance(body, bytes)
        return wire.decode_temperatures_buttons(body, self._settings.fine)

    def buttons(self) -> wire.Buttons:
        body = self._send(b"K", "buttons")
        assert isinstance(body, bytes)
        return wire.decode_buttons(body)

    def battery(self) -> int:
        """``B``: battery charge in percent."""
        body = self._send(b"B", "battery")
        assert isinstance(body, bytes)
        return wire.decode_battery(body)

    def errors(self) -> tuple[int, ...]:
        """``Q``: error code per channel (neutral, zones 1-5); 0 = OK."""
        body = self._send(b"Q", "errors")
        assert isinstance(body, bytes)
        return wire.decode_errors(body)

    def check_errors(self) -> None:
        """Raise DeviceFault naming each channel whose ``Q`` code is not zero."""
        bad = _describe_errors(self.errors())
        if bad:
            raise DeviceFault(f"{self.port}: device reports errors: {bad}")

    def parameters(self) -> list[str]:
        """``P``: the device's current parameters as text lines."""
        return [b.decode(errors="replace") for b in self._send(b"P", "lines") or []]

    def help_text(self) -> list[str]:
        """``H``: the firmware's help text (firmware version, probe id and type)."""
        return [b.decode(errors="replace") for b in self._send(b"H", "lines") or []]

    def clock_time(self) -> datetime:
        """``Xr``: the device's real-time clock."""
        body = self._send(b"Xr", "clock")
        assert isinstance(body, bytes)
        return datetime.strptime(wire.decode_clock(body), "%H%M%S%d%m%y")

    def stimulus(self, zone: int) -> ZoneStimulus:
        """The stimulus programmed for ``zone`` (1-5)."""
        return self._settings.zones[_zone_arg(zone, allow_all=False) - 1]


def _describe_errors(codes: Sequence[int]) -> str:
    """'zone 2 code 1, ...' for the non-zero ``Q`` codes; '' if all are zero."""
    return ", ".join(
        f"{'neutral' if i == 0 else f'zone {i}'} code {c}" for i, c in enumerate(codes) if c
    )


def _decode_one(raw: bytes) -> wire.Command:
    parser = wire.CommandParser()
    commands = [c for c in (parser.feed(b) for b in raw) if c is not None]
    if len(commands) != 1 or parser.errors:
        raise DeviceFault(f"refusing malformed command bytes {raw!r}")
    return commands[0]
