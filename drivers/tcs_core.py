"""The TCS II driver's core: connection, the checked send path and the safety guards.

Every command is decoded again from its own bytes, applied to the predicted device state
and checked against the configured :class:`ThermalLimits` before a byte is written. While
a stimulation runs or returns to baseline, nothing that could change or restart it is
sent. A monitor thread guards follow mode (dose, heartbeat), watches for silence, reads
the error codes after each stimulation and disarms the trigger input after one start;
the reader thread aborts on over-temperature. :class:`drivers.tcs.TcsDriver` adds the
typed commands on top.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers import tcs_settings as ts
from drivers import tcs_wire as wire
from drivers.errors import DeviceError, DeviceFault, DeviceSilent, LimitError, NotConnected
from drivers.notifier import Notifier, call_each
from drivers.tcs_link import TcsLink
from drivers.tcs_settings import Settings
from drivers.thermal_safety import ThermalLimits, trajectory_dose
from drivers.transport import SerialTransport, Transport
from qst_station.clock import Clock, LslClock

log = logging.getLogger(__name__)

STIMULATION_SILENCE_S = 0.5  # a 100 Hz stream silent this long during a stimulation
OVERTEMP_MARGIN_C = 1.0  # a measured zone this far outside the limits aborts at once
RETURN_MARGIN_S = 0.1
# commands that program or start a stimulus: refused while one runs or returns
STIMULUS_COMMANDS = frozenset({
    "start", "follow", "baseline", "enable_zones", "target", "fine_target", "rise_rate",
    "fine_rise_rate", "return_rate", "duration", "profile_write", "profile_enable",
    "trigger_input_on",
})
# what may change while the probe holds a follow-mode setpoint
FOLLOW_COMMANDS = frozenset({"target", "fine_target", "trigger_setup", "mri_filter",
                             "stream_idle", "stream_stimulation", "trigger_input_off"})
SampleCallback = Callable[["TemperatureSample"], None]
StatusCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class TemperatureSample(wire.Temperatures):
    """Neutral + zones 1-5 in °C, stamped on the program clock when the line arrived."""

    timestamp: float = 0.0


@dataclass(frozen=True)
class DeviceInfo:
    identity: str
    firmware: str
    probe_id: str
    probe_type: str
    help_lines: tuple[str, ...]


class TcsCore:
    """Connection, gate and guards of one TCS II (see :class:`drivers.tcs.TcsDriver`)."""

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
        verify_before_start: bool = True,
        transport_factory: Callable[[str], Transport] | None = None,
    ) -> None:
        self.port = port
        self.limits = limits or ThermalLimits()
        self.clock = clock or LslClock()
        sent = wire.tenths(baseline) / 10.0  # what the device will hold
        self.limits.check_baseline(sent)
        wire.encode("baseline", wire.tenths(baseline))  # within the device's 20-45 °C field
        self.baseline = sent
        if silence_s <= 1.0:
            raise ValueError(f"silence_s must exceed the 1 s idle stream period, got {silence_s}")
        self.silence_s = silence_s
        self.verify_before_start = verify_before_start
        self._factory = transport_factory or (
            lambda p: SerialTransport(p, char_delay_s=char_delay_s)
        )
        self._notifier = Notifier("tcs")
        self._link = TcsLink(port, self.clock, self._deliver, self._notify, self._on_lost,
                             reply_timeout_s, quiet_s)
        self._settings = Settings()
        self._wire_lock = threading.RLock()
        self._sample_callbacks: list[SampleCallback] = []
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._generation = 0
        self._verified = False
        self._cleared: tuple[ThermalLimits, Settings] | None = None  # last state that passed
        self.info: DeviceInfo | None = None
        self.last_error: str | None = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._stim_end: float | None = None  # clock time to read Q after a stimulation
        self._busy_until: float | None = None  # clock time the probe is back at baseline
        self._stim_started = 0.0  # monotonic: the 100 Hz stream is due from here
        self._following = False
        self._follow_zones: list[int] = []
        self._follow_dose = 0.0
        self._follow_time = 0.0
        self._follow_entered = 0.0
        self._follow_left: float | None = None
        self._last_feed = 0.0
        self._silent_at: float | None = None
        self._abort_pending = False
        self._overtemp_reported = False
        self._armed = False  # trigger input enabled: one start allowed
        self._triggered = False
        self._last_line = 0.0
        self._last_sample: TemperatureSample | None = None

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._link.is_open

    @property
    def settings(self) -> Settings:
        """The device state as the driver has programmed it."""
        return self._settings

    @property
    def following(self) -> bool:
        return self._following

    @property
    def stimulating(self) -> bool:
        """A started stimulation has not yet reached its expected end."""
        return self._stim_end is not None

    @property
    def busy(self) -> bool:
        """A stimulation is running or the probe is still returning to baseline."""
        return self._following or (
            self._busy_until is not None and self.clock.now() < self._busy_until)

    @property
    def generation(self) -> int:
        """Counts aborts; pass it to ``start`` so a STOP in between cancels the start."""
        return self._generation

    @property
    def garbage_bytes(self) -> int:
        """Bytes received that were neither a stream line nor an expected reply."""
        return self._link.garbage_bytes

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> DeviceInfo:
        """Open the port, identify the device and program a known, safe state (incl. ``Om``)."""
        if self.connected:
            raise DeviceError(f"{self.port}: already connected")
        self._link.open(self._factory(self.port))
        self._settings = Settings()
        self._verified = False
        self._reset_run_state()
        self._stop.clear()
        self._monitor = threading.Thread(target=self._monitor_loop, name="tcs-monitor",
                                         daemon=True)
        self._monitor.start()
        try:
            self._send(b"A")  # first of all: stop whatever the unit was doing
            identity = wire.decode_identity(self._query(b"?", "identity"))
            if identity != "TCS":
                raise DeviceFault(f"{self.port}: device answered {identity!r} to '?', not 'TCS'")
            self._program_known_state()
            lines = self._lines(b"H")
            fields = wire.decode_help(lines)
            self.info = DeviceInfo(identity, fields.get("Firmware", "unknown"),
                                   fields.get("Probe ID", "unknown"),
                                   fields.get("Probe TYPE", "unknown"), tuple(lines))
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
        rate = max(1, wire.tenths(min(10.0, self.limits.max_rate)))
        top = math.floor(self.limits.max_celsius * 10 + 1e-9)  # Om never rounds up
        frames = [
            wire.encode("target", 0, wire.tenths(self.baseline)),
            wire.encode("baseline", wire.tenths(self.baseline)),
            wire.encode("rise_rate", 0, rate),
            wire.encode("return_rate", 0, rate),
            wire.encode("duration", 0, 100),
            wire.encode_mask("enable_zones", [False] * wire.ZONES),
            wire.encode_mask("profile_enable", [False] * wire.ZONES),
            wire.encode("max_temperature", top),
            b"Oa",
            b"Ob",
        ]
        with self._wire_lock:
            self._send(b"A")  # (again, after a reset)
            self._send(b"Osd", check=False)
            state = Settings(trigger_input=False)
            for raw in frames:
                state = ts.apply(state, decode_one(raw))
            ts.check(self.limits, state)
            for raw in frames:
                self._send(raw, check=False)

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: SampleCallback) -> Callable[[], None]:
        """Call ``callback`` (on the reader thread; keep it quick) with every sample."""
        self._sample_callbacks.append(callback)
        return lambda: self._sample_callbacks.remove(callback)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(kind, message)`` (on a status thread) on connect, disconnect,
        errors (``error``), warnings and a lost port (``lost``)."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        """Wait until every status report so far has reached the subscribers."""
        return self._notifier.drain(timeout)

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        self._notifier.post(kind, message)

    # ------------------------------------------------------------------ the gate

    def _send(self, raw: bytes, reply: str | None = None, check: bool = True,
              generation: int | None = None) -> bytes | list[bytes] | None:
        """Check ``raw`` against the limits, write it, and return its reply if any."""
        with self._wire_lock:
            if not self._link.is_open:
                raise NotConnected(f"{self.port}: not connected")
            if generation is not None and generation != self._generation:
                raise DeviceError(f"{self.port}: {raw.decode()!r} not sent: STOP was requested")
            cmd = decode_one(raw)
            after = self._checked(cmd) if check else ts.apply(self._settings, cmd)
            if after != self._settings:
                self._verified = False
            self._settings = after
            self._link.fine = after.fine
            return self._link.transact(raw, reply)

    def _query(self, raw: bytes, reply: str) -> bytes:
        body = self._send(raw, reply)
        assert isinstance(body, bytes)
        return body

    def _lines(self, raw: bytes) -> list[str]:
        return [b.decode(errors="replace") for b in self._send(raw, "lines") or []]

    def _checked(self, cmd: wire.Command, before: Settings | None = None) -> Settings:
        """The state after ``cmd`` (from ``before``, default the current state), or
        LimitError naming the rule it breaks."""
        before = self._settings if before is None else before
        after = ts.apply(before, cmd)
        if cmd.name in ("abort", "reset"):
            return after
        if cmd.name not in ("start", "follow") and after == before:
            return after  # queries and outputs change nothing that could hurt
        if self._following and cmd.name not in FOLLOW_COMMANDS:
            raise LimitError(f"{cmd.name}: not allowed in follow mode; abort it first")
        if not self._following and self.busy and cmd.name in STIMULUS_COMMANDS:
            left = (self._busy_until or 0.0) - self.clock.now()
            raise LimitError(
                f"{cmd.name}: a stimulation is running or returning to baseline "
                f"({left:.1f} s left); wait for it or abort"
            )
        self._check_limits(after)
        if cmd.name in ("start", "follow") and not (
            after.enabled_zones() or any(after.profile_enabled)
        ):
            raise LimitError(f"{cmd.name}: no zone is enabled")
        if cmd.name == "trigger_input_on" and not after.stream_stimulation:
            raise LimitError("trigger input needs the 100 Hz stream on (it shows the start)")
        return after

    def _check_limits(self, state: Settings) -> None:
        """``ts.check(self.limits, state)``; the last state that passed is not checked again.

        Both are immutable, so the same objects give the same verdict: a start on settings
        checked when they were programmed skips the dose computations at the onset.
        """
        limits, cleared = self.limits, self._cleared
        if cleared is not None and cleared[0] is limits and cleared[1] is state:
            return
        ts.check(limits, state)
        self._cleared = (limits, state)

    def _send_sequence(self, frames: Sequence[bytes]) -> None:
        """Check the whole sequence first, then send it; a STOP in between ends it."""
        with self._wire_lock:
            generation = self._generation
            self._checked_sequence(frames)
            for raw in frames:
                self._send(raw, generation=generation)

    def _checked_sequence(self, frames: Sequence[bytes]) -> None:
        """Raise LimitError if any state along ``frames`` breaks a limit."""
        state = self._settings
        for raw in frames:
            state = self._checked(decode_one(raw), state)

    def _sequence_safe(self, frames: Sequence[bytes]) -> bool:
        try:
            self._checked_sequence(frames)
        except LimitError:
            return False
        return True

    # ------------------------------------------------------------------ stop

    def abort(self) -> None:
        """``A`` now: the device returns to baseline. Leaves follow mode; an armed trigger
        input is disarmed (``Osd``) right after.

        Never waits for a reply another command is waiting for, and a command sequence
        in progress on another thread stops before its next command.
        """
        self._generation += 1
        now = self.clock.now()
        if self._following:
            self._follow_time += now - self._follow_entered
            self._follow_left = now
        self._following = False
        self._armed = False
        self._stim_end = None
        self._busy_until = now + self._return_estimate()
        self._link.write_urgent(b"A")
        if self._settings.trigger_input:  # else the next scanner pulse restarts it
            self._link.write_urgent(b"Osd")
            self._settings = ts.apply(self._settings, decode_one(b"Osd"))

    def _return_estimate(self) -> float:
        """Seconds until every zone is back at baseline, from the last sample."""
        s = self._settings
        sample = self._last_sample
        temps = sample.zones if sample else tuple(z.target for z in s.zones)
        return RETURN_MARGIN_S + max(
            abs(t - s.baseline) / z.ret for t, z in zip(temps, s.zones, strict=True))

    def _fail_safe(self, reason: str) -> None:
        """Abort (device back to baseline) and report ``reason``."""
        try:
            self.abort()
        except DeviceError as exc:
            reason += f"; abort could not be sent: {exc}"
        self._notify("error", reason)

    def _on_lost(self, exc: Exception) -> None:
        self._stop.set()
        self._following = False
        self._stim_end = None
        self._notify("lost", f"{self.port}: connection lost ({exc}); reconnect when available")

    # ------------------------------------------------------------------ reader side

    def _deliver(self, now: float, body: bytes) -> None:
        """A stream line arrived at ``now``: check it, then hand it to the subscribers."""
        try:
            line = wire.decode_stream_line(body, self._link.fine)
        except DeviceError:
            return
        sample = TemperatureSample(line.neutral, line.zones, timestamp=now)
        self._last_sample = sample
        self._watch_triggered_start(now)
        self._watch_temperature(sample)
        call_each(self._sample_callbacks, sample)

    def _watch_temperature(self, sample: TemperatureSample) -> None:
        hot, cold = max(sample.zones), min(sample.zones)
        limits = self.limits
        if self._overtemp_reported or (
            limits.min_celsius - OVERTEMP_MARGIN_C <= cold
            and hot <= limits.max_celsius + OVERTEMP_MARGIN_C
        ):
            return
        self._overtemp_reported = True
        self._fail_safe(
            f"{self.port}: measured {hot if hot > limits.max_celsius else cold:.1f} °C is "
            f"outside the limits {limits.min_celsius:g}-{limits.max_celsius:g} °C; aborted"
        )

    def _watch_triggered_start(self, now: float) -> None:
        """While armed, the 100 Hz stream shows that the trigger input started a stimulus."""
        fast = now - self._last_line < 0.3  # idle lines come 1 s apart, stimulation ones 10 ms
        self._last_line = now
        if self._armed and fast and not self.busy:
            self._armed = False
            self._triggered = True  # the monitor disarms the input and tracks the stimulus
            self._mark_started(now)

    def _mark_started(self, now: float) -> None:
        s = self._settings
        length = 0.0
        for z in s.enabled_zones():
            stim = s.zones[z - 1]
            length = max(length, sum(seconds for seconds, _, _ in stim.segments(s.baseline)))
        if any(s.profile_enabled):
            segments = s.profile_segments_s()
            back = abs(segments[-1][1] - s.baseline) / min(z.ret for z in s.zones)
            length = max(length, sum(seconds for seconds, _ in segments) + back)
        self._stim_end = self._busy_until = now + length + RETURN_MARGIN_S
        self._stim_started = time.monotonic()
        self._overtemp_reported = False

    # ------------------------------------------------------------------ monitor

    def _monitor_loop(self) -> None:
        last = self.clock.now()
        while not self._stop.wait(0.01):
            now = self.clock.now()
            dt, last = now - last, now
            try:
                self._watch_follow(now, dt)
                self._watch_stimulation(now)
                self._watch_silence()
                self._watch_trigger_input()
            except DeviceError as exc:  # reported; the loop keeps guarding
                self._notify("error", str(exc))
            except Exception as exc:  # noqa: BLE001 - never let the guard die
                log.exception("TCS monitor")
                self._fail_safe(f"{self.port}: internal error in the safety monitor: {exc!r}")

    def _watch_follow(self, now: float, dt: float) -> None:
        if not self._following:
            return
        s = self._settings
        setpoint = max(s.zones[z - 1].target for z in self._follow_zones)
        allowed = self.limits.max_hold_s(setpoint)
        self._follow_dose += dt / allowed if allowed > 0 else math.inf
        slowest = min(s.zones[z - 1].ret for z in self._follow_zones)
        back = trajectory_dose(
            self.limits, [(abs(setpoint - s.baseline) / slowest, setpoint, s.baseline)])
        if self._follow_dose + back >= 1.0:
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

    def _watch_trigger_input(self) -> None:
        if self._triggered:
            self._triggered = False
            self._send(b"Osd")  # one start per arming
            self._notify("warning", f"{self.port}: trigger input started a stimulation")

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
        bad = describe_errors(codes)
        if bad:
            self._notify("error", f"{self.port}: stimulation ended early; device reports {bad}")
        return True

    # ------------------------------------------------------------------ errors

    def errors(self) -> tuple[int, ...]:
        """``Q``: error code per channel (neutral, zones 1-5); 0 = OK."""
        return wire.decode_errors(self._query(b"Q", "errors"))

    def check_errors(self) -> None:
        """Raise DeviceFault naming each channel whose ``Q`` code is not zero."""
        bad = describe_errors(self.errors())
        if bad:
            raise DeviceFault(f"{self.port}: device reports errors: {bad}")


def describe_errors(codes: Sequence[int]) -> str:
    """'zone 2 code 1, ...' for the non-zero ``Q`` codes; '' if all are zero."""
    return ", ".join(
        f"{'neutral' if i == 0 else f'zone {i}'} code {c}" for i, c in enumerate(codes) if c
    )


@functools.lru_cache(maxsize=256)  # Commands are immutable; malformed bytes raise (not cached)
def decode_one(raw: bytes) -> wire.Command:
    parser = wire.CommandParser()
    commands = [c for c in (parser.feed(b) for b in raw) if c is not None]
    if len(commands) != 1 or parser.errors:
        raise DeviceFault(f"refusing malformed command bytes {raw!r}")
    return commands[0]
