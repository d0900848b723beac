"""The Medoc driver's core: connection, the polling thread and the safety watch.

Every answer from MMS (to a poll or to a command) passes :meth:`MedocCore._judge`: safety
return codes are reported and leave the session safe, the measured temperature is checked
against the configured limits (more than 1 °C outside: ABORT) and its dose against the dose
envelope. The stimuli themselves are programs defined in Medoc's software, so these checks
are the driver's only guard. :class:`drivers.medoc.MedocDriver` adds the typed commands.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers import medoc_wire as wire
from drivers.errors import DeviceError, DeviceSilent, NotConnected, PortLost
from drivers.medoc_link import ConnectionDropped, MedocLink
from drivers.medoc_wire import Command, ReturnCode, Status, SystemState, TestState
from drivers.notifier import Notifier, call_each
from drivers.thermal_safety import ThermalLimits
from qst_station.clock import Clock, LslClock

log = logging.getLogger(__name__)

OVERTEMP_MARGIN_C = 1.0  # a measured temperature this far outside the limits aborts
StatusCallback = Callable[[str, str], None]
ResponseCallback = Callable[[str, int, float], None]


@dataclass(frozen=True)
class MedocSample:
    """One thermode temperature (°C), stamped on the program clock when the answer arrived."""

    timestamp: float
    temperature: float
    test_time_ms: int = 0
    system_state: SystemState = SystemState.IDLE
    test_state: TestState = TestState.IDLE

    @property
    def all(self) -> tuple[float]:
        return (self.temperature,)


class SafeModeError(DeviceError):
    """MMS answers GET_STATUS but ignores other commands: Safe Mode (assumed)."""


class TestStateTimeout(DeviceError):
    """MMS did not reach the expected test state in time."""

    __test__ = False


class MedocCore:
    """Connection, polling and guards of one MMS (see :class:`drivers.medoc.MedocDriver`)."""

    def __init__(
        self,
        host: str,
        port: int = wire.DEFAULT_PORT,
        clock: Clock | None = None,
        limits: ThermalLimits | None = None,
        poll_interval_s: float = 0.1,
        reply_timeout_s: float = 1.0,
        connect_timeout_s: float = 2.0,
        thermode: str = "ATS",
        stop_on_safety_warning: bool = True,
    ) -> None:
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self.host, self.port = host, port
        self.where = f"MMS {host}:{port}"
        self.clock = clock or LslClock()
        self.limits = limits or ThermalLimits()
        self.thermode = wire.thermode(thermode)
        self.poll_interval_s = poll_interval_s
        self.stop_on_safety_warning = stop_on_safety_warning
        self._notifier = Notifier("medoc")
        self._link = MedocLink(host, port, self._notify, reply_timeout_s, connect_timeout_s)
        self._lock = threading.RLock()  # one command/one answer at a time
        self._sample_callbacks: list[Callable[[MedocSample], None]] = []
        self._response_callbacks: list[ResponseCallback] = []
        self._connected = False
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._generation = 0
        self.last_error: str | None = None
        self._reset_watch()

    def _reset_watch(self) -> None:
        self._status: Status | None = None
        self._status_time = 0.0
        self._inputs = (0, 0, 0)  # yes, no, CoVAS last published
        self._silent = False
        self._problem: str | None = None  # the last failed poll's message
        self._aborting = False
        self._abort_pending = False
        self._overtemp_reported = False
        self._last_code = ReturnCode.OK
        self._dose = 0.0
        self._exposed_s = 0.0
        self._rested_s = 0.0
        self._dose_time: float | None = None
        self._dose_reported = False

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def status(self) -> Status | None:
        """The last answer from MMS (any command)."""
        return self._status

    @property
    def busy(self) -> bool:
        """MMS runs a test (pre-test, running or paused), as of the last answer."""
        return self._status is not None and self._status.in_test

    @property
    def generation(self) -> int:
        """Counts aborts: a wait in ``start``/``stop`` ends when it changes."""
        return self._generation

    @property
    def dose(self) -> float:
        """Fraction of the dose envelope used by the measured temperatures (1.0 aborts)."""
        return self._dose

    @property
    def garbage_bytes(self) -> int:
        return self._link.garbage_bytes

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> Status:
        """Open the connection, read the status and start polling every ``poll_interval_s``.

        A test already running on MMS is left alone (and reported as a warning).
        """
        if self._connected:
            raise DeviceError(f"{self.where}: already connected")
        self._reset_watch()
        self._link.open()
        self._connected = True
        try:
            status = self._transact(Command.GET_STATUS)
        except BaseException:
            self._close()
            raise
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, args=(self._stop,),
                                        name="medoc-poll", daemon=True)
        self._poller.start()
        self._notify("connected", f"{self.where}: system {status.system_state.name}, test "
                     f"{status.test_state.name}, {status.temperature_c:.2f} °C")
        if status.in_test:
            self._notify("warning", f"{self.where}: a test is already running on MMS")
        return status

    def disconnect(self) -> None:
        """ABORT a test in progress, stop polling and close the connection."""
        if not self._connected:
            return
        self._stop_polling()
        if self.busy:
            with contextlib.suppress(DeviceError):
                self._transact(Command.ABORT)
        self._close()
        self._notify("disconnected", f"{self.where}: closed")

    def reconnect(self) -> Status:
        """Close whatever is left of the old connection and connect again."""
        self._close()
        return self.connect()

    def _close(self) -> None:
        self._connected = False
        with self._lock:
            self._link.close()
        self._stop_polling()

    def _stop_polling(self) -> None:
        self._stop.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=2.0)
        self._poller = None

    def _lose(self, exc: Exception) -> None:
        if not self._connected:
            return
        self._stop.set()
        self._connected = False
        self._link.close()
        test = " MMS keeps running any test it had started;" if self.busy else ""
        self._notify("lost", f"{self.where}: connection lost ({exc});{test} reconnect when "
                     "MMS is reachable")

    # ------------------------------------------------------------------ subscribers

    def subscribe(self, callback: Callable[[MedocSample], None]) -> Callable[[], None]:
        """Call ``callback`` (on the polling thread; keep it quick) with every sample."""
        self._sample_callbacks.append(callback)
        return lambda: self._sample_callbacks.remove(callback)

    def on_response(self, callback: ResponseCallback) -> Callable[[], None]:
        """Call ``callback(kind, value, timestamp)`` when YES, NO or CoVAS change.

        ``kind`` is ``"yes"``, ``"no"`` or ``"covas"``; the timestamp is the arrival of the
        first answer that showed the change (up to one poll interval after the press).
        """
        self._response_callbacks.append(callback)
        return lambda: self._response_callbacks.remove(callback)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """``callback(kind, message)``: connected, disconnected, warning, error, lost."""
        return self._notifier.subscribe(callback)

    def drain_status(self, timeout: float = 2.0) -> bool:
        return self._notifier.drain(timeout)

    def _notify(self, kind: str, message: str) -> None:
        if kind in ("error", "lost"):
            self.last_error = message
        self._notifier.post(kind, message)

    # ------------------------------------------------------------------ the wire

    def _transact(self, command: Command, parameter: int | None = None) -> Status:
        """One command, one answer (any return code), judged before it is returned."""
        with self._lock:
            if not self._connected:
                raise NotConnected(f"{self.where}: not connected")
            try:
                try:
                    status = self._link.transact(command, parameter)
                except ConnectionDropped:
                    if command != Command.GET_STATUS:
                        raise
                    status = self._link.transact(command, parameter)  # harmless to repeat
            except PortLost as exc:
                self._lose(exc)
                raise
            self._status, self._status_time = status, self.clock.now()
            self._judge(status, command)
            return status

    def _abort_now(self, reason: str) -> str:
        """Send ABORT (lock held); returns ``reason`` with the outcome appended."""
        self._generation += 1
        if self._aborting:
            return reason  # judging the answer to our own ABORT
        self._aborting = True
        try:
            self._transact(Command.ABORT)
        except DeviceError as exc:
            self._abort_pending = True
            return f"{reason}; ABORT could not be sent ({exc})"
        finally:
            self._aborting = False
        self._abort_pending = False
        return f"{reason}; test aborted"

    def _judge(self, status: Status, command: Command) -> None:
        if self._silent:
            self._silent = False
            if self._abort_pending and status.in_test and command != Command.ABORT:
                self._notify("warning", self._abort_now(f"{self.where}: MMS answers again"))
        code, name = status.return_code, wire.command_name(command)
        if code != self._last_code or command != Command.GET_STATUS:
            self._report_code(status, name)
        self._last_code = code
        self._watch_temperature(status)
        self._watch_dose(status)

    def _report_code(self, status: Status, name: str) -> None:
        code = status.return_code
        text = f"{self.where}: {wire.describe_return_code(code)} in the answer to {name}"
        text += f" ({status.message})" if status.message else ""
        if code == ReturnCode.SAFETY_ERROR:
            if status.in_test:
                text = self._abort_now(text)
            self._notify("error", text)
        elif code == ReturnCode.SAFETY_WARNING:
            if self.stop_on_safety_warning and status.in_test:
                text = self._abort_now(text + " (stop_on_safety_warning)")
            self._notify("warning", text)
        elif code != ReturnCode.OK and name == Command.GET_STATUS.name:
            self._notify("error", text)  # other commands raise theirs to the caller

    def _watch_temperature(self, status: Status) -> None:
        celsius, limits = status.temperature_c, self.limits
        low = max(limits.min_celsius, self.thermode.min_celsius) - OVERTEMP_MARGIN_C
        high = min(limits.max_celsius, self.thermode.max_celsius) + OVERTEMP_MARGIN_C
        if low <= celsius <= high:
            self._overtemp_reported = False
            return
        if self._overtemp_reported:
            return
        self._overtemp_reported = True
        text = (f"{self.where}: measured {celsius:.2f} °C is more than {OVERTEMP_MARGIN_C:g} °C "
                f"outside the limits {low + OVERTEMP_MARGIN_C:g}-{high - OVERTEMP_MARGIN_C:g} °C")
        self._notify("error", self._abort_now(text) if status.in_test else text)

    def _watch_dose(self, status: Status) -> None:
        """Miner's-rule dose of the measured temperature; resets after as long a rest."""
        now, last = self._status_time, self._dose_time
        self._dose_time = now
        if last is None or now <= last:
            return
        dt, celsius = now - last, status.temperature_c
        if celsius < self.limits.envelope[0][0]:
            self._rested_s += dt
            if self._rested_s >= self._exposed_s:
                self._dose = self._exposed_s = 0.0
                self._dose_reported = False
            return
        self._rested_s = 0.0
        self._exposed_s += dt
        allowed = self.limits.max_hold_s(celsius)
        self._dose += dt / allowed if allowed > 0 else math.inf
        if self._dose >= 1.0 and not self._dose_reported:
            self._dose_reported = True
            text = (f"{self.where}: measured temperatures used up the dose envelope "
                    f"({celsius:.1f} °C for {self._exposed_s:.1f} s)")
            self._notify("error", self._abort_now(text) if status.in_test else text)

    # ------------------------------------------------------------------ polling

    def _poll_loop(self, stop: threading.Event) -> None:
        """GET_STATUS every ``poll_interval_s`` (clock time); samples and inputs go out here."""
        while not stop.wait(self.poll_interval_s / self.clock.speed):
            try:
                with self._lock:
                    status = self._transact(Command.GET_STATUS)
                    now = self._status_time
            except (NotConnected, PortLost):
                return  # closed, or lost (reported)
            except DeviceSilent as exc:
                self._on_silent(exc)
                continue
            except DeviceError as exc:
                self._poll_problem("warning", str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - the watch must not die
                log.exception("Medoc poll")
                self._poll_problem("error", f"{self.where}: internal error while polling: "
                                   f"{exc!r}")
                continue
            self._problem = None
            self._publish(status, now)

    def _poll_problem(self, kind: str, message: str) -> None:
        """Report a failed poll, once while the same problem repeats."""
        if message != self._problem:
            self._problem = message
            self._notify(kind, message)

    def _on_silent(self, exc: DeviceSilent) -> None:
        if self._silent:
            return
        self._silent = True
        text = f"{exc}; temperatures are not being watched"
        if self.busy:
            with self._lock:
                text = self._abort_now(text)
        self._notify("error", text)

    def _publish(self, status: Status, now: float) -> None:
        sample = MedocSample(now, status.temperature_c, status.test_time_ms,
                             status.system_state, status.test_state)
        call_each(self._sample_callbacks, sample)
        inputs = (status.yes, status.no, status.covas)
        for kind, old, new in zip(("yes", "no", "covas"), self._inputs, inputs, strict=True):
            if old != new:
                call_each(self._response_callbacks, kind, new, now)
        self._inputs = inputs

    # ------------------------------------------------------------------ waiting

    def _wait_for(self, done: Callable[[Status], bool], what: str, timeout_s: float,
                  generation: int) -> Status:
        """Poll GET_STATUS until ``done``; DeviceError if ABORT intervenes or time runs out."""
        deadline = self.clock.now() + timeout_s
        while True:
            status = self._transact(Command.GET_STATUS)
            if done(status):
                return status
            if generation != self._generation:
                raise DeviceError(f"{self.where}: stopped waiting for {what}: ABORT was sent")
            if not status.ok:
                raise wire.return_code_error(status.return_code, Command.GET_STATUS,
                                             status.message, self.where)
            if self.clock.now() >= deadline:
                raise TestStateTimeout(
                    f"{self.where}: no {what} within {timeout_s:g} s (system "
                    f"{status.system_state.name}, test {status.test_state.name})")
            time.sleep(self.poll_interval_s / self.clock.speed)
