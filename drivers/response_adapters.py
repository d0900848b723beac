"""Participant responses from devices that report them among other data.

Each adapter is a :class:`~drivers.interfaces.ResponseSource` over a driver it does not
own: ``connect`` starts listening, ``disconnect`` stops; the device connection itself is
the driver's. Responses are stamped on the program clock when the device reported them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from drivers.errors import DeviceError
from drivers.notifier import Notifier, call_each
from drivers.responses import Response

ResponseCallback = Callable[[Response], None]


class _Source:
    """Subscribers and status reports shared by the adapters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[ResponseCallback] = []
        self._notifier = Notifier(name)
        self.listening = False

    @property
    def connected(self) -> bool:
        return self.listening

    def subscribe(self, callback: ResponseCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    def _emit(self, timestamp: float, kind: str, value: float) -> None:
        call_each(self._callbacks, Response(timestamp, self.name, kind, value))


class TcsButtons(_Source):
    """The TCS II's two buttons, read with ``K`` every ``poll_interval_s`` (real time).

    The device does not send button events by itself, so presses are seen up to one poll
    interval late; the timestamp is the arrival of the reply that showed the change.
    """

    def __init__(self, driver: Any, poll_interval_s: float = 0.05,
                 name: str = "tcs-buttons") -> None:
        super().__init__(name)
        self.driver = driver
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        return self.listening and self.driver.connected

    def connect(self) -> None:
        if self.listening:
            return
        self._stop.clear()
        self.listening = True
        self._thread = threading.Thread(target=self._poll, name=self.name, daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        self.listening = False

    def _poll(self) -> None:
        last = (False, False)
        failing = False
        while not self._stop.wait(self.poll_interval_s):
            try:
                buttons = self.driver.buttons()
            except DeviceError as exc:
                if not failing:
                    self._notifier.post("warning", f"{self.name}: cannot read buttons: {exc}")
                failing = True
                continue
            failing = False
            now = self.driver.clock.now()
            state = (buttons.button1, buttons.button2)
            for number, (was, is_) in enumerate(zip(last, state, strict=True), start=1):
                if is_ != was:
                    self._emit(now, "press" if is_ else "release", float(number))
            last = state


class MedocResponses(_Source):
    """Medoc YES / NO / CoVAS, as reported in the polled status."""

    def __init__(self, driver: Any, name: str = "medoc") -> None:
        super().__init__(name)
        self.driver = driver
        self._unsubscribe: Callable[[], None] | None = None

    def connect(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.driver.on_response(self._on_response)
        self.listening = True

    def disconnect(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None
        self.listening = False

    def _on_response(self, kind: str, value: int, timestamp: float) -> None:
        if kind in ("yes", "no") and not value:
            return  # the button went up: only presses are responses
        self._emit(timestamp, "vas" if kind == "covas" else kind, float(value))


class CuffResponses(_Source):
    """The cuff's participant button (press/release) and electronic VAS (on change)."""

    def __init__(self, driver: Any, vas_step_cm: float = 0.1, name: str = "cuff") -> None:
        super().__init__(name)
        self.driver = driver
        self.vas_step_cm = vas_step_cm
        self._unsubscribe: Callable[[], None] | None = None
        self._button = False
        self._vas: float | None = None

    def connect(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.driver.subscribe(self._on_sample)
        self.listening = True

    def disconnect(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None
        self.listening = False

    def _on_sample(self, sample: Any) -> None:
        button = bool(sample.button)
        if button != self._button:
            self._button = button
            self._emit(sample.timestamp, "press" if button else "release", 1.0)
        if self._vas is None or abs(sample.vas - self._vas) >= self.vas_step_cm:
            self._vas = sample.vas
            self._emit(sample.timestamp, "vas", float(sample.vas))
