"""A simulated TCS II served on a pty: :class:`TcsDevice` physics behind a :class:`PtyLink`."""

from __future__ import annotations

import os

from qst_station.clock import Clock
from sim.pty_link import PtySimulator
from sim.tcs_device import TcsDevice


class SimulatedTcs(PtySimulator):
    """Start with :meth:`start` (or ``with``); open :attr:`port` with the TCS driver."""

    def __init__(
        self,
        clock: Clock | None = None,
        link: str | os.PathLike[str] | None = None,
        seed: int = 0,
        strict_spacing: bool = False,
    ) -> None:
        self.device = TcsDevice(seed=seed)
        super().__init__(clock, link, strict_spacing=strict_spacing)

    # the outside world and device faults, thread-safe
    def press(self, button1: bool, button2: bool = False) -> None:
        with self.lock:
            self.device.press(button1, button2)

    def external_trigger(self) -> None:
        with self.lock:
            self.device.external_trigger(self.clock.now())

    def break_zone(self, zone: int) -> None:
        with self.lock:
            self.device.break_zone(zone)
