"""Reference implementation of OCP/1 (docs/cuff-protocol.md): a two-outlet cuff stimulator.

:class:`CuffDevice` is the device without I/O (bytes in through :meth:`~CuffDevice.receive`,
time through :meth:`~CuffDevice.step`); :class:`SimulatedCuff` serves it on a pty. Outlets
inflate toward their target with a rate limit and a first-order lag and deflate fast; a
seeded :class:`Participant` moves the VAS slider with the pressure and presses the button
at tolerance. Faults: leaks and sensor faults, a runaway pump, power cycles.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers import cuff_wire as wire
from drivers.errors import FieldRangeError, WireError
from qst_station.clock import Clock, LslClock, make_clock
from sim.pty_link import PtySimulator

HW_MAX = 100.0  # kPa
DT = wire.TICK_MS / 1000.0
INFLATE_RATE, INFLATE_TAU = 30.0, 0.2  # kPa/s, s
DEFLATE_RATE, DEFLATE_TAU = 200.0, 0.1
NOISE_KPA = 0.05
REACTION_S = 0.5  # from reaching tolerance to pressing the button
RESYNC_MS = 5000  # a pump lagging more than this skips ticks instead of catching up


class Participant:
    """Rates the stronger cuff on a 0-10 cm VAS (0 up to pain detection, 10 at tolerance,
    slow noise) and presses the button ``REACTION_S`` after reaching tolerance."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.detection = float(rng.uniform(20.0, 30.0))
        self.tolerance = float(rng.uniform(50.0, 70.0))
        self.held_vas: float | None = None  # the slider held by hand, whatever the pressure
        self.held_button: bool | None = None
        self.vas = 0.0
        self.button = False
        self._noise = 0.0
        self._over_s = 0.0

    def update(self, kpa: float, dt: float) -> None:
        raw = 10.0 * (kpa - self.detection) / (self.tolerance - self.detection)
        if raw > 0:  # noise drawn only while it hurts: the same run gives the same ratings
            self._noise = 0.9 * self._noise + float(self._rng.normal(0.0, 0.1))
            raw += self._noise
        self.vas = wire.quantize(min(max(raw, 0.0), wire.VAS_MAX))
        self._over_s = self._over_s + dt if kpa >= self.tolerance else 0.0
        if self._over_s >= REACTION_S:
            self.button = True
        elif kpa < self.detection:
            self.button = False
        if self.held_vas is not None:
            self.vas = self.held_vas
        if self.held_button is not None:
            self.button = self.held_button


@dataclass
class Outlet:
    """One cuff: its program, the running position in it, and the physical pressure."""

    segments: list[wire.AddSegment] = field(default_factory=list)
    repeat: int = 1
    pressure: float = 0.0
    target: float = 0.0
    runaway: bool = False  # the pump runs on whatever the target
    active: bool = False
    _seg: int = 0
    _tick: int = 0
    _rep: int = 0
    _base: float = 0.0

    def begin(self) -> None:
        self.active, self.target = bool(self.segments), 0.0
        self._seg = self._tick = self._rep = 0
        self._base = 0.0

    @property
    def finished(self) -> bool:
        """Every tick of the program has run (or there is none)."""
        return not self.active or self._rep >= self.repeat

    def advance(self) -> None:
        """One 50 ms tick of the program; after its last tick the outlet deflates."""
        if not self.active or self._rep >= self.repeat:
            self.active, self.target = False, 0.0
            return
        seg = self.segments[self._seg]
        self._tick += 1
        if seg.kind == "STEP":
            self.target = seg.value
        else:
            sign = 1.0 if seg.kind == "INC" else -1.0
            self.target = max(0.0, self._base + sign * seg.value * self._tick * DT)
        if self._tick * wire.TICK_MS >= seg.ms:
            self._base, self._tick, self._seg = self.target, 0, self._seg + 1
            if self._seg == len(self.segments):
                self._seg, self._rep = 0, self._rep + 1

    def physics(self) -> None:
        if self.runaway:
            self.pressure += INFLATE_RATE * DT
            return
        error = self.target - self.pressure
        tau, rate = (INFLATE_TAU, INFLATE_RATE) if error > 0 else (DEFLATE_TAU, DEFLATE_RATE)
        change = error * (1.0 - math.exp(-DT / tau))
        self.pressure += min(max(change, -rate * DT), rate * DT)


