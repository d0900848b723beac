"""A simulated Medoc Main Station (MMS) with one thermode: programs, states, physics (no I/O).

Requests go in through :meth:`MedocDevice.handle` (decoded) or :meth:`receive` (bytes);
both return the answer bytes (``None``/``b""`` where MMS stays silent: Safe Mode). Time
advances with every call and with :meth:`step`. Requests and answers use
:mod:`drivers.medoc_wire`, like the driver. The state model is assumed (docs/medoc.md):

- READY/IDLE: nothing selected. SELECT_TP -> READY/READY (or the pre-test, if the program
  starts automatically). START -> TEST/READY during the pre-test (``pretest_s``; a TRIGGER
  then is acknowledged and lost) -> TEST/RUNNING. A program that waits for triggers starts
  each stimulus on TRIGGER. After its last stimulus, STOP (``stop_s`` later) or ABORT:
  READY/IDLE, program deselected. A safety error: IDLE/IDLE, optionally Safe Mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from drivers import medoc_wire as wire
from drivers.errors import WireError
from drivers.medoc_wire import Command, Request, ReturnCode, Status, SystemState, TestState

NOISE_C = 0.02  # sensor noise, standard deviation
LAG_S = {"ATS": 0.15, "CHEPS": 0.03}  # first-order lag of the surface behind the setpoint
PRESS_S = 0.3  # a YES/NO command shows in the status this long
IDLE_RETURN_RATE = 2.0  # °C/s back to rest when no program says otherwise


@dataclass(frozen=True)
class Program:
    """A test program as MMS would have it (defined in Medoc's software, selected by code).

    ``kind``: ``ramp_hold`` (baseline -> target at ``rise``, hold ``hold_s``, back at
    ``ret``), ``limits`` (ramp toward the cut-off ``target`` until YES) or ``vas_search``
    (to ``target``, moved by T_UP/T_DOWN, held ``hold_s``).
    """

    name: str
    kind: str = "ramp_hold"
    baseline: float = wire.REST_CELSIUS
    target: float = 40.0
    rise: float = 2.0
    ret: float = 2.0
    hold_s: float = 3.0
    stimuli: int = 1
    wait_for_trigger: bool = True
    auto_start: bool = False


DEFAULT_PROGRAMS: dict[int, Program] = {
    1: Program("warm 40 °C for 3 s, on trigger", target=40.0),
    2: Program("heat 44 °C for 5 s, on trigger", target=44.0, rise=4.0, ret=4.0, hold_s=5.0),
    3: Program("method of limits, heat (cut-off 50 °C)", kind="limits", target=50.0,
               rise=1.0, ret=5.0, wait_for_trigger=False),
    4: Program("method of limits, cold (cut-off 0 °C)", kind="limits", target=0.0,
               rise=1.0, ret=1.0, wait_for_trigger=False),
    5: Program("VAS search from 40 °C", kind="vas_search", target=40.0, hold_s=600.0,
               wait_for_trigger=False),
}


@dataclass
class MedocDevice:
    """MMS state machine and one thermode. ``seed`` makes the sensor noise reproducible."""

    thermode: str = "ATS"
    seed: int = 0
    programs: dict[int, Program] = field(default_factory=lambda: dict(DEFAULT_PROGRAMS))
    pretest_s: float = 1.5
    stop_s: float = 0.5
    noise_c: float = NOISE_C
    # what happened, for tests
    log: list[Request] = field(default_factory=list)
    lost_triggers: int = 0
    ignored_triggers: int = 0
    stimuli_started: int = 0
    unanswered: int = 0
    vas_ratings: list[int] = field(default_factory=list)
    specified: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.spec = wire.thermode(self.thermode)
        self.lag_s = LAG_S[self.spec.name]
        self._rng = np.random.default_rng(self.seed)
        self._decoder = wire.RequestDecoder()
        self.system_state, self.test_state = SystemState.READY, TestState.IDLE
        self.program: Program | None = None
        self.code: int | None = None
        self.stage = "idle"  # idle | pretest | wait | rise | hold | return | stopping
        self.temperature = self.setpoint = self.goal = wire.REST_CELSIUS
        self.rate = IDLE_RETURN_RATE
        self.covas = self.ttl = 0
        self.safe_mode = False
        self._until = 0.0  # end of the pre-test or of stopping
        self._hold_left = 0.0
        self._done = 0
        self._test_time = 0.0
        self._yes_until = self._no_until = -math.inf
        self._pending: list[tuple[int, str]] = []  # carried by the next answer
        self._fail_next: tuple[int, str] | None = None
        self._now: float | None = None

    # -------------------------------------------------------------- requests

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed request bytes (either length byte order); returns the answers."""
        try:
            requests = self._decoder.feed(data)
        except WireError:
            self._decoder = wire.RequestDecoder()
            return b""
        return b"".join(self.handle(r, now) or b"" for r in requests)

    def handle(self, request: Request, now: float) -> bytes | None:
        """Execute one request; the answer bytes, or None where MMS would not answer."""
        self._advance(now)
        self.log.append(request)
        if self.safe_mode and request.command != Command.GET_STATUS:
            self.unanswered += 1
            return None
        if self._fail_next is not None and request.command != Command.GET_STATUS:
            (code, message), self._fail_next = self._fail_next, None
        else:
            code, message = self._execute(request, now)
        if self._pending and code == ReturnCode.OK:
            code, message = self._pending.pop(0)
        return wire.encode_response(self.status(request.command, code, message,
                                                request.timestamp))

    def status(self, command: int = Command.GET_STATUS, code: int = ReturnCode.OK,
               message: str = "", timestamp: int = 0) -> Status:
        """The answer MMS would give now (noisy temperature)."""
        now = self._now if self._now is not None else 0.0
        reading = self.temperature + float(self._rng.normal(0.0, self.noise_c))
        if self.safe_mode and not message:
            message = "Safe mode: run the self-test in MMS"
        return Status(
            self.system_state, self.test_state, code,
            int(self._test_time * 1000) if self.system_state == SystemState.TEST else 0,
            max(-327.68, min(327.67, round(reading, 2))), self.covas,
            int(now < self._yes_until), int(now < self._no_until), self.ttl, message,
            command, timestamp)

    def _execute(self, request: Request, now: float) -> tuple[int, str]:
        p = request.parameter or 0  # a missing parameter reads as 0 (clients omit 0)
        in_test = self.system_state == SystemState.TEST
        match request.command:
            case Command.GET_STATUS:
                pass
            case Command.SELECT_TP:
                if in_test:
                    return ReturnCode.ILLEGAL_STATE, "a test is running"
                if p not in self.programs:
                    return ReturnCode.ILLEGAL_ARG, f"no program with code {p}"
                self.program, self.code = self.programs[p], p
                self.system_state, self.test_state = SystemState.READY, TestState.READY
                if self.program.auto_start:
                    self._begin_pretest(now)
            case Command.START:
                if in_test and self.test_state == TestState.PAUSED:
                    self.test_state = TestState.RUNNING
                elif self.program is None:
                    return ReturnCode.ILLEGAL_STATE, "no program selected"
                elif in_test or self.test_state != TestState.READY:
                    return ReturnCode.ILLEGAL_TEST_STATE, "already started"
                else:
                    self._begin_pretest(now)
            case Command.PAUSE:
                if not in_test or self.test_state != TestState.RUNNING:
                    return ReturnCode.ILLEGAL_TEST_STATE, "not running"
                self.test_state = TestState.PAUSED
            case Command.TRIGGER:
                if not in_test:
                    return ReturnCode.ILLEGAL_STATE, "no test running"
                self._trigger()
            case Command.STOP:
                if not in_test:
                    return ReturnCode.ILLEGAL_STATE, "no test running"
                self.stage, self._until = "stopping", now + self.stop_s
                self._head_to(self.program.baseline if self.program else wire.REST_CELSIUS)
            case Command.ABORT:
                if in_test:
                    self._end_test()
            case Command.YES:
                self.press_yes(now, PRESS_S)
            case Command.NO:
                self.press_no(now, PRESS_S)
            case Command.COVAS:
                if p > 100:
                    return ReturnCode.ILLEGAL_ARG, f"CoVAS {p} is not 0-100"
                self.covas = p
            case Command.VAS:
                self.vas_ratings.append(p)
            case Command.SPECIFY_NEXT:
                self.specified.append(p)
            case Command.T_UP | Command.T_DOWN:
                if not in_test or self.program is None or self.program.kind != "vas_search":
                    return ReturnCode.ILLEGAL_TEST_STATE, "T_UP/T_DOWN need a VAS search"
                sign = 1 if request.command == Command.T_UP else -1
                self.goal = self._clamp(self.goal + sign * p / 100.0)
                if self.stage == "hold":
                    self.stage = "rise"
            case Command.KEYUP:
                if self.stage == "rise" and self.program and self.program.kind != "ramp_hold":
                    self.goal = self.setpoint  # stop the gradient where it is
            case _:
                return ReturnCode.ILLEGAL_ARG, f"unknown command {request.command}"
        return ReturnCode.OK, ""

    # -------------------------------------------------------------- the outside world

    def press_yes(self, now: float, hold_s: float = PRESS_S) -> None:
        """The participant presses YES (shown for ``hold_s``); ends a method-of-limits ramp."""
        self._advance(now)
        self._yes_until = now + hold_s
        if self.program and self.program.kind == "limits" and self.stage == "rise":
            self._head_to(self.program.baseline, "return")

    def press_no(self, now: float, hold_s: float = PRESS_S) -> None:
        self._advance(now)
        self._no_until = now + hold_s

    def set_covas(self, value: int) -> None:
        self.covas = max(0, min(100, int(value)))

    def fault(self, kind: str, message: str = "", safe_mode: bool = False) -> None:
        """``"safety_error"``: the test ends, MMS goes IDLE (and Safe Mode if asked);
        ``"safety_warning"``: the test continues. The next answer carries the code."""
        if kind == "safety_error":
            self._end_test()
            self.system_state = SystemState.IDLE
            self.safe_mode = self.safe_mode or safe_mode
            self._pending.append((ReturnCode.SAFETY_ERROR, message or "simulated safety error"))
        elif kind == "safety_warning":
            self._pending.append((ReturnCode.SAFETY_WARNING, message or "simulated warning"))
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def fail_next(self, code: int, message: str = "") -> None:
        """The next command other than GET_STATUS is not carried out and answers ``code``."""
        self._fail_next = (code, message)

    def self_test(self) -> None:
        """The operator runs the self-test in MMS: Safe Mode ends."""
        self.safe_mode = False
        self.system_state = SystemState.READY

    # -------------------------------------------------------------- the program

    def _begin_pretest(self, now: float) -> None:
        assert self.program is not None
        self.system_state, self.test_state = SystemState.TEST, TestState.READY
        self.stage, self._until = "pretest", now + self.pretest_s
        self._done, self._test_time = 0, 0.0
        self._head_to(self.program.baseline)

    def _trigger(self) -> None:
        assert self.program is not None
        if self.stage == "pretest":
            self.lost_triggers += 1  # acknowledged, and lost
        elif (self.stage == "wait" and self.test_state == TestState.RUNNING
              and self.program.wait_for_trigger):
            self._begin_stimulus()
        else:
            self.ignored_triggers += 1

    def _begin_stimulus(self) -> None:
        assert self.program is not None
        self.stimuli_started += 1
        self.rate = self.program.rise
        self.goal, self.stage = self._clamp(self.program.target), "rise"

    def _head_to(self, celsius: float, stage: str | None = None) -> None:
        self.goal = self._clamp(celsius)
        self.rate = self.program.ret if self.program else IDLE_RETURN_RATE
        if stage:
            self.stage = stage

    def _end_test(self) -> None:
        self._head_to(self.program.baseline if self.program else wire.REST_CELSIUS)
        self.system_state, self.test_state = SystemState.READY, TestState.IDLE
        self.stage, self.program, self.code = "idle", None, None

    def _clamp(self, celsius: float) -> float:
        return max(self.spec.min_celsius, min(self.spec.max_celsius, celsius))

    def _advance_program(self, now: float, dt: float) -> None:
        program = self.program
        if self.system_state != SystemState.TEST or program is None:
            return
        if self.test_state == TestState.PAUSED:
            return
        self._test_time += dt
        if self.stage == "pretest" and now >= self._until:
            self.test_state, self.stage = TestState.RUNNING, "wait"
            if not program.wait_for_trigger:
                self._begin_stimulus()
        elif self.stage == "rise" and self.setpoint == self.goal:
            if program.kind == "limits":  # cut-off reached without a YES
                self._head_to(program.baseline, "return")
            else:
                self.stage, self._hold_left = "hold", program.hold_s
        elif self.stage == "hold":
            self._hold_left -= dt
            if self._hold_left <= 0:
                self._head_to(program.baseline, "return")
        elif self.stage == "return" and self.setpoint == self.goal:
            self._done += 1
            if self._done >= program.stimuli:
                self._end_test()
            else:
                self.stage = "wait"
                if not program.wait_for_trigger:
                    self._begin_stimulus()
        elif self.stage == "stopping" and now >= self._until:
            self._end_test()

    # -------------------------------------------------------------- time

    def step(self, now: float) -> bytes:
        """Advance to ``now``. MMS never speaks unasked, so this returns ``b""``."""
        self._advance(now)
        return b""

    def _advance(self, now: float) -> None:
        if self._now is None:
            self._now = now
        dt = now - self._now
        if dt <= 0:
            return
        self._now = now
        self._advance_program(now, dt)
        up = self.goal > self.setpoint
        limit = self.spec.max_heating if up else self.spec.max_cooling
        max_step = min(self.rate, limit) * dt
        if abs(self.goal - self.setpoint) <= max_step:
            self.setpoint = self.goal
        else:
            self.setpoint += math.copysign(max_step, self.goal - self.setpoint)
        alpha = 1.0 - math.exp(-dt / self.lag_s)
        self.temperature += (self.setpoint - self.temperature) * alpha

    def snapshot(self) -> dict[str, object]:
        """States, stage and temperatures, for tests and the CLI."""
        return {"system": self.system_state.name, "test": self.test_state.name,
                "stage": self.stage, "program": self.code,
                "temperature": round(self.temperature, 2), "setpoint": round(self.setpoint, 2)}
