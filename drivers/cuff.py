"""Computer-controlled cuff pressure stimulator (two outlets) over OCP/1 (docs/cuff-protocol.md).

The driver is the last gate: every program is rounded to the wire's resolution and its whole
target trajectory is checked against ``max_kpa`` before a byte is written. A reader thread
timestamps data lines on the program clock when they arrive, hands samples to subscribers
and events (``E STOPPED``, ``E FAULT``, ``E RESET``) to :meth:`CuffDriver.on_event`; a
monitor re-applies the settings after a device reset and sends STOP when the data stops.
Errors, over-pressure and disconnects send STOP (both outlets deflate) when the device can
be reached, and are reported through :meth:`CuffDriver.on_status`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from drivers import cuff_wire as wire
from drivers.cuff_program import Program, Segment, plan_program
from drivers.errors import (
    DeviceError,
    DeviceFault,
    DeviceSilent,
    LimitError,
    NotConnected,
    PortLost,
)
from drivers.notifier import Notifier, call_each
from drivers.transport import SerialTransport, Transport, pump
from qst_station.clock import Clock, LslClock

log = logging.getLogger(__name__)
OVERPRESSURE_MARGIN = 5.0  # kPa above the limit in a sample: the driver stops the run itself
STOP_LINE = wire.encode_command(wire.Stop())
MODES = {"vas": "VAS", "button": "BUTTON"}


@dataclass(frozen=True)
class CuffSample(wire.Data):
    """One ``D`` line (``t_ms``: device time), stamped on the program clock when it arrived."""
    timestamp: float = 0.0

    @property
    def all(self) -> tuple[float, ...]:
        return (self.p1, self.target1, self.p2, self.target2, self.vas, float(self.button))


@dataclass(frozen=True)
class CuffEvent:
    """An ``E`` line (:class:`wire.Stopped`, :class:`wire.Fault`, :class:`wire.Reset`)."""
    timestamp: float
    event: wire.Event


class DeviceRefused(DeviceFault):
    """The device answered ``ERR <code>``; the command had no effect."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CuffDriver:
    """A two-outlet cuff pressure stimulator speaking OCP/1 on a serial port."""

    def __init__(self, port: str, clock: Clock | None = None, max_kpa: float = 100.0,
                 transport_factory: Callable[[str], Transport] | None = None,
                 stop_mode: str = "vas", reply_timeout_s: float = 0.5, silence_s: float = 1.0,
                 first_sample_timeout_s: float = 2.0) -> None:
        if not wire.LIMIT_MIN <= max_kpa <= wire.PRESSURE_MAX:
            raise ValueError(f"max_kpa must be {wire.LIMIT_MIN:g}-{wire.PRESSURE_MAX:g}")
        if stop_mode not in MODES:
            raise ValueError(f"stop mode must be one of {', '.join(MODES)}, not {stop_mode!r}")
        self.port = port
        self.clock = clock or LslClock()
        self.max_kpa = math.floor(max_kpa * 10 + 1e-9) / 10  # never rounds up
        self.limit = self.max_kpa  # min(max_kpa, the LIMIT the device applied)
        self.stop_mode = stop_mode
        self.reply_timeout_s = reply_timeout_s
        self.silence_s = silence_s
        self.first_sample_timeout_s = first_sample_timeout_s
        self._factory = transport_factory or (
            lambda p: SerialTransport(p, baudrate=wire.BAUDRATE, char_delay_s=0.0))
        self._transport: Transport | None = None
        self._lock = threading.RLock()
        self._replies: queue.Queue[wire.Reply] = queue.Queue()
        self._stop_acked = threading.Event()
        self._write_lock = threading.Lock()  # orders STOP against a START decided before it
        self._generation = 0  # STOPs so far
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._notifier = Notifier("cuff")
        self._sample_callbacks: list[Callable[[CuffSample], None]] = []
        self._event_callbacks: list[Callable[[CuffEvent], None]] = []
        self.info: wire.Identity | None = None
        self.programs: dict[int, Program] = {}
        self.running = False
        self.latest: CuffSample | None = None
        self.last_stop: CuffEvent | None = None
        self.last_error: str | None = None
        self.bad_lines = 0
        self._last_rx = time.monotonic()
        self._silent = self._reset_pending = self._over_reported = False

    # ------------------------------------------------------------------ subscribers

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def subscribe(self, callback: Callable[[CuffSample], None]) -> Callable[[], None]:
        """Every sample, on the reader thread (quick; send no command from it)."""
        self._sample_callbacks.append(callback)
        return lambda: self._sample_callbacks.remove(callback)

    def on_event(self, callback: Callable[[CuffEvent], None]) -> Callable[[], None]:
        """Every ``E`` line (stopped with final values, fault, reset), like :meth:`subscribe`."""
        self._event_callbacks.append(callback)
        return lambda: self._event_callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        """``(kind, message)``: connected, disconnected, stopped, warning, error, lost."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        self._notifier.post(kind, message)

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> wire.Identity:
        """Open the port, check ``ID``, STOP, set the limit, stop mode, empty programs, stream."""
        if self.connected:
            raise DeviceError(f"{self.port}: already connected")
        self._close()  # threads left over from a lost connection
        self._transport = transport = self._factory(self.port)
        self._closing.clear()
        self.latest, self.running, self._silent = None, False, False
        self._last_rx = time.monotonic()
        self._threads = [
            threading.Thread(target=self._read_loop, args=(transport,), daemon=True,
                             name="cuff-reader"),
            threading.Thread(target=self._monitor_loop, daemon=True, name="cuff-monitor")]
        for thread in self._threads:
            thread.start()
        try:
            self.info = self._identify()
            self.stop()
            self._setup()
            end = time.monotonic() + self.first_sample_timeout_s
            while self.latest is None and time.monotonic() < end:
                time.sleep(0.01)
            if self.latest is None:
                raise DeviceSilent(f"{self.port}: no data line within "
                                   f"{self.first_sample_timeout_s} s of STREAM ON")
        except BaseException:
            self._close()
            raise
        self._notify("connected", f"{self.info.model} (firmware {self.info.firmware}, "
                                  f"{self.info.protocol}) on {self.port}, limit {self.limit:g} kPa")
        return self.info

    def disconnect(self) -> None:
        """STOP (both outlets deflate), stream off, close."""
        if not self.connected:
            return
        with contextlib.suppress(DeviceError):
            self.stop()
            self._transact(wire.SetStream(False))
        self._close()
        self._notify("disconnected", f"{self.port} closed")

    def reconnect(self) -> wire.Identity:
        """Close what is left of the connection and connect again (programs are cleared)."""
        self._close()
        return self.connect()

    def _identify(self) -> wire.Identity:
        for attempt in (1, 2):  # a partial line left in the device's buffer spoils the first
            try:
                reply = self._transact(wire.Identify())
                break
            except (DeviceRefused, DeviceSilent):
                if attempt == 2:
                    raise
        assert isinstance(reply, wire.Identity)
        if reply.protocol != wire.PROTOCOL:
            raise DeviceFault(f"{self.port}: device speaks {reply.protocol}, not {wire.PROTOCOL}")
        return reply

    def _setup(self) -> None:
        with self._lock:
            self.programs.clear()
            ack = self._transact(wire.SetLimit(self.max_kpa))
            assert isinstance(ack, wire.Ack) and isinstance(ack.command, wire.SetLimit)
            if ack.command.kpa > self.max_kpa:
                raise DeviceFault(f"{self.port}: device set LIMIT {ack.command.kpa:g} kPa, "
                                  f"above the requested {self.max_kpa:g}")
            self.limit = ack.command.kpa
            for cmd in (wire.SetMode(MODES[self.stop_mode]), wire.ClearProgram(1),
                        wire.ClearProgram(2), wire.SetStream(True)):
                self._transact(cmd)

    def _close(self) -> None:
        self._closing.set()
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self._threads = []
        self.running = False

    def _lost(self, exc: Exception) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        self._closing.set()
        self.running = False
        self._notify("lost", f"{self.port}: connection lost ({exc}); the device deflates when "
                             "it loses the host; reconnect() when it is back")
        transport.close()

    # ------------------------------------------------------------------ commands

    def program(self, outlet: int, segments: Sequence[Segment], repeat: int = 1) -> Program:
        """Load a program on ``outlet``; LimitError (nothing written) if it breaks a limit."""
        plan = plan_program(outlet, segments, repeat, self.limit)
        with self._lock:
            self._idle("program")
            self.programs.pop(outlet, None)
            try:
                for cmd in (wire.ClearProgram(outlet), *plan.segments,
                            wire.SetRepeat(outlet, repeat)):
                    self._transact(cmd)
            except DeviceError:
                with contextlib.suppress(DeviceError):
                    self._transact(wire.ClearProgram(outlet))
                raise
            self.programs[outlet] = plan
        return plan

    def clear_program(self, outlet: int) -> None:
        with self._lock:
            self._idle("clear_program")
            self._transact(wire.ClearProgram(outlet))
            self.programs.pop(outlet, None)

    def set_stop_mode(self, mode: str) -> None:
        """``"vas"``: stop at VAS maximum (10 cm) or on the button; ``"button"``: button only."""
        if mode not in MODES:
            raise ValueError(f"stop mode must be one of {', '.join(MODES)}, not {mode!r}")
        with self._lock:
            self._idle("set_stop_mode")
            self._transact(wire.SetMode(MODES[mode]))
            self.stop_mode = mode

    @property
    def generation(self) -> int:
        """Counts STOPs; pass it to :meth:`start` so that a STOP in between cancels it."""
        return self._generation

    def start(self, force: bool = False, generation: int | None = None) -> int:
        """Run the loaded programs; the device time (ms) of the start. The device refuses
        (:class:`DeviceRefused`, code ``VAS``) unless the VAS reads 0, unless ``force``.
        With ``generation`` (read when the start was decided), a :meth:`stop` since then
        cancels it: START is never written after that STOP."""
        with self._lock:
            self._idle("start")
            if not self.programs:
                raise LimitError(f"{self.port}: start: no program is loaded")
            try:
                reply = self._transact(wire.Start(force), generation)
            except DeviceRefused as exc:
                if exc.code != "VAS":
                    raise
                raise DeviceRefused("VAS", f"{self.port}: start refused, the participant's VAS "
                                           f"is not at 0 ({exc}); ask them to return it to 0, "
                                           "or start(force=True)") from None
        assert isinstance(reply, wire.Started)
        return reply.t_ms

    def stop(self) -> None:
        """``STOP``: both outlets deflate now; does not wait for a command in progress."""
        self._stop_acked.clear()
        with self._write_lock:  # a START decided before this STOP is not written after it
            self._generation += 1
            self._write(STOP_LINE)
        if threading.current_thread() in self._threads:
            return
        if not self._stop_acked.wait(self.reply_timeout_s):
            self._notify("error", f"{self.port}: STOP was not acknowledged")
            raise DeviceSilent(f"{self.port}: no reply to STOP within {self.reply_timeout_s} s")

    def status(self) -> wire.StatusReport:
        reply = self._transact(wire.QueryStatus())
        assert isinstance(reply, wire.StatusReport)
        return reply

    def _idle(self, what: str) -> None:
        if not self.connected:
            raise NotConnected(f"{self.port}: {what}: not connected")
        if self.running:
            raise LimitError(f"{self.port}: {what}: a program is running; stop it first")

    # ------------------------------------------------------------------ the wire

    def _write(self, raw: bytes) -> None:
        transport = self._transport
        if transport is None:
            raise NotConnected(f"{self.port}: not connected")
        try:
            transport.write(raw)
        except PortLost as exc:
            self._lost(exc)
            raise

    def _transact(self, cmd: wire.Command, generation: int | None = None) -> wire.Reply:
        """Write ``cmd`` and return its reply. Anything but a refusal also sends STOP.
        With ``generation``: not written if a STOP came since (DeviceError)."""
        raw = wire.encode_command(cmd)
        text = raw.decode().strip()
        with self._lock:
            while not self._replies.empty():
                self._replies.get_nowait()
            with self._write_lock:
                if generation is not None and generation != self._generation:
                    raise DeviceError(f"{self.port}: {text!r} not sent: STOP was requested")
                self._write(raw)
            deadline = time.monotonic() + self.reply_timeout_s
            try:
                while True:
                    try:
                        reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        raise DeviceSilent(f"{self.port}: no reply to {text!r} within "
                                           f"{self.reply_timeout_s} s") from None
                    if isinstance(reply, wire.Refused):
                        raise DeviceRefused(reply.code, f"{self.port}: {text!r} refused: "
                                                        f"{reply.code} {reply.message}")
                    if _answers(cmd, reply):
                        return reply
                    self._notify("warning", f"{self.port}: {reply!r} does not answer {text!r}")
            except DeviceRefused:
                raise
            except (DeviceSilent, DeviceFault) as exc:
                self._fail_safe(str(exc))
                raise

    def _fail_safe(self, reason: str, kind: str = "error") -> None:
        """Send STOP without waiting (both outlets deflate) and report ``reason``."""
        try:
            self._stop_acked.clear()
            self._write(STOP_LINE)
        except DeviceError as exc:
            reason, kind = f"{reason}; STOP could not be sent: {exc}", "error"
        self._notify(kind, reason)

    def _read_loop(self, transport: Transport) -> None:
        splitter = wire.LineSplitter()

        def on_data(data: bytes) -> None:
            now = self.clock.now()
            self._last_rx = time.monotonic()
            for line in splitter.feed(data):
                try:
                    self._handle(now, line)
                except Exception:  # noqa: BLE001 - one bad line must not lose the others
                    log.exception("cuff reader")

        pump(transport, self._closing, on_data, self._lost, "cuff")

    def _handle(self, now: float, line: bytes) -> None:
        try:
            item = wire.decode_line(line)
        except DeviceError as exc:
            self.bad_lines += 1
            self._notify("warning", f"{self.port}: {exc}")
            return
        match item:
            case wire.Data():
                self._on_data(now, item)
            case wire.Ack(wire.Stop()):
                self._stop_acked.set()
            case wire.Stopped() | wire.Fault() | wire.Reset():
                self._on_event(now, item)
            case _:
                if isinstance(item, wire.Started):  # in order: before any E STOPPED
                    self.running, self._over_reported = True, False
                self._replies.put(item)

    def _on_data(self, now: float, d: wire.Data) -> None:
        sample = CuffSample(d.t_ms, d.p1, d.target1, d.p2, d.target2, d.vas, d.button, now)
        self.latest = sample
        highest = max(d.p1, d.p2)
        if highest > self.limit + OVERPRESSURE_MARGIN and not self._over_reported:
            self._over_reported = True
            self._fail_safe(f"{self.port}: measured {highest:.1f} kPa, above the "
                            f"{self.limit:g} kPa limit; STOP sent")
        elif highest <= self.limit:
            self._over_reported = False
        call_each(self._sample_callbacks, sample)

    def _on_event(self, now: float, item: wire.Event) -> None:
        event = CuffEvent(now, item)
        match item:
            case wire.Stopped(reason, _, p1, p2, vas):
                self.running, self.last_stop = False, event
                self._notify("error" if reason in ("LIMIT", "FAULT") else "stopped",
                             f"{self.port}: stopped ({reason}): outlet 1 {p1:.1f} kPa, outlet 2 "
                             f"{p2:.1f} kPa, VAS {vas:.1f} cm")
            case wire.Fault(code, outlet):
                where = f"outlet {outlet}" if outlet else "the device"
                self._notify("error", f"{self.port}: device fault {code} on {where}")
            case wire.Reset():
                self.running, self._reset_pending = False, True
                self._notify("error", f"{self.port}: the device restarted; limit, stop mode and "
                                      "stream are set again; programs must be loaded again")
        call_each(self._event_callbacks, event)

    def _monitor_loop(self) -> None:
        while not self._closing.wait(0.05):
            try:
                if self._reset_pending:
                    self._reset_pending = False
                    self._setup()
                self._watch_silence()
            except DeviceError as exc:
                self._notify("error", str(exc))
            except Exception as exc:  # noqa: BLE001 - never let the guard die
                log.exception("cuff monitor")
                self._fail_safe(f"{self.port}: internal error in the monitor: {exc!r}")

    def _watch_silence(self) -> None:
        """Silence is judged in real time (the wire's), whatever the clock speed."""
        quiet = time.monotonic() - self._last_rx
        if quiet <= self.silence_s:
            if self._silent:  # the STOP sent into the silence may have been lost
                self._silent = False
                self._fail_safe(f"{self.port}: data lines again; STOP sent again", "warning")
        elif not self._silent and self.connected:
            self._silent = True
            self._fail_safe(f"{self.port}: no data from the device for {quiet:.1f} s; STOP sent")


def _answers(cmd: wire.Command, reply: wire.Reply) -> bool:
    """True if ``reply`` is the reply to ``cmd``; DeviceFault if it echoes other values."""
    if isinstance(cmd, wire.Identify | wire.Start | wire.QueryStatus):
        expected = {wire.Identify: wire.Identity, wire.Start: wire.Started,
                    wire.QueryStatus: wire.StatusReport}[type(cmd)]
        return isinstance(reply, expected)
    if not isinstance(reply, wire.Ack) or type(reply.command) is not type(cmd):
        return False
    if reply.command != cmd and not isinstance(cmd, wire.SetLimit):
        raise DeviceFault(f"device applied {reply.command!r}, not {cmd!r}")
    return True