class CuffDevice:
    """The OCP/1 state machine, two outlets and a participant. ``seed`` fixes both the
    participant (thresholds, rating noise) and the sensor noise."""

    def __init__(self, seed: int = 0, model: str = "qst-sim-cuff", firmware: str = "1.0",
                 max_kpa: float = HW_MAX) -> None:
        self.identity = wire.Identity(wire.PROTOCOL, model, firmware, max_kpa)
        self.participant = Participant(np.random.default_rng([seed, 1]))
        self._rng = np.random.default_rng([seed, 0])
        self._splitter = wire.LineSplitter()
        self.lines: list[bytes] = []  # every line received
        self.commands: list[wire.Command] = []  # every line that decoded
        self._pending = bytearray()  # events raised between ticks
        self._tick_ms: int | None = None  # when the next tick is due
        self._last_ms = 0  # the last tick
        self._measured = (0.0, 0.0)
        self._defaults()

    def _defaults(self) -> None:
        self.limit = self.identity.max_kpa
        self.mode = "VAS"
        self.stream = False
        self.running = False
        self.outlets = (Outlet(), Outlet())
        self.last_stop: wire.Stopped | None = None

    # -------------------------------------------------------------- the outside world

    def fault(self, code: str, outlet: int) -> None:
        """The hardware detects a fault: ``E FAULT``, and a running program stops."""
        self._pending += wire.encode_line(wire.Fault(code, outlet))
        self._deflate()
        if self.running:
            self._pending += self._stop("FAULT", self._last_ms)

    def runaway(self, outlet: int) -> None:
        """The pump of ``outlet`` keeps inflating until the over-pressure check dumps it."""
        self.outlets[outlet - 1].runaway = True

    def host_lost(self) -> None:
        """The host went away (USB detached): deflate; a run stops (FAULT), unheard."""
        if self.running:
            self._stop("FAULT", self._last_ms)
        self._deflate()
        self._pending.clear()

    def power_cycle(self) -> None:
        """Reset: defaults, deflate, ``E RESET``."""
        pressures = [o.pressure for o in self.outlets]
        self._defaults()
        for outlet, kpa in zip(self.outlets, pressures, strict=True):
            outlet.pressure = kpa
        self._pending += wire.encode_line(wire.Reset(wire.PROTOCOL))

    # -------------------------------------------------------------- host lines

    def receive(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for line in self._splitter.feed(data):
            self.lines.append(line)
            out += self._execute(line, now)
        return bytes(out)

    def _execute(self, line: bytes, now: float) -> bytes:
        try:
            cmd = wire.decode_command(line)
        except FieldRangeError as exc:
            return _err("RANGE", str(exc))
        except WireError as exc:  # the garbled line may have been a STOP
            stop = self._stop("FAULT", int(now * 1000)) if self.running else b""
            return _err("SYNTAX", str(exc)) + stop
        self.commands.append(cmd)
        busy = self.running and not isinstance(cmd, wire.Identify | wire.Stop | wire.QueryStatus
                                                    | wire.SetStream)
        if busy:
            return _err("BUSY", "a program is running; STOP first")
        reply: wire.Reply = wire.Ack(cmd)
        match cmd:
            case wire.Identify():
                reply = self.identity
            case wire.SetLimit(kpa):
                self.limit = min(kpa, self.identity.max_kpa)
                reply = wire.Ack(wire.SetLimit(self.limit))
            case wire.ClearProgram(outlet):
                self.outlets[outlet - 1].segments, self.outlets[outlet - 1].repeat = [], 1
            case wire.AddSegment(outlet):
                if len(self.outlets[outlet - 1].segments) == wire.MAX_SEGMENTS:
                    return _err("FULL", f"outlet {outlet} has {wire.MAX_SEGMENTS} segments")
                self.outlets[outlet - 1].segments.append(cmd)
            case wire.SetRepeat(outlet, count):
                self.outlets[outlet - 1].repeat = count
            case wire.SetMode(mode):
                self.mode = mode
            case wire.SetStream(on):
                self.stream = on
            case wire.Stop():
                stop = self._stop("STOP", int(now * 1000)) if self.running else b""
                return wire.encode_line(reply) + stop
            case wire.QueryStatus():
                reply = self._status()
            case wire.Start(force):
                return self._start(force, now)
        return wire.encode_line(reply)

    def _start(self, force: bool, now: float) -> bytes:
        if not any(o.segments for o in self.outlets):
            return _err("EMPTY", "no outlet has a program")
        for number, outlet in enumerate(self.outlets, 1):
            lo, hi, _ = wire.program_targets(outlet.segments, outlet.repeat)
            if lo < -1e-6:
                return _err("RANGE", f"outlet {number} program goes below 0 kPa")
            if hi > self.limit + 1e-6:
                return _err("LIMIT", f"outlet {number} program reaches {hi:.1f} kPa, "
                                     f"above LIMIT {self.limit:.1f}")
        if self.participant.vas != 0.0 and not force:
            return _err("VAS", f"VAS reads {self.participant.vas:.1f} cm, not 0")
        start_ms = int(now * 1000)
        self._tick_ms = start_ms + wire.TICK_MS  # the program's ticks count from START
        self.running = True
        for outlet in self.outlets:
            outlet.begin()
        return wire.encode_line(wire.Started(start_ms % (wire.TIME_MAX_MS + 1)))

    def _stop(self, reason: str, t_ms: int) -> bytes:
        """End the run: deflate both outlets; the ``E STOPPED`` line."""
        self.running = False
        self._deflate()
        m1, m2 = self._measured
        self.last_stop = wire.Stopped(reason, t_ms % (wire.TIME_MAX_MS + 1), m1, m2,
                                      self.participant.vas)
        return wire.encode_line(self.last_stop)

    def _deflate(self) -> None:
        for outlet in self.outlets:
            outlet.active, outlet.target, outlet.runaway = False, 0.0, False

    def _status(self) -> wire.StatusReport:
        o1, o2 = self.outlets
        return wire.StatusReport("RUNNING" if self.running else "IDLE", self.mode, self.limit,
                                 len(o1.segments), o1.repeat, len(o2.segments), o2.repeat,
                                 *self._measured, self.participant.vas, self.participant.button)

    # -------------------------------------------------------------- time

    def step(self, now: float) -> bytes:
        """Run every 50 ms tick up to ``now``; returns the lines they produce."""
        out, self._pending = self._pending, bytearray()
        now_ms = int(now * 1000)
        if self._tick_ms is None or now_ms - self._tick_ms > RESYNC_MS:
            self._tick_ms = now_ms
        while self._tick_ms <= now_ms:
            out += self._tick(self._tick_ms)
            self._tick_ms += wire.TICK_MS
        return bytes(out)

    def _tick(self, t_ms: int) -> bytes:
        out, self._last_ms = b"", t_ms
        for outlet in self.outlets:
            if self.running:
                outlet.advance()
            outlet.physics()
        self.participant.update(max(o.pressure for o in self.outlets), DT)
        m1, m2 = (wire.quantize(min(max(o.pressure + NOISE_KPA * self._rng.standard_normal(),
                                        0.0), wire.PRESSURE_MAX)) for o in self.outlets)
        self._measured = (m1, m2)
        vas, button = self.participant.vas, self.participant.button
        if self.stream:  # before any event of this tick
            targets = [wire.quantize(o.target) for o in self.outlets]
            out += wire.encode_line(wire.Data(t_ms % (wire.TIME_MAX_MS + 1), m1, targets[0],
                                              m2, targets[1], vas, button))
        over = [n for n, m in ((1, m1), (2, m2)) if m > self.limit + wire.OVERPRESSURE_MARGIN]
        if self.running:
            reason = ("LIMIT" if over else "BUTTON" if button
                      else "VAS" if self.mode == "VAS" and vas >= wire.VAS_MAX
                      else "END" if all(o.finished for o in self.outlets) else None)
            if reason:
                out += self._stop(reason, t_ms)
        elif over:
            self._deflate()
            out += wire.encode_line(wire.Fault("VALVE", over[0]))
        return out


def _err(code: str, message: str) -> bytes:
    text = "".join(c if " " <= c <= "~" else "?" for c in message).strip() or code
    return wire.encode_line(wire.Refused(code, text[: wire.MAX_LINE - 11]))


class SimulatedCuff(PtySimulator):
    """:class:`CuffDevice` on a pty; open :attr:`port` with :class:`drivers.cuff.CuffDriver`."""

    def __init__(self, clock: Clock | None = None, link: str | os.PathLike[str] | None = None,
                 seed: int = 0) -> None:
        self.device = CuffDevice(seed=seed)
        super().__init__(clock, link, tick_s=0.01)

    @property
    def participant(self) -> Participant:
        return self.device.participant

    def hold_vas(self, cm: float | None) -> None:
        """The participant holds the slider at ``cm`` (None: rates the pressure again)."""
        with self.lock:
            self.device.participant.held_vas = None if cm is None else wire.quantize(cm)

    def hold_button(self, pressed: bool | None) -> None:
        with self.lock:
            self.device.participant.held_button = pressed

    def fault(self, code: str = "LEAK", outlet: int = 1) -> None:
        with self.lock:
            self.device.fault(code, outlet)

    def runaway(self, outlet: int = 1) -> None:
        with self.lock:
            self.device.runaway(outlet)

    def power_cycle(self) -> None:
        with self.lock:
            self.device.power_cycle()

    def disconnect(self) -> None:
        """The cable is pulled: the port vanishes and the device deflates."""
        self.pty.disconnect()
        with self.lock:
            self.device.host_lost()


def serve_forever(link: str | None = None, speed: float = 1.0, seed: int = 0,
                  echo: Callable[[str], None] = print) -> None:
    """Serve a simulated cuff stimulator until Ctrl-C or SIGTERM (``qst-station sim cuff``)."""
    simulator = SimulatedCuff(make_clock(speed), link=link, seed=seed).start()
    done = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set()) if main else None
    where = f"{link} -> {simulator.pty.path}" if link else simulator.pty.path
    echo(f"simulated cuff stimulator ({wire.PROTOCOL}) on {where} (speed {speed:g}x, "
         f"seed {seed}); Ctrl-C to stop")
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        if main:
            signal.signal(signal.SIGTERM, previous)
        echo("simulator stopped")


