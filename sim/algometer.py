"""A simulated Wagner FDIX force gauge on a pty, pushed by a simulated examiner's hand."""

from __future__ import annotations

import os

import numpy as np

from drivers import algometer_wire as wire
from qst_station.clock import Clock
from sim.pty_link import PtySimulator


class AlgometerDevice:
    """Gauge state and the force a hand applies: a ramp at ``rate_kpa_s`` with jitter."""

    def __init__(self, unit: str = "lbf", probe_area_cm2: float = 1.0, seed: int = 0,
                 full_scale_n: float = 500.0) -> None:
        self.unit = unit
        self.area = probe_area_cm2
        self.full_scale_n = full_scale_n
        self.rate_hz = 10.0
        self.streaming = False
        self.only_above_2pc = False
        self._rng = np.random.default_rng(seed)
        self._splitter = wire.LineSplitter()
        self._next = 0.0
        self._kpa = 0.0
        self._ramp: float | None = None
        self._last = 0.0
        self.commands: list[str] = []

    # the examiner
    def press(self, rate_kpa_s: float = 50.0) -> None:
        """Start pushing: pressure rises at about ``rate_kpa_s`` (hand-made, so uneven)."""
        self._ramp = rate_kpa_s

    def release(self) -> None:
        self._ramp = None
        self._kpa = 0.0

    def power_cycle(self) -> None:
        """The gauge restarts and forgets ``CB``."""
        self.streaming = False

    @property
    def kpa(self) -> float:
        return self._kpa

    def receive(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for line in self._splitter.feed(data):
            command = wire.decode_command(line)
            if command is None:
                continue  # unknown commands get no reply
            name, value = command
            self.commands.append(name)
            if name == "rate" and value is not None:
                self.rate_hz = value
            elif name in ("CA", "CX"):
                self.only_above_2pc = name == "CX"
            elif name == "CB":
                self.streaming, self._next = True, now
            elif name == "CE":
                self.streaming = False
            elif name == "?":
                out += self._reading()
        return bytes(out)

    def step(self, now: float) -> bytes:
        dt, self._last = now - self._last, now
        if self._ramp is not None and 0 < dt < 1.0:
            jitter = 1.0 + 0.15 * self._rng.standard_normal()
            self._kpa = max(0.0, self._kpa + self._ramp * jitter * dt)
        if not self.streaming or now < self._next:
            return b""
        self._next = max(self._next + 1.0 / self.rate_hz, now)
        newtons = self._kpa * 1000.0 * self.area * 1e-4
        if self.only_above_2pc and newtons < 0.02 * self.full_scale_n:
            return b""
        return self._reading()

    def _reading(self) -> bytes:
        newtons = self._kpa * 1000.0 * self.area * 1e-4 + 0.01 * self._rng.standard_normal()
        value = newtons / wire.NEWTONS_PER_UNIT[self.unit]
        return wire.encode_reading(wire.Reading(value, self.unit))


class SimulatedAlgometer(PtySimulator):
    """:class:`AlgometerDevice` served on a pty; open :attr:`port` with the driver."""

    def __init__(self, clock: Clock | None = None, link: str | os.PathLike[str] | None = None,
                 unit: str = "lbf", seed: int = 0) -> None:
        self.device = AlgometerDevice(unit=unit, seed=seed)
        super().__init__(clock, link, tick_s=0.005)

    def press(self, rate_kpa_s: float = 50.0) -> None:
        with self.lock:
            self.device.press(rate_kpa_s)

    def release(self) -> None:
        with self.lock:
            self.device.release()

    def power_cycle(self) -> None:
        with self.lock:
            self.device.power_cycle()
