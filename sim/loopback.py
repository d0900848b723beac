"""An in-process transport wired straight to a simulated device (no pty), for fast tests."""

from __future__ import annotations

import threading

from qst_station.clock import Clock
from sim.tcs_device import TcsDevice


class LoopbackTransport:
    """Implements the driver's Transport over a :class:`TcsDevice`; records every write."""

    def __init__(self, device: TcsDevice, clock: Clock, poll_s: float = 0.005) -> None:
        self.device = device
        self.clock = clock
        self.poll_s = poll_s
        self.written: list[bytes] = []
        self._out = bytearray()
        self._cond = threading.Condition()
        self.closed = False

    def write(self, data: bytes) -> None:
        with self._cond:
            self.written.append(bytes(data))
            self._out += self.device.receive(data, self.clock.now())
            self._cond.notify_all()

    def read(self) -> bytes:
        with self._cond:
            if not self._out and not self.closed:
                self._cond.wait(self.poll_s)
            self._out += self.device.step(self.clock.now())
            data, self._out = bytes(self._out), bytearray()
            return data

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
