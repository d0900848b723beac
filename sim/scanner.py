"""A simulated MRI scanner's trigger box on a pty: one character per volume.

Volume ``i`` (1-based) falls due at ``start + start_delay_s + (i - 1) * tr_s`` plus a
seeded uniform jitter in ``[-jitter_s, +jitter_s]``. Dropped volumes (a fixed set, or
each with ``drop_probability``) are not sent; nor are volumes that fall due while the
cable is pulled (:meth:`SimulatedScanner.disconnect`). What was sent, and when, on the
shared clock, is recorded for validation.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from qst_station.clock import Clock, LslClock, make_clock
from sim.pty_link import PtyLink


@dataclass(frozen=True)
class Send:
    """A trigger character handed to the pty master."""

    index: int
    time: float  # program clock, taken immediately before the character is written
    perf: float  # time.perf_counter() at the same moment (benchmarks)


class SimulatedScanner:
    """Start with :meth:`start` (or ``with``); a driver opens :attr:`port`.

    ``volumes=None`` runs until stopped. Inputs from the driver side are ignored.

    Each trigger is written when it falls due: the pump sleeps until the next due time
    (event-driven, not a polling tick), so it goes out within the system's wake-up latency
    (tens of microseconds) of its schedule. ``tick_real_s`` is only a fallback wake-up.
    """

    def __init__(
        self,
        tr_s: float = 2.0,
        volumes: int | None = None,
        character: bytes = b"5",
        clock: Clock | None = None,
        link: str | os.PathLike[str] | None = None,
        jitter_s: float = 0.0,
        drop: Collection[int] = (),
        drop_probability: float = 0.0,
        seed: int = 0,
        start_delay_s: float = 0.0,
        tick_real_s: float = 0.05,
    ) -> None:
        if not tr_s > 0:
            raise ValueError(f"TR must be positive, got {tr_s!r}")
        if not 0 <= jitter_s < tr_s / 2:
            raise ValueError(f"jitter must be in [0, TR/2), got {jitter_s!r}")
        if not 0 <= drop_probability <= 1:
            raise ValueError(f"drop probability must be in [0, 1], got {drop_probability!r}")
        if volumes is not None and volumes < 0:
            raise ValueError(f"volumes must be >= 0 or None, got {volumes!r}")
        if len(character) != 1:
            raise ValueError(f"the trigger character must be one byte, got {character!r}")
        self.tr_s, self.volumes, self.character = tr_s, volumes, bytes(character)
        self.jitter_s, self.drop_probability = jitter_s, drop_probability
        self.drop = frozenset(drop)
        self.start_delay_s = start_delay_s
        self.clock = clock or LslClock()
        self.sent: list[Send] = []
        self.dropped: list[int] = []  # not sent on purpose
        self.unplugged: list[int] = []  # fell due while the cable was pulled
        self.scheduled: dict[int, float] = {}  # when each volume fell due (jitter included)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._t0: float | None = None
        self._next = 1
        self._due = 0.0
        self._skip = False
        self.lsl: Any = None  # an LslScannerOutlet also publishing each volume
        self.pty = PtyLink(lambda data, now: b"", self._step, self.clock.now,
                           speed=self.clock.speed, link=link, tick_s=0.0,
                           min_tick_real_s=tick_real_s, due=self._next_due)

    @property
    def port(self) -> str:
        return self.pty.port

    @property
    def finished(self) -> bool:
        """Every volume has fallen due (sent, dropped or lost to a pulled cable)."""
        return self.volumes is not None and self._next > self.volumes

    @property
    def send_times(self) -> dict[int, float]:
        with self._lock:
            return {s.index: s.time for s in self.sent}

    def start(self) -> SimulatedScanner:
        """Volume 1 falls due ``start_delay_s`` clock seconds from now."""
        with self._lock:
            self._t0 = self.clock.now() + self.start_delay_s
            self._plan()
        self.pty.start()
        return self

    def stop(self) -> None:
        self.pty.stop()
        self._done.set()

    def __enter__(self) -> SimulatedScanner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` clock seconds for the last volume; True if it fell due."""
        real = None if timeout is None else timeout / self.clock.speed
        self._done.wait(real)
        return self.finished

    # -------------------------------------------------------------- faults

    def disconnect(self) -> None:
        """Pull the cable: the port vanishes; volumes falling due meanwhile are lost."""
        self.pty.disconnect()

    def reattach(self) -> None:
        """Plug back in (new pty, same symlink); the scan went on meanwhile."""
        with self._lock:
            self._fall_due(self.clock.now(), unplugged=True)
            if self.finished:
                self._done.set()
        self.pty.reattach()

    def inject(self, data: bytes) -> None:
        """Send raw bytes (stray characters, an extra trigger) to the driver."""
        self.pty.inject(data)

    # -------------------------------------------------------------- schedule

    def _plan(self) -> None:
        """Due time and fate of volume ``self._next`` (random draws in volume order)."""
        assert self._t0 is not None
        jitter = self._rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
        chance = self._rng.random() < self.drop_probability if self.drop_probability else False
        self._due = self._t0 + (self._next - 1) * self.tr_s + jitter
        self._skip = self._next in self.drop or chance
        self.scheduled[self._next] = self._due

    def _fall_due(self, now: float, unplugged: bool = False) -> list[int]:
        """Volumes due by ``now`` that are to be sent (the others are booked as lost)."""
        send: list[int] = []
        while self._t0 is not None and not self.finished and now >= self._due:
            if unplugged:
                self.unplugged.append(self._next)
            elif self._skip:
                self.dropped.append(self._next)
            else:
                send.append(self._next)
            self._next += 1
            if not self.finished:
                self._plan()
        return send

    def _next_due(self) -> float | None:
        """Clock time the pump must wake for the next volume (None: nothing planned)."""
        with self._lock:
            return None if self._t0 is None or self.finished else self._due

    def _step(self, now: float) -> bytes:
        """Write the volumes that fell due, stamping each immediately before the write."""
        with self._lock:
            send = self._fall_due(now)
            if send:
                stamp, perf = self.clock.now(), time.perf_counter()
                self.pty.inject(self.character * len(send))
                self.sent += [Send(index, stamp, perf) for index in send]
                if self.lsl is not None:  # the same pulses as LSL markers
                    for _ in send:
                        self.lsl.push(stamp)
            if self.finished:
                self._done.set()
        return b""


