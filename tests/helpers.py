"""Small helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable

from qst_station.clock import Clock


def wait_for(condition: Callable[[], bool], clock: Clock, timeout: float) -> bool:
    """Poll ``condition`` for up to ``timeout`` clock seconds; its last value."""
    end = clock.now() + timeout
    while clock.now() < end:
        if condition():
            return True
        clock.sleep(0.01)
    return condition()


class ManualClock:
    """A program clock the test sets (``t``); ``sleep`` moves it on at once."""

    speed = 1.0

    def __init__(self, now: float = 0.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds
