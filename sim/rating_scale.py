"""A simulated rating scale (0-100): the participant's ratings as ``vas`` responses.

Stands in for the on-screen scale the participant moves with a mouse or a response pad:
:meth:`rate_after` delivers a :class:`~drivers.responses.Response` of kind ``vas`` to the
subscribers that many clock seconds later, stamped with the clock at delivery. A
:class:`~drivers.interfaces.ResponseSource`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from drivers.notifier import Notifier, call_each
from drivers.responses import Response
from qst_station.clock import Clock


class SimulatedRatingScale:
    def __init__(self, clock: Clock, name: str = "rating-scale") -> None:
        self.clock = clock
        self.name = name
        self.given: list[tuple[float, float]] = []  # (time, rating)
        self._callbacks: list[Callable[[Response], None]] = []
        self._notifier = Notifier(name)
        self._timers: list[threading.Timer] = []
        self._listening = False

    @property
    def connected(self) -> bool:
        return self._listening

    def connect(self) -> None:
        self._listening = True
        self._notifier.post("connected", f"{self.name}: simulated 0-100 rating scale")

    def disconnect(self) -> None:
        self._listening = False
        for timer in self._timers:
            timer.cancel()

    def subscribe(self, callback: Callable[[Response], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    def rate_after(self, delay_s: float, rating: float) -> None:
        """The participant settles on ``rating`` ``delay_s`` clock seconds from now."""
        if not 0.0 <= rating <= 100.0:
            raise ValueError(f"a rating is 0-100, got {rating!r}")
        timer = threading.Timer(max(0.0, delay_s) / self.clock.speed, self._deliver, (rating,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _deliver(self, rating: float) -> None:
        if not self._listening:
            return
        now = self.clock.now()
        self.given.append((now, rating))
        call_each(self._callbacks, Response(now, self.name, "vas", rating))
