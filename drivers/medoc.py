"""Medoc TSA-II / Pathway thermal stimulator over TCP ("External Control"): typed commands.

Stimuli are programs defined in Medoc's software (MMS) and selected by an 8-bit code; this
driver selects, starts, triggers and stops them, polls the status and watches the measured
temperature (see :mod:`drivers.medoc_core`). Implements
:class:`drivers.interfaces.ThermalStimulator` with ``programs=True, ramp_and_hold=False``.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from drivers import medoc_wire as wire
from drivers.errors import DeviceError, DeviceSilent, LimitError
from drivers.interfaces import CapabilityError, ThermalCapabilities
from drivers.medoc_core import MedocCore, MedocSample, SafeModeError, TestStateTimeout
from drivers.medoc_link import MedocLink
from drivers.medoc_wire import Command, ReturnCode, Status, TestState
from drivers.thermal_safety import ThermalLimits
from qst_station.clock import Clock

__all__ = ["MedocDriver", "MedocSample", "SafeModeError", "TestStateTimeout", "TriggerRefused",
           "parse_address", "probe_lines"]

PROGRAMS_ONLY = ("stimuli on a Medoc TSA-II / Pathway are programs defined in Medoc's software "
                 "(MMS) and selected by their 8-bit code; use select_program(code)")


class TriggerRefused(DeviceError):
    """TRIGGER not sent: MMS is not RUNNING, so it would be lost (e.g. in the pre-test)."""


class MedocDriver(MedocCore):
    """Driver for one Medoc Main Station (MMS) reached over TCP, default port 20121.

    ``limits`` default to 0-50 °C, further narrowed to the thermode's documented range.
    ``allowed_programs`` (if given) are the only codes :meth:`select_program` will send.
    Waits in :meth:`start` and :meth:`stop` are in program-clock seconds; socket timeouts
    (``reply_timeout_s``, ``connect_timeout_s``) in real seconds.
    """

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
        allowed_programs: Collection[int] | None = None,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
        stop_on_safety_warning: bool = True,
    ) -> None:
        super().__init__(host, port, clock, limits, poll_interval_s, reply_timeout_s,
                         connect_timeout_s, thermode, stop_on_safety_warning)
        self.allowed_programs = None if allowed_programs is None else frozenset(allowed_programs)
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s

    @property
    def capabilities(self) -> ThermalCapabilities:
        t, limits = self.thermode, self.limits
        return ThermalCapabilities(
            device=f"Medoc TSA-II / Pathway ({t.name})", zones=1,
            min_celsius=max(limits.min_celsius, t.min_celsius),
            max_celsius=min(limits.max_celsius, t.max_celsius),
            max_rise_rate=min(limits.max_rate, t.max_heating),
            max_return_rate=min(limits.max_rate, t.max_cooling),
            ramp_and_hold=False, programs=True, extras=("yes_no", "covas", "vas"),
        )

    # ------------------------------------------------------------------ ThermalStimulator

    def set_baseline(self, celsius: float) -> None:
        """Not possible: the baseline is part of each Medoc program."""
        raise CapabilityError(f"{self.where}: cannot set a baseline: {PROGRAMS_ONLY}")

    def prepare_ramp_and_hold(self, target: float, rise: float, ret: float, hold_s: float,
                              zones: tuple[int, ...] = ()) -> None:
        """Not possible over External Control (see :data:`PROGRAMS_ONLY`)."""
        raise CapabilityError(f"{self.where}: cannot program a ramp-and-hold stimulus: "
                              f"{PROGRAMS_ONLY}")

    # ------------------------------------------------------------------ commands

    def _command(self, command: Command, parameter: int | None = None) -> Status:
        """Send ``command``; a non-OK return code raises its MedocReturnCodeError."""
        try:
            status = self._transact(command, parameter)
        except DeviceSilent as exc:
            if command == Command.GET_STATUS:
                raise
            try:
                self._transact(Command.GET_STATUS)
            except DeviceError:
                raise exc from None
            text = (f"{self.where}: MMS answers GET_STATUS but not {command.name}: it is "
                    "probably in Safe Mode (only GET_STATUS is answered until the operator "
                    "runs the self-test in MMS)")
            self._notify("error", text)
            raise SafeModeError(text) from None
        if not status.ok:
            raise wire.return_code_error(status.return_code, command, status.message, self.where)
        return status

    def get_status(self) -> Status:
        """GET_STATUS: states, return code, test time, temperature, CoVAS, YES/NO, TTL."""
        return self._command(Command.GET_STATUS)

    def select_program(self, code: int) -> Status:
        """SELECT_TP: choose the program MMS knows by ``code`` (0-255)."""
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise LimitError(f"program code {code!r} is not 0-255")
        if self.allowed_programs is not None and code not in self.allowed_programs:
            raise LimitError(f"program code {code} is not among the allowed programs "
                             f"{sorted(self.allowed_programs)}")
        return self._command(Command.SELECT_TP, code)

    def start(self, wait: bool = True, timeout_s: float | None = None) -> Status:
        """START, then poll until the test is RUNNING (past the pre-test phase).

        If RUNNING is not reached within ``timeout_s`` (default ``start_timeout_s``) the test
        is aborted and TestStateTimeout raised. ``wait=False`` returns after START.
        Also resumes a PAUSED test.
        """
        generation = self._generation
        status = self._command(Command.START)
        if not wait:
            return status
        try:
            return self._wait_for(lambda s: s.test_state == TestState.RUNNING and s.in_test,
                                  "RUNNING test state after START",
                                  timeout_s or self.start_timeout_s, generation)
        except TestStateTimeout as exc:
            with self._lock:
                raise TestStateTimeout(self._abort_now(str(exc))) from None

    def wait_until_running(self, timeout_s: float | None = None) -> Status:
        """Poll until the test is RUNNING (after ``start(wait=False)``)."""
        return self._wait_for(lambda s: s.test_state == TestState.RUNNING and s.in_test,
                              "RUNNING test state", timeout_s or self.start_timeout_s,
                              self._generation)

    def trigger(self) -> Status:
        """TRIGGER, only if MMS is RUNNING: a trigger in the pre-test would be lost.

        Raises TriggerRefused (nothing sent) in any other state.
        """
        with self._lock:
            status = self._command(Command.GET_STATUS)
            if not (status.in_test and status.test_state == TestState.RUNNING):
                phase = (" (pre-test: a TRIGGER now would be lost; wait for RUNNING)"
                         if status.in_test and status.test_state == TestState.READY else "")
                raise TriggerRefused(
                    f"{self.where}: TRIGGER not sent: system {status.system_state.name}, test "
                    f"{status.test_state.name}{phase}")
            return self._command(Command.TRIGGER)

    def pause(self) -> Status:
        """PAUSE the running test (``start()`` resumes it)."""
        return self._command(Command.PAUSE)

    def stop(self, wait: bool = True, timeout_s: float | None = None) -> Status:
        """STOP, then poll until the test state is IDLE (ABORT if it never gets there)."""
        generation = self._generation
        status = self._command(Command.STOP)
        if not wait:
            return status
        try:
            return self._wait_for(lambda s: s.test_state == TestState.IDLE,
                                  "IDLE test state after STOP",
                                  timeout_s or self.stop_timeout_s, generation)
        except TestStateTimeout as exc:
            with self._lock:
                raise TestStateTimeout(self._abort_now(str(exc))) from None

    def abort(self) -> None:
        """ABORT now; a wait in ``start``/``stop`` on another thread ends.

        Waits at most for the answer to a command already on the wire. An ABORT refused
        because nothing runs (ILLEGAL_STATE / ILLEGAL_TEST_STATE) is not an error.
        """
        self._generation += 1
        with self._lock:
            status = self._transact(Command.ABORT)
        harmless = (ReturnCode.OK, ReturnCode.ILLEGAL_STATE, ReturnCode.ILLEGAL_TEST_STATE)
        if status.return_code not in harmless:
            raise wire.return_code_error(status.return_code, Command.ABORT, status.message,
                                         self.where)

    def yes(self) -> Status:
        """YES, as the participant's YES button (e.g. ends a method-of-limits ramp)."""
        return self._command(Command.YES)

    def no(self) -> Status:
        return self._command(Command.NO)

    def keyup(self) -> Status:
        """KEYUP: the button was released (ends a YES/NO-driven temperature change)."""
        return self._command(Command.KEYUP)

    def covas(self, value: int) -> Status:
        """COVAS: a CoVAS value 0-100 (range assumed)."""
        return self._command(Command.COVAS, _integer("CoVAS value", value, 0, 100))

    def vas(self, value: int) -> Status:
        """VAS: a rating 0-100 (public examples send 0-10 in VAS-search programs)."""
        return self._command(Command.VAS, _integer("VAS rating", value, 0, 100))

    def specify_next(self, value: int) -> Status:
        """SPECIFY_NEXT: passed to MMS unchanged (its meaning depends on the program)."""
        return self._command(Command.SPECIFY_NEXT, _integer("SPECIFY_NEXT value", value, 0,
                                                            wire.U32_MAX))

    def t_up(self, celsius: float) -> Status:
        """T_UP by ``celsius`` (VAS search only); refused if it would pass the maximum."""
        return self._step(Command.T_UP, celsius)

    def t_down(self, celsius: float) -> Status:
        """T_DOWN by ``celsius`` (VAS search only); refused if it would pass the minimum."""
        return self._step(Command.T_DOWN, celsius)

    def _step(self, command: Command, celsius: float) -> Status:
        if not isinstance(celsius, int | float) or not math.isfinite(celsius) or celsius <= 0:
            raise LimitError(f"{command.name} step {celsius!r} °C must be a positive number")
        hundredths = round(celsius * 100)
        if hundredths < 1:
            raise LimitError(f"{command.name} step {celsius} °C is below 0.01 °C")
        with self._lock:
            now = self._command(Command.GET_STATUS).temperature_c
            caps = self.capabilities
            after = now + hundredths / 100 * (1 if command == Command.T_UP else -1)
            if not caps.min_celsius <= after <= caps.max_celsius:
                raise LimitError(f"{command.name} {celsius:g} °C from {now:.2f} °C would reach "
                                 f"{after:.2f} °C, outside {caps.min_celsius:g}-"
                                 f"{caps.max_celsius:g} °C")
            return self._command(command, hundredths)