def probe_lines(port: str, seconds: float = 1.0, clock: Clock | None = None) -> list[str]:
    """Connect to an OCP/1 device on ``port``, read for ``seconds``; a report, line by line.

    Raises :class:`drivers.errors.DeviceError` if the device cannot be reached or identified.
    """
    from drivers.cuff import CuffDriver, CuffSample

    clock = clock or LslClock()
    driver = CuffDriver(port, clock=clock)
    samples: list[CuffSample] = []
    driver.subscribe(samples.append)
    try:
        info = driver.connect()
        clock.sleep(seconds)
        status = driver.status()
    finally:
        driver.disconnect()
    last = samples[-1]
    return [
        f"port:       {port}",
        f"protocol:   {info.protocol}",
        f"device:     {info.model}, firmware {info.firmware}, maximum {info.max_kpa:.1f} kPa",
        f"limit:      {status.limit:.1f} kPa, stop mode {status.mode}",
        f"state:      {'RUNNING' if status.running else 'IDLE'}",
        f"samples:    {len(samples)} in {seconds:g} s",
        f"outlet 1:   {last.p1:.1f} kPa (target {last.target1:.1f})",
        f"outlet 2:   {last.p2:.1f} kPa (target {last.target2:.1f})",
        f"VAS:        {last.vas:.1f} cm, button {'pressed' if last.button else 'up'}",
    ]
