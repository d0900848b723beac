"""The program's one clock: seconds on LSL's ``local_clock()``, optionally sped up.

Every timestamp in qst-station comes from a :class:`Clock`. :class:`LslClock` is real
time. :class:`SimulatedClock` runs ``speed`` times faster than real time so simulated
sessions and tests need not wait; simulators and the program share one instance (or, in
two processes, agree because both scale the same monotonic system clock from ``origin``).
"""

from __future__ import annotations

import time
from typing import Protocol

from qst_station.lsl_setup import pylsl_module

_local_clock = pylsl_module().local_clock


class Clock(Protocol):
    """Seconds on the program's time base; ``sleep`` waits that many clock seconds."""

    speed: float

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class LslClock:
    """Real time: ``pylsl.local_clock()``."""

    speed = 1.0

    def now(self) -> float:
        return _local_clock()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatedClock:
    """LSL time scaled by ``speed`` around ``origin`` (0 lets two processes agree)."""

    def __init__(self, speed: float = 1.0, origin: float = 0.0) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = float(speed)
        self.origin = float(origin)

    def now(self) -> float:
        return self.origin + (_local_clock() - self.origin) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


def make_clock(speed: float = 1.0) -> Clock:
    """The real clock at speed 1, a simulated one otherwise."""
    return LslClock() if speed == 1.0 else SimulatedClock(speed)