def _integer(what: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise LimitError(f"{what} {value!r} is not an integer {low}-{high}")
    return value


# ---------------------------------------------------------------------- command line helpers


def parse_address(text: str, default_port: int = wire.DEFAULT_PORT) -> tuple[str, int]:
    """``"HOST[:PORT]"`` (IPv6 in brackets) -> (host, port); ValueError if malformed."""
    host, port = text.strip(), default_port
    if host.startswith("["):
        inner, _, rest = host[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"cannot read an address from {text!r}")
            port = _port(rest[1:], text)
    elif host.count(":") == 1:
        host, _, number = host.partition(":")
        port = _port(number, text)
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, port


def _port(number: str, text: str) -> int:
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return int(number)


def probe_lines(host: str, port: int = wire.DEFAULT_PORT, timeout_s: float = 2.0) -> list[str]:
    """Ask MMS for its status once (GET_STATUS only; nothing else is sent).

    Raises DeviceError (PortLost, DeviceSilent, ...) if MMS cannot be asked.
    """
    link = MedocLink(host, port, lambda kind, message: None, timeout_s, timeout_s)
    link.open()
    try:
        status = link.transact(Command.GET_STATUS)
    finally:
        link.close()
    lines = [
        f"address:      {host}:{port}",
        f"system state: {status.system_state.name}",
        f"test state:   {status.test_state.name}",
        f"return code:  {wire.describe_return_code(status.return_code)}",
        f"temperature:  {status.temperature_c:.2f} °C",
        f"test time:    {status.test_time_ms / 1000:.3f} s",
        f"CoVAS:        {status.covas}",
        f"YES / NO:     {status.yes} / {status.no}",
        f"TTL:          {status.ttl}",
    ]
    if status.message:
        lines.append(f"message:      {status.message}")
    return lines
