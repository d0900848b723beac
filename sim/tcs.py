"""A simulated TCS II served on a pty: :class:`TcsDevice` physics behind a :class:`PtyLink`."""

from __future__ import annotations

import os
import threading

from qst_station.clock import Clock, LslClock
from sim.pty_link import PtyLink
from sim.tcs_device import TcsDevice


class SimulatedTcs:
    """Start with :meth:`start` (or ``with``); open :attr:`port` with the TCS driver."""

    def __init__(
        self,
        clock: Clock | None = None,
        link: str | os.PathLike[str] | None = None,
        seed: int = 0,
        strict_spacing: bool = False,
    ) -> None:
        self.clock = clock or LslClock()
        self.device = TcsDevice(seed=seed)
        self._lock = threading.Lock()
        self.pty = PtyLink(
            self._receive,
            self._step,
            self.clock.now,
            speed=self.clock.speed,
            link=link,
            strict_spacing=strict_spacing,
        )

    def _receive(self, data: bytes, now: float) -> bytes:
        with self._lock:
            return self.device.receive(data, now)

    def _step(self, now: float) -> bytes:
        with self._lock:
            return self.device.step(now)

    @property
    def port(self) -> str:
        return self.pty.port

    def start(self) -> SimulatedTcs:
        with self._lock:
            self.device.step(self.clock.now())
        self.pty.start()
        return self

    def stop(self) -> None:
        self.pty.stop()

    def __enter__(self) -> SimulatedTcs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # fault injection and the outside world, thread-safe
    def press(self, button1: bool, button2: bool = False) -> None:
        with self._lock:
            self.device.press(button1, button2)

    def external_trigger(self) -> None:
        with self._lock:
            self.device.external_trigger(self.clock.now())

    def break_zone(self, zone: int) -> None:
        with self._lock:
            self.device.break_zone(zone)

    def disconnect(self) -> None:
        self.pty.disconnect()

    def reattach(self) -> None:
        self.pty.reattach()

    def inject(self, data: bytes) -> None:
        self.pty.inject(data)

    def stall(self, seconds: float) -> None:
        self.pty.stall(seconds)
