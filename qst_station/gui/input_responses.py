"""Keyboard and mouse responses from a Qt window: a :class:`~drivers.interfaces.ResponseSource`.

An event filter on one widget (a rating screen with keyboard focus, say) turns the mapped
keys and mouse buttons into :class:`~drivers.responses.Response` objects stamped with
``clock.now()`` when Qt delivers the event. That stamp includes the event-loop delay
(below one frame while the GUI thread is idle); a serial button box is the better choice
where milliseconds matter.
Auto-repeated key presses are ignored: holding a key is one press and one release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QWidget

from drivers.errors import DeviceError
from drivers.notifier import Notifier, call_each
from drivers.responses import Response
from qst_station.clock import Clock

ResponseCallback = Callable[[Response], None]

DEFAULT_KEYS: dict[str, int] = {"1": 1, "2": 2, "3": 3, "4": 4, "Space": 1}
DEFAULT_MOUSE: dict[Qt.MouseButton, int] = {Qt.MouseButton.LeftButton: 1,
                                            Qt.MouseButton.RightButton: 2}
_KINDS = {QEvent.Type.KeyPress: "press", QEvent.Type.KeyRelease: "release",
          QEvent.Type.MouseButtonPress: "press", QEvent.Type.MouseButtonRelease: "release"}


def key_codes(keys: Mapping[str, int]) -> dict[int, int]:
    """``{"Space": 1, "F": 2}`` -> Qt key code -> button; ValueError naming an unknown key."""
    out: dict[int, int] = {}
    for name, button in keys.items():
        sequence = QKeySequence(name)
        if sequence.count() != 1 or sequence.toString() == "":
            raise ValueError(f"unknown key {name!r} (use Qt names such as 'Space', 'F', '1')")
        out[sequence[0].key().value] = int(button)
    return out


class KeyboardMouseResponses(QObject):
    """Responses typed or clicked in ``widget``; connect() installs the filter."""

    def __init__(self, widget: QWidget, clock: Clock, keys: Mapping[str, int] | None = None,
                 mouse: Mapping[Qt.MouseButton, int] | None = None,
                 name: str = "keyboard") -> None:
        super().__init__(widget)
        self.widget = widget
        self.clock = clock
        self.name = name
        self._keys = key_codes(DEFAULT_KEYS if keys is None else keys)
        self._mouse = dict(DEFAULT_MOUSE if mouse is None else mouse)
        self._callbacks: list[ResponseCallback] = []
        self._notifier = Notifier(name)
        self._listening = False

    @property
    def connected(self) -> bool:
        return self._listening

    def connect(self) -> None:
        if self._listening:
            raise DeviceError(f"{self.name}: already listening")
        self.widget.installEventFilter(self)
        self._listening = True
        self._notifier.post("connected", f"{self.name}: listening to {len(self._keys)} keys "
                                         f"and {len(self._mouse)} mouse buttons")

    def disconnect(self) -> None:
        if self._listening:
            self.widget.removeEventFilter(self)
            self._listening = False

    def subscribe(self, callback: ResponseCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = _KINDS.get(event.type())
        if kind is None:
            return False
        now = self.clock.now()
        button = self._button(event)
        if button is None:
            return False
        call_each(self._callbacks, Response(now, self.name, kind, float(button)))
        return True

    def _button(self, event: QEvent) -> int | None:
        if isinstance(event, QKeyEvent):
            if event.isAutoRepeat():
                return None
            return self._keys.get(int(event.key()))
        if isinstance(event, QMouseEvent):
            return self._mouse.get(event.button())
        return None
