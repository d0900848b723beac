"""A simulated participant response button box on a pty: one character per press.

:meth:`SimulatedButtonBox.press` / :meth:`~SimulatedButtonBox.release` act now;
:meth:`~SimulatedButtonBox.respond_after` is a scripted participant pressing (and
optionally releasing) a button later on the shared clock. Characters go out from the
pty pump; what was sent, and when (clock time just before the write), is recorded for
validation. Actions falling due while the cable is pulled are lost (``unplugged``).
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qst_station.clock import Clock, LslClock, make_clock
from sim.pty_link import PtyLink

DEFAULT_PRESS_CHARS: dict[int, bytes] = {1: b"1", 2: b"2", 3: b"3", 4: b"4"}


@dataclass(frozen=True)
class Sent:
    """A press or release character handed to the pty master."""

    kind: str  # "press" | "release"
    button: int
    time: float  # program clock, when the pump's step ran (just before the write)
    perf: float  # time.perf_counter() at the same moment (benchmarks)


class SimulatedButtonBox:
    """Start with :meth:`start` (or ``with``); a driver opens :attr:`port`.

    ``press_char_map`` / ``release_char_map`` map button numbers to the characters sent
    (no release characters by default). ``seed`` drives the random choices (reaction-time
    jitter in :meth:`respond_after`, random buttons). Inputs from the driver are ignored.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        link: str | os.PathLike[str] | None = None,
        press_char_map: Mapping[int, bytes] | None = None,
        release_char_map: Mapping[int, bytes] | None = None,
        seed: int = 0,
        tick_real_s: float = 0.001,
    ) -> None:
        self.press_chars = dict(DEFAULT_PRESS_CHARS if press_char_map is None
                                else press_char_map)
        self.release_chars = dict(release_char_map or {})
        for char in (*self.press_chars.values(), *self.release_chars.values()):
            if len(char) != 1:
                raise ValueError(f"a button character must be one byte, got {char!r}")
        if set(self.press_chars.values()) & set(self.release_chars.values()):
            raise ValueError("press and release characters must differ")
        self.clock = clock or LslClock()
        self.sent: list[Sent] = []
        self.unplugged: list[tuple[str, int, float]] = []  # (kind, button, due) lost
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._plan: list[tuple[float, int, str, int]] = []  # heap of (due, seq, kind, button)
        self._seq = itertools.count()
        self.pty = PtyLink(lambda data, now: b"", self._step, self.clock.now,
                           speed=self.clock.speed, link=link, tick_s=0.0,
                           min_tick_real_s=tick_real_s)

    @property
    def port(self) -> str:
        return self.pty.port

    @property
    def buttons(self) -> list[int]:
        return sorted(self.press_chars)

    @property
    def pending(self) -> int:
        """Scheduled presses/releases not yet due."""
        with self._lock:
            return len(self._plan)

    def press_times(self, button: int | None = None) -> list[float]:
        """True press times (clock) of ``button`` (all buttons if None), in order."""
        with self._lock:
            return [s.time for s in self.sent
                    if s.kind == "press" and (button is None or s.button == button)]

    def start(self) -> SimulatedButtonBox:
        self.pty.start()
        return self

    def stop(self) -> None:
        self.pty.stop()

    def __enter__(self) -> SimulatedButtonBox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------- participant

    def press(self, button: int) -> None:
        """Press ``button`` now (sent on the pump's next tick, about 1 ms)."""
        self._schedule(self.clock.now(), "press", button)

    def release(self, button: int) -> None:
        """Release ``button`` now; ValueError if this box sends nothing on release."""
        self._schedule(self.clock.now(), "release", button)

    def respond_after(self, delay_s: float, button: int | None = None,
                      hold_s: float | None = None, jitter_s: float = 0.0) -> float:
        """Press ``button`` (seeded random one if None) ``delay_s`` clock seconds from now.

        ``jitter_s`` adds a seeded uniform reaction-time jitter in ``[0, jitter_s]``; with
        ``hold_s`` the button is released that long after. Returns the planned press time.
        """
        with self._lock:
            button = self._rng.choice(self.buttons) if button is None else button
            jitter = self._rng.uniform(0.0, jitter_s) if jitter_s else 0.0
        return self.respond_at(self.clock.now() + max(0.0, delay_s) + jitter, button, hold_s)

    def respond_at(self, due: float, button: int, hold_s: float | None = None) -> float:
        """Press ``button`` at clock time ``due`` (released ``hold_s`` later if given)."""
        if hold_s is not None:
            if not hold_s > 0:
                raise ValueError(f"the hold time must be positive, got {hold_s!r}")
            self._schedule(due + hold_s, "release", button)  # checks first: all or nothing
        self._schedule(due, "press", button)
        return due

    def random_button(self) -> int:
        with self._lock:
            return self._rng.choice(self.buttons)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` clock seconds until every scheduled action has gone out."""
        end = None if timeout is None else time.monotonic() + timeout / self.clock.speed
        while self.pending:
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.002)
        return True

    def _schedule(self, due: float, kind: str, button: int) -> None:
        chars = self.press_chars if kind == "press" else self.release_chars
        if button not in chars:
            what = "release characters" if kind == "release" and not chars else f"button {button}"
            raise ValueError(f"this box has no {what} (buttons {self.buttons})")
        with self._lock:
            heapq.heappush(self._plan, (due, next(self._seq), kind, button))

    # -------------------------------------------------------------- faults

    def disconnect(self) -> None:
        """Pull the cable: the port vanishes; presses falling due meanwhile are lost."""
        self.pty.disconnect()

    def reattach(self) -> None:
        """Plug back in (new pty, same symlink); what fell due meanwhile is lost."""
        with self._lock:
            self._fall_due(self.clock.now(), unplugged=True)
        self.pty.reattach()

    def inject(self, data: bytes) -> None:
        """Send raw bytes (noise, an unknown button) to the driver."""
        self.pty.inject(data)

    # -------------------------------------------------------------- pump

    def _fall_due(self, now: float, unplugged: bool = False) -> bytes:
        out = b""
        while self._plan and self._plan[0][0] <= now:
            due, _, kind, button = heapq.heappop(self._plan)
            if unplugged:
                self.unplugged.append((kind, button, due))
                continue
            chars = self.press_chars if kind == "press" else self.release_chars
            self.sent.append(Sent(kind, button, now, time.perf_counter()))
            out += chars[button]
        return out

    def _step(self, now: float) -> bytes:
        with self._lock:
            return self._fall_due(now)


def serve_forever(
    link: str | None = None,
    speed: float = 1.0,
    echo: Callable[[str], None] = print,
    every_s: float | None = None,
    button: int | None = None,
    hold_s: float | None = None,
    press_char_map: Mapping[int, bytes] | None = None,
    release_char_map: Mapping[int, bytes] | None = None,
    seed: int = 0,
    stop: threading.Event | None = None,
) -> int:
    """Serve a button box until Ctrl-C (or ``stop``), echoing each press; returns 0.

    With ``every_s`` a simulated participant presses ``button`` (a seeded random one if
    None) every ``every_s`` clock seconds, released after ``hold_s`` if given (needs
    release characters). Raises ValueError for bad arguments or a ``link`` path that
    exists and is not a symlink, OSError if the link cannot be made.
    """
    if link and os.path.exists(link) and not os.path.islink(link):
        raise ValueError(f"{link} exists and is not a symlink; choose another link path")
    if every_s is not None and not every_s > 0:
        raise ValueError(f"the press interval must be positive, got {every_s!r}")
    if hold_s is not None and every_s is not None and not 0 < hold_s < every_s:
        raise ValueError(f"the hold time must be in (0, {every_s:g}) s, got {hold_s!r}")
    clock = make_clock(speed)
    box = SimulatedButtonBox(clock, link, press_char_map, release_char_map, seed)
    if button is not None and button not in box.press_chars:
        box.pty.stop()
        raise ValueError(f"no button {button} (buttons {box.buttons})")
    if hold_s is not None and not box.release_chars:
        box.pty.stop()
        raise ValueError("holding needs release characters")
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
    where = f"{link} -> {box.pty.path}" if link else box.pty.path
    chars = ", ".join(f"{b}={c!r}" for b, c in sorted(box.press_chars.items()))
    who = "idle" if every_s is None else (
        f"button {button if button is not None else 'random'} every {every_s:g} s")
    echo(f"simulated button box on {where}: presses {chars}, {who}, speed {speed:g}x; "
         "Ctrl-C to stop")
    box.start()
    t0 = clock.now()
    next_due = t0 + (every_s or 0.0)
    shown = 0
    try:
        while True:
            if every_s is not None:  # plan presses a little ahead of the echo loop
                while next_due <= clock.now() + every_s + 0.2 * speed:
                    pick = box.random_button() if button is None else button
                    box.respond_at(next_due, pick, hold_s)
                    next_due += every_s
            with box._lock:
                fresh, shown = box.sent[shown:], len(box.sent)
            for s in fresh:
                echo(f"button {s.button} {s.kind} at {s.time - t0:.3f} s")
            if stop.wait(0.1):
                break
    finally:
        box.stop()
        echo(f"button box stopped: {len(box.press_times())} press(es) sent")
    return 0