def serve_forever(
    tr_s: float = 2.0,
    volumes: int | None = None,
    link: str | None = None,
    character: bytes = b"5",
    speed: float = 1.0,
    jitter_s: float = 0.0,
    drop_probability: float = 0.0,
    seed: int = 0,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    lsl_name: str | None = None,
) -> int:
    """Serve a scanner until Ctrl-C (or ``stop``), echoing each volume; returns 0.

    The port stays open after the last volume. Raises ValueError for bad arguments or a
    ``link`` path that exists and is not a symlink, OSError if the link cannot be made.
    """
    if link and os.path.exists(link) and not os.path.islink(link):
        raise ValueError(f"{link} exists and is not a symlink; choose another link path")
    scanner = SimulatedScanner(tr_s, volumes, character, make_clock(speed), link, jitter_s,
                               drop_probability=drop_probability, seed=seed)
    if lsl_name:
        from drivers.lsl_triggers import LslScannerOutlet

        scanner.lsl = LslScannerOutlet(lsl_name, character.decode("latin-1"))
        echo(f"also publishing LSL markers on stream {lsl_name!r}")
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
    run = "endless" if volumes is None else f"{volumes} volumes"
    where = f"{link} -> {scanner.pty.path}" if link else scanner.pty.path
    echo(f"simulated scanner on {where}: TR {tr_s:g} s, {run}, character {character!r}, "
         f"speed {speed:g}x; Ctrl-C to stop")
    scanner.start()
    shown = {"sent": 0, "dropped": 0}
    announced = False
    try:
        while not stop.wait(0.1):
            with scanner._lock:
                fresh = [f"volume {s.index} sent" for s in scanner.sent[shown["sent"]:]]
                fresh += [f"volume {i} dropped" for i in scanner.dropped[shown["dropped"]:]]
                shown = {"sent": len(scanner.sent), "dropped": len(scanner.dropped)}
            for line in sorted(fresh, key=lambda text: int(text.split()[1])):
                echo(line)
            if scanner.finished and not announced:
                announced = True
                echo("run complete; the port stays open until Ctrl-C")
    finally:
        scanner.stop()
        echo(f"scanner stopped: {len(scanner.sent)} sent, {len(scanner.dropped)} dropped")
    return 0
