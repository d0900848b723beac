"""Serve a simulated serial device on a pseudo-terminal, as a real port would appear.

The device side holds the pty master; the slave path (e.g. ``/dev/pts/7``, optionally
behind a stable symlink) is what a driver opens with pyserial, exactly like
``/dev/ttyACM0``. Fault injection: disconnect (the port vanishes), garbage bytes,
stalls. :meth:`reattach` brings the port back (new pty, same symlink).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self

from qst_station.clock import Clock, LslClock

Receive = Callable[[bytes, float], bytes]
MIN_GAP_S = 0.00025  # strict spacing: closer characters are lost (the unit scans every 1 ms)
Step = Callable[[float], bytes]


class PtyLink:
    """Pumps bytes between a pty master and a device's ``receive``/``step`` functions.

    ``now`` is the shared program clock (sim time). ``tick_s`` is the device's time step
    in clock seconds; real ticks are never shorter than ``min_tick_real_s``. With
    ``strict_spacing`` on, characters that arrive together (less than the device's 1 ms
    scan apart) are dropped after the first, as the real unit may lose them.

    Event-driven both ways: the pump blocks in ``select`` on the master and reads host
    bytes as soon as the kernel has them (never on a tick). ``due``, if given, returns the
    clock time of the device's next scheduled output (None: none planned); the pump then
    wakes for it at that moment instead of up to a tick later (e.g. a scanner's trigger).
    """

    def __init__(
        self,
        receive: Receive,
        step: Step,
        now: Callable[[], float],
        speed: float = 1.0,
        link: str | os.PathLike[str] | None = None,
        tick_s: float = 0.005,
        min_tick_real_s: float = 0.002,
        strict_spacing: bool = False,
        due: Callable[[], float | None] | None = None,
    ) -> None:
        self._receive, self._step, self._now = receive, step, now
        self._due, self._speed = due, speed
        self._tick_real = max(tick_s / speed, min_tick_real_s)
        self.link = Path(link) if link else None
        self.strict_spacing = strict_spacing
        self.dropped = 0
        self._last_byte = 0.0
        self._last_read = 0.0
        self._lock = threading.Lock()
        self._stall_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = -1
        self._slave = -1
        self.path = ""
        self._open_pty()

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.path)
            os.replace(tmp, self.link)

    @property
    def port(self) -> str:
        """What a driver should open: the symlink if any, else the pty path."""
        return str(self.link) if self.link else self.path

    def start(self) -> PtyLink:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pty-link", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_fds()
        if self.link is not None:
            with contextlib.suppress(OSError):  # only our own link: another sim may own it now
                if self.link.is_symlink() and os.readlink(self.link) == self.path:
                    self.link.unlink()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1

    # -------------------------------------------------------------- faults

    def disconnect(self) -> None:
        """The cable is pulled: the pty closes under the driver."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_fds()

    def reattach(self) -> None:
        """Plug back in: a new pty behind the same symlink."""
        self.disconnect()
        self._open_pty()
        self.start()

    def inject(self, data: bytes) -> None:
        """Send raw bytes (e.g. garbage) to the driver."""
        with self._lock:
            if self._master >= 0:
                os.write(self._master, data)

    def stall(self, seconds: float) -> None:
        """The device hangs: input is lost and nothing is sent for ``seconds`` (real time)."""
        self._stall_until = time.monotonic() + seconds

    # -------------------------------------------------------------- pump

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            wake = min(next_tick, self._due_real())
            waited_from = time.monotonic()
            timeout = max(0.0, wake - waited_from)
            try:
                ready, _, _ = select.select([self._master], [], [], timeout)
            except (OSError, ValueError):
                return
            stalled = time.monotonic() < self._stall_until
            if ready:
                blocked = time.monotonic() - waited_from > 0.0002
                try:
                    data = os.read(self._master, 4096)
                except OSError:  # no driver has the port open: wait for one
                    time.sleep(self._tick_real)
                    data = b""
                if data and self.strict_spacing:
                    data = self._space_check(data, blocked)
                if data and not stalled:
                    self._write(self._receive(data, self._now()))
            now_real = time.monotonic()
            if now_real >= wake:
                if now_real >= next_tick:
                    next_tick = now_real + self._tick_real
                if not stalled:
                    self._write(self._step(self._now()))

    def _due_real(self) -> float:
        """Monotonic time of the device's next scheduled output (inf: none planned)."""
        if self._due is None or time.monotonic() < self._stall_until:
            return float("inf")
        due = self._due()
        if due is None:
            return float("inf")
        return time.monotonic() + (due - self._now()) / self._speed

    def _space_check(self, data: bytes, blocked: bool) -> bytes:
        """Drop characters that came closer than the device's scan period allows.

        One byte is kept if it arrived at least a quarter scan (0.25 ms) after the last
        kept one. Several bytes in one read arrived after the previous read emptied the
        buffer: if the pump was waiting in select they came together (extras dropped);
        if it was busy, they are dropped only when they cannot have been spaced.
        """
        now = time.monotonic()
        since_read, self._last_read = now - self._last_read, now
        if len(data) == 1:
            if now - self._last_byte < MIN_GAP_S:
                self.dropped += 1
                return b""
        elif blocked or since_read < (len(data) - 1) * MIN_GAP_S:
            self.dropped += len(data) - 1
            data = data[:1]
        self._last_byte = now
        return data

    def _write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            if self._master < 0:
                return
            with contextlib.suppress(OSError):
                os.write(self._master, data)


class SerialDevice(Protocol):
    """A simulated device: bytes in, bytes out, time passing."""

    def receive(self, data: bytes, now: float) -> bytes: ...

    def step(self, now: float) -> bytes: ...


class PtySimulator:
    """A :class:`SerialDevice` served on a pty, behind one lock, on the shared clock.

    Subclasses set ``self.device`` before calling ``__init__`` here and add the
    device's own actions (holding :attr:`lock` when they touch it).
    """

    device: SerialDevice

    def __init__(self, clock: Clock | None, link: str | os.PathLike[str] | None,
                 tick_s: float = 0.005, strict_spacing: bool = False) -> None:
        self.clock = clock or LslClock()
        self.lock = threading.Lock()
        self.pty = PtyLink(self._receive, self._step, self.clock.now, speed=self.clock.speed,
                           link=link, tick_s=tick_s, strict_spacing=strict_spacing)

    def _receive(self, data: bytes, now: float) -> bytes:
        with self.lock:
            return self.device.receive(data, now)

    def _step(self, now: float) -> bytes:
        with self.lock:
            return self.device.step(now)

    @property
    def port(self) -> str:
        """What a driver opens: the symlink if any, else the pty path."""
        return self.pty.port

    def start(self) -> Self:
        with self.lock:
            self.device.step(self.clock.now())
        self.pty.start()
        return self

    def stop(self) -> None:
        self.pty.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # faults common to every serial device
    def disconnect(self) -> None:
        """The cable is pulled."""
        self.pty.disconnect()

    def reattach(self) -> None:
        """Plugged back in: a new pty behind the same symlink."""
        self.pty.reattach()

    def inject(self, data: bytes) -> None:
        self.pty.inject(data)

    def stall(self, seconds: float) -> None:
        self.pty.stall(seconds)
