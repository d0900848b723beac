"""The participant's rating screen: a large VAS or NRS on a second monitor.

:class:`RatingScreen` is a top-level window (full screen on a second monitor when there
is one, see :meth:`RatingScreen.show_on`) with three states: *rest* (a fixation cross),
*cue* (a large text) and *rating* (a question, a VAS 0-100 line or an NRS 0-10 row of
boxes, end anchors and a marker). It is a :class:`~drivers.interfaces.ResponseSource`: a
confirmed rating is one ``Response(timestamp, "rating-screen", "vas", value)`` with the
value on 0-100, stamped on the program clock at the confirming key, click or button.
An NRS rating is reported as ``vas`` ``nrs * 10`` (``Response`` has no room for the
scale); the raw NRS value is kept in :attr:`RatingScreen.last_rating`.

:meth:`~RatingScreen.ask`, :meth:`~RatingScreen.show_cue` and :meth:`~RatingScreen.rest`
may be called from any thread: they return at once and take effect on the GUI thread
(queued Qt signal). Each replaces whatever the screen shows; a rating replaced or timed
out gives no response.

Input: Left/Right (with Shift: larger steps), Home/End, Enter/Space to confirm; a click or
drag on the scale sets the marker, a double-click or the Confirm button confirms; and any
number of button sources (:meth:`~RatingScreen.attach_buttons`, e.g. a
:class:`~drivers.responses.SerialButtonBox`): a press moves the marker one step, holding
moves it at ``button_speed`` units/s, and the confirm button confirms (stamped with the
button's own arrival time). Keyboard and mouse stamps include the event-loop delay (below
one frame while the GUI thread is idle).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QScreen,
)
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from drivers.interfaces import ResponseSource
from drivers.notifier import Notifier, call_each
from drivers.responses import Response
from qst_station.clock import Clock

VAS = "VAS 0-100"
NRS = "NRS 0-10"
DEFAULT_QUESTION = "How painful was it?"
DEFAULT_ANCHORS = ("no pain", "worst pain imaginable")
REST, CUE, RATING = "rest", "cue", "rating"
STARTS = ("left", "middle", "random")

BACKGROUND = "#000000"
FOREGROUND = "#ffffff"
DIM = "#9a9a9a"
MARKER = "#ffc400"
BOX = "#262626"
MOTION_MS = 16  # button-hold motion timer (about 60 Hz)
WINDOWED_SIZE = (1280, 720)

ResponseCallback = Callable[[Response], None]


def parse_scale(scale: str) -> str:
    """``"VAS 0-100"``/``"VAS"`` -> :data:`VAS`, ``"NRS 0-10"``/``"NRS"`` -> :data:`NRS`."""
    words = scale.strip().upper().split()
    if words and words[0] == "VAS" and words[1:] in ([], ["0-100"]):
        return VAS
    if words and words[0] == "NRS" and words[1:] in ([], ["0-10"]):
        return NRS
    raise ValueError(f"unknown rating scale {scale!r} (use {VAS!r} or {NRS!r})")


@dataclass(frozen=True)
class RatingRequest:
    """One question as asked (made on the caller's thread, shown on the GUI thread)."""

    number: int  # 1, 2, ... per screen
    scale: str  # VAS | NRS
    question: str
    anchors: tuple[str, str]
    deadline: float | None  # program clock; None: no timeout
    start: str | float  # "left" | "middle" | "random" | a value on the scale's own range


@dataclass(frozen=True)
class Rating:
    """A confirmed rating."""

    request: int  # RatingRequest.number
    scale: str  # VAS | NRS
    raw: float  # on the scale's own range (VAS 0-100, NRS 0-10)
    value: float  # 0-100 (what the Response carries)
    start: float  # where the marker started, on the scale's own range
    shown_at: float  # program clock when the scale was put up (drawn within a frame)
    timestamp: float  # program clock at the confirming key, click or button
    via: str  # "keyboard" | "mouse" | "button:<source>"

    @property
    def latency_s(self) -> float:
        return self.timestamp - self.shown_at


@dataclass(frozen=True)
class _ButtonBinding:
    source_name: str
    left: int
    right: int
    confirm: int
    holds: bool  # the source sends releases: a held button moves the marker


class _Bridge(QObject):
    """Signals emitted on any thread, delivered on the GUI thread."""

    ask = Signal(object)
    cue = Signal(str)
    rest = Signal(object)
    button = Signal(object, object)  # _ButtonBinding, Response


class ScaleView(QWidget):
    """The painted scale: a VAS line or an NRS row, the marker and the end anchors."""

    picked = Signal(float)  # position 0-100 under a click or drag
    double_clicked = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = VAS
        self.position = 50.0  # 0-100 (NRS: box * 10)
        self.anchors: tuple[str, str] = DEFAULT_ANCHORS
        self.show_value = False
        self.font_px = 32
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(160)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    # -- geometry -------------------------------------------------------------------------
    def _ends(self) -> tuple[float, float]:
        margin = max(40.0, self.width() * 0.1)
        return margin, self.width() - margin

    def _box_size(self) -> float:
        left, right = self._ends()
        return min((right - left) / 11 * 0.86, self.height() * 0.4)

    def _line_y(self) -> float:
        return self.height() * 0.32

    def x_for(self, position: float) -> float:
        """Widget x of ``position`` (0-100; NRS: the centre of box ``position / 10``)."""
        left, right = self._ends()
        if self.scale == NRS:
            pitch = (right - left) / 11
            return left + pitch * (round(position / 10) + 0.5)
        return left + (right - left) * position / 100

    def position_at(self, x: float) -> float:
        """Position 0-100 under widget x (NRS: the nearest box, times 10), clamped."""
        left, right = self._ends()
        if self.scale == NRS:
            box = int((x - left) / ((right - left) / 11))
            return float(min(10, max(0, box)) * 10)
        return min(100.0, max(0.0, (x - left) / (right - left) * 100))

    def point_for(self, position: float) -> QPointF:
        """A point on the scale at ``position`` (for clicks in tests)."""
        return QPointF(self.x_for(position), self._line_y())

    # -- input ----------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.picked.emit(self.position_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.picked.emit(self.position_at(event.position().x()))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.double_clicked.emit(self.position_at(event.position().x()))

    # -- drawing --------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(BACKGROUND))
        bottom = self._paint_nrs(painter) if self.scale == NRS else self._paint_vas(painter)
        self._paint_anchors(painter, bottom + self.font_px * 0.6)
        painter.end()

    def _paint_vas(self, painter: QPainter) -> float:
        left, right = self._ends()
        y = self._line_y()
        thick = max(6.0, self.height() * 0.025)
        tick = max(40.0, self.height() * 0.16)
        painter.setPen(QPen(QColor(FOREGROUND), thick, Qt.PenStyle.SolidLine,
                            Qt.PenCapStyle.FlatCap))
        painter.drawLine(QPointF(left, y), QPointF(right, y))
        for x in (left, right):
            painter.drawLine(QPointF(x, y - tick / 2), QPointF(x, y + tick / 2))
        x = self.x_for(self.position)
        width = max(16.0, self.width() * 0.016)
        height = tick * 1.8
        painter.setPen(QPen(QColor(BACKGROUND), 3))
        painter.setBrush(QColor(MARKER))
        painter.drawRoundedRect(QRectF(x - width / 2, y - height / 2, width, height), 4, 4)
        if self.show_value:
            painter.setFont(_font(self.font_px, bold=True))
            painter.setPen(QColor(MARKER))
            box = QRectF(x - 100, y - height / 2 - self.font_px * 1.4, 200, self.font_px * 1.3)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, f"{self.position:.0f}")
        return y + height / 2

    def _paint_nrs(self, painter: QPainter) -> float:
        side = self._box_size()
        y = self._line_y()
        chosen = round(self.position / 10)
        painter.setFont(_font(int(side * 0.5), bold=True))
        for box in range(11):
            rect = QRectF(self.x_for(box * 10) - side / 2, y - side / 2, side, side)
            selected = box == chosen
            painter.setPen(QPen(QColor(MARKER if selected else DIM), max(3.0, side * 0.05)))
            painter.setBrush(QColor(MARKER if selected else BOX))
            painter.drawRoundedRect(rect, side * 0.12, side * 0.12)
            painter.setPen(QColor(BACKGROUND if selected else FOREGROUND))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(box))
        return y + side / 2

    def _paint_anchors(self, painter: QPainter, top: float) -> None:
        painter.setFont(_font(self.font_px))
        painter.setPen(QColor(FOREGROUND))
        if self.scale == NRS:
            left, right = self.x_for(0), self.x_for(100)
            left -= self._box_size() / 2
            right += self._box_size() / 2
        else:
            left, right = self._ends()
        width = self.width() * 0.36
        height = self.height() - top
        wrap = Qt.TextFlag.TextWordWrap
        painter.drawText(QRectF(max(0.0, left - self.font_px * 0.5), top, width, height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | wrap,
                         self.anchors[0])
        painter.drawText(
            QRectF(min(self.width(), right + self.font_px * 0.5) - width, top, width, height),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop | wrap, self.anchors[1])


class RatingScreen(QWidget):
    """The participant's window: rest, cue, or a VAS/NRS rating; a ``ResponseSource``.

    ``start`` places the marker when a rating begins: ``"left"``, ``"middle"``,
    ``"random"`` (from ``random.Random(seed)``) or a value on the scale's own range.
    Steps are in VAS units (an NRS step is one box, Shift two). ``button_speed`` is how
    fast a held button moves the marker (VAS units per second, after ``hold_delay_s``).
    Only VAS values are rounded to ``vas_resolution``.
    """

    rated = Signal(object)  # Rating, on the GUI thread
    timed_out = Signal(int)  # RatingRequest.number
    state_changed = Signal(str)  # REST | CUE | RATING

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "rating-screen",
        anchors: Sequence[str] = DEFAULT_ANCHORS,
        question: str = DEFAULT_QUESTION,
        start: str | float = "middle",
        seed: int | None = None,
        step: float = 1.0,
        big_step: float = 10.0,
        button_speed: float = 40.0,
        hold_delay_s: float = 0.3,
        vas_resolution: float = 1.0,
        show_value: bool = False,
        confirm_button: bool = True,
        confirm_text: str = "Confirm",
        rest_text: str = "+",
    ) -> None:
        super().__init__(None)
        _check_start(start)
        if button_speed <= 0 or step <= 0 or big_step <= 0 or vas_resolution <= 0:
            raise ValueError("steps, button speed and resolution must be positive")
        self.clock = clock
        self.name = name
        self.default_anchors = _two_anchors(anchors)
        self.default_question = question
        self.default_start = start
        self.step = step
        self.big_step = big_step
        self.button_speed = button_speed
        self.hold_delay_s = hold_delay_s
        self.vas_resolution = vas_resolution
        self.rest_text = rest_text
        self.last_rating: Rating | None = None
        self._rng = random.Random(seed)
        self._numbers = itertools.count(1)
        self._numbers_lock = threading.Lock()
        self._callbacks: list[ResponseCallback] = []
        self._notifier = Notifier(name)
        self._listening = False
        self._state = REST
        self._request: RatingRequest | None = None
        self._start_position = 0.0
        self._shown_at = 0.0
        self._held: dict[tuple[str, int], int] = {}  # (source, button) -> -1 | +1
        self._hold_since = 0.0  # time.monotonic() when the current hold began
        self._last_tick = 0.0
        self._detachers: list[Callable[[], None]] = []

        self.setWindowTitle("Rating")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAutoFillBackground(True)
        self.setStyleSheet(f"background:{BACKGROUND}; color:{FOREGROUND};")
        self._build(confirm_text, confirm_button, show_value)

        self._bridge = _Bridge()
        self._bridge.ask.connect(self._on_ask)
        self._bridge.cue.connect(self._on_cue)
        self._bridge.rest.connect(self._on_rest)
        self._bridge.button.connect(self._on_button)
        self._timeout = QTimer(self)
        self._timeout.setSingleShot(True)
        self._timeout.timeout.connect(self._on_timeout)
        self._motion = QTimer(self)
        self._motion.setInterval(MOTION_MS)
        self._motion.timeout.connect(self._on_motion)
        self.resize(*WINDOWED_SIZE)
        self._on_rest(None)

    def _build(self, confirm_text: str, confirm_button: bool, show_value: bool) -> None:
        self.pages = QStackedWidget(self)
        self.rest_label = _big_label(self.rest_text)
        self.cue_label = _big_label("")
        self.question_label = _big_label("")
        self.scale_view = ScaleView()
        self.scale_view.show_value = show_value
        self.scale_view.picked.connect(self._on_picked)
        self.scale_view.double_clicked.connect(self._on_double_click)
        self.confirm_button = QPushButton(confirm_text)
        self.confirm_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.confirm_button.setVisible(confirm_button)
        self.confirm_button.clicked.connect(lambda: self.confirm(self.clock.now(), "mouse"))
        rating_page = QWidget()
        column = QVBoxLayout(rating_page)
        column.addStretch(1)
        column.addWidget(self.question_label)
        column.addStretch(1)
        column.addWidget(self.scale_view, stretch=3)
        column.addWidget(self.confirm_button, alignment=Qt.AlignmentFlag.AlignHCenter)
        column.addStretch(1)
        for page in (self.rest_label, self.cue_label, rating_page):
            self.pages.addWidget(page)
        self._rating_page = rating_page
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)

    # -- ResponseSource ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._listening

    def connect(self) -> None:
        self._listening = True
        self._notifier.post("connected", f"{self.name}: participant rating screen")

    def disconnect(self) -> None:
        if self._listening:
            self._listening = False
            self._notifier.post("disconnected", f"{self.name}: closed")

    def subscribe(self, callback: ResponseCallback) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    # -- thread-safe commands ----------------------------------------------------------------
    def ask(self, scale: str = VAS, question: str | None = None,
            anchors: Sequence[str] | None = None, timeout_s: float | None = None,
            start: str | float | None = None) -> int:
        """Put up a rating (any thread; returns at once); returns the request's number.

        ``timeout_s`` (program-clock seconds from this call) returns the screen to rest
        without a response. Bad arguments raise ValueError on the caller's thread.
        """
        start = self.default_start if start is None else start
        _check_start(start)
        if timeout_s is not None and timeout_s < 0:
            raise ValueError(f"timeout_s must not be negative, got {timeout_s!r}")
        with self._numbers_lock:
            number = next(self._numbers)
        request = RatingRequest(
            number, parse_scale(scale),
            self.default_question if question is None else question,
            self.default_anchors if anchors is None else _two_anchors(anchors),
            None if timeout_s is None else self.clock.now() + timeout_s, start)
        self._bridge.ask.emit(request)
        return number

    def show_cue(self, text: str) -> None:
        """Show ``text`` large (any thread); an open rating is dropped."""
        self._bridge.cue.emit(str(text))

    def rest(self, text: str | None = None) -> None:
        """Show the rest display (fixation cross, or ``text``) (any thread)."""
        self._bridge.rest.emit(text)

    def attach_buttons(self, source: ResponseSource, left: int = 1, right: int = 2,
                       confirm: int = 3, holds: bool | None = None) -> Callable[[], None]:
        """Move and confirm with ``source``'s button presses; returns a detach function.

        ``holds``: the source reports releases, so a held button moves the marker until
        released. None: yes, unless the source has an empty ``release_map`` (a
        :class:`~drivers.responses.SerialButtonBox` without one): then each press is one
        step. Callbacks may come on any thread.
        """
        if holds is None:
            holds = getattr(source, "release_map", None) != {}
        binding = _ButtonBinding(getattr(source, "name", type(source).__name__),
                                 int(left), int(right), int(confirm), holds)

        def on_response(response: Response) -> None:
            if response.kind in ("press", "release"):
                self._bridge.button.emit(binding, response)

        unsubscribe = source.subscribe(on_response)
        self._detachers.append(unsubscribe)

        def detach() -> None:
            if unsubscribe in self._detachers:
                self._detachers.remove(unsubscribe)
                unsubscribe()

        return detach

    def detach_buttons(self) -> None:
        """Stop listening to every attached button source."""
        while self._detachers:
            self._detachers.pop()()

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """REST, CUE or RATING (read on the GUI thread)."""
        return self._state

    @property
    def request(self) -> RatingRequest | None:
        """The open rating request, if any."""
        return self._request

    @property
    def value(self) -> float:
        """The marker's value on the open scale's own range (VAS 0-100, NRS 0-10)."""
        if self.scale_view.scale == NRS:
            return float(round(self.scale_view.position / 10))
        return self._rounded(self.scale_view.position)

    @property
    def last_latency_s(self) -> float | None:
        """From the scale's appearance to the confirmation of the last rating."""
        return None if self.last_rating is None else self.last_rating.latency_s

    def show_on(self, screen: QScreen | None = None, full_screen: bool | None = None) -> None:
        """Show full screen on ``screen`` (default: :func:`participant_screen`).

        ``full_screen`` None: full screen when there is more than one screen, else a
        window of 1280x720.
        """
        target = screen or participant_screen()
        if full_screen is None:
            full_screen = len(QGuiApplication.screens()) > 1
        if target is not None:
            self.setScreen(target)
            self.move(target.geometry().topLeft())
        if full_screen and target is not None:
            self.setGeometry(target.geometry())
            self.showFullScreen()
        else:
            self.resize(*WINDOWED_SIZE)
            self.showNormal()

    # -- GUI-thread slots ------------------------------------------------------------------
    @Slot(object)
    def _on_ask(self, request: RatingRequest) -> None:
        self._close_rating()
        remaining = None if request.deadline is None else request.deadline - self.clock.now()
        if remaining is not None and remaining <= 0:
            self._set_page(REST)
            self.timed_out.emit(request.number)
            return
        self._request = request
        self.question_label.setText(request.question)
        self.scale_view.scale = request.scale
        self.scale_view.anchors = request.anchors
        self._start_position = self._start_for(request)
        self.scale_view.position = self._start_position
        self._set_page(RATING)
        self.scale_view.update()
        self._shown_at = self.clock.now()
        if remaining is not None:
            self._timeout.start(max(0, round(remaining / self.clock.speed * 1000)))

    @Slot(str)
    def _on_cue(self, text: str) -> None:
        self._close_rating()
        self.cue_label.setText(text)
        self._set_page(CUE)

    @Slot(object)
    def _on_rest(self, text: str | None) -> None:
        self._close_rating()
        self.rest_label.setText(self.rest_text if text is None else text)
        self._set_page(REST)

    @Slot()
    def _on_timeout(self) -> None:
        request = self._request
        if request is None:
            return
        self._close_rating()
        self._set_page(REST)
        self.timed_out.emit(request.number)

    @Slot(object, object)
    def _on_button(self, binding: _ButtonBinding, response: Response) -> None:
        button = int(response.value)
        key = (binding.source_name, button)
        if response.kind == "release":
            if self._held.pop(key, None) is not None:
                self._snap_nrs()
                if not self._held:
                    self._motion.stop()
            return
        if self._request is None or response.timestamp < self._shown_at:
            return  # pressed before this scale was up
        if button == binding.confirm:
            self.confirm(response.timestamp, f"button:{binding.source_name}")
            return
        direction = {binding.left: -1, binding.right: 1}.get(button)
        if direction is None:
            return
        self._nudge(direction, big=False)
        if binding.holds:
            self._held[key] = direction
            self._hold_since = self._last_tick = time.monotonic()
            self._motion.start()

    @Slot()
    def _on_motion(self) -> None:
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        direction = max(-1, min(1, sum(self._held.values())))
        if self._request is None or not self._held:
            self._motion.stop()
            return
        if direction and now - self._hold_since >= self.hold_delay_s:
            self._move_to(self.scale_view.position + direction * self.button_speed * dt)

    @Slot(float)
    def _on_picked(self, position: float) -> None:
        if self._request is not None:
            self._move_to(position)

    @Slot(float)
    def _on_double_click(self, position: float) -> None:
        if self._request is not None:
            self._move_to(position)
            self.confirm(self.clock.now(), "mouse")

    # -- keyboard ----------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if self._request is None:
            super().keyPressEvent(event)
            return
        now = self.clock.now()
        key = event.key()
        big = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            self._nudge(-1 if key == Qt.Key.Key_Left else 1, big)
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self._move_to(0.0 if key == Qt.Key.Key_Home else 100.0)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            if not event.isAutoRepeat():
                self.confirm(now, "keyboard")
        else:
            super().keyPressEvent(event)

    # -- rating ------------------------------------------------------------------------------
    def confirm(self, timestamp: float | None = None, via: str = "operator") -> Rating | None:
        """Confirm the marker's value now (GUI thread); None if no rating is open or late."""
        request = self._request
        if request is None:
            return None
        timestamp = self.clock.now() if timestamp is None else timestamp
        if request.deadline is not None and timestamp > request.deadline:
            self._on_timeout()
            return None
        raw = self.value
        nrs = request.scale == NRS
        rating = Rating(request.number, request.scale, raw, raw * 10 if nrs else raw,
                        self._start_position / 10 if nrs else self._start_position,
                        self._shown_at, timestamp, via)
        self.last_rating = rating
        self._close_rating()
        self._set_page(REST)
        if self._listening:
            call_each(self._callbacks, Response(timestamp, self.name, "vas", rating.value))
        self.rated.emit(rating)
        return rating

    def _start_for(self, request: RatingRequest) -> float:
        """The marker's first position (0-100) for ``request``."""
        nrs = request.scale == NRS
        start = request.start
        if start == "left":
            return 0.0
        if start == "middle":
            return 50.0
        if start == "random":
            return self._rng.randint(0, 10) * 10.0 if nrs else self._rounded(
                self._rng.uniform(0.0, 100.0))
        value = float(start) * (10 if nrs else 1)
        return min(100.0, max(0.0, round(value, -1) if nrs else value))

    def _nudge(self, direction: int, big: bool) -> None:
        if self.scale_view.scale == NRS:
            boxes = 2 if big else 1
            self._move_to((round(self.scale_view.position / 10) + direction * boxes) * 10)
        else:
            self._move_to(self.scale_view.position + direction * (
                self.big_step if big else self.step))

    def _move_to(self, position: float) -> None:
        self.scale_view.position = min(100.0, max(0.0, position))
        self.scale_view.update()

    def _snap_nrs(self) -> None:
        if self.scale_view.scale == NRS:
            self._move_to(round(self.scale_view.position / 10) * 10.0)

    def _rounded(self, position: float) -> float:
        steps = round(position / self.vas_resolution)
        return round(steps * self.vas_resolution, 6)

    def _close_rating(self) -> None:
        self._request = None
        self._timeout.stop()
        self._motion.stop()
        self._held.clear()

    def _set_page(self, state: str) -> None:
        page = {REST: self.rest_label, CUE: self.cue_label, RATING: self._rating_page}[state]
        self.pages.setCurrentWidget(page)
        if state != self._state:
            self._state = state
            self.state_changed.emit(state)

    # -- look --------------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        base = min(self.height(), self.width() * 0.6)
        self.rest_label.setFont(_font(int(base * 0.22), bold=True))
        self.cue_label.setFont(_font(int(base * 0.1), bold=True))
        self.question_label.setFont(_font(int(base * 0.075), bold=True))
        self.scale_view.font_px = max(18, int(base * 0.055))
        button_px = max(18, int(base * 0.045))
        self.confirm_button.setStyleSheet(
            f"QPushButton {{ font-size:{button_px}px; font-weight:bold; color:{BACKGROUND};"
            f" background:{FOREGROUND}; border-radius:{button_px // 3}px;"
            f" padding:{button_px // 3}px {button_px}px; }}"
            f" QPushButton:pressed {{ background:{MARKER}; }}")

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.detach_buttons()
        self._close_rating()
        super().closeEvent(event)


def participant_screen() -> QScreen | None:
    """The first screen that is not the primary one, or None with a single screen."""
    primary = QGuiApplication.primaryScreen()
    others = [s for s in QGuiApplication.screens() if s is not primary]
    return others[0] if others else None


def sample_for_screenshot() -> RatingScreen:
    """A 1280x720 screen asking a VAS question with the marker at 60 (for the docs)."""
    from qst_station.clock import LslClock

    screen = RatingScreen(LslClock())
    screen.resize(*WINDOWED_SIZE)
    screen.ask(VAS, "How painful was the heat?", start=60.0)
    return screen


def _check_start(start: str | float) -> None:
    if isinstance(start, str) and start not in STARTS:
        raise ValueError(f"marker start is one of {STARTS} or a number, got {start!r}")


def _two_anchors(anchors: Sequence[str]) -> tuple[str, str]:
    if isinstance(anchors, str) or len(anchors) != 2:
        raise ValueError(f"anchors are two texts (low end, high end), got {anchors!r}")
    return str(anchors[0]), str(anchors[1])


def _font(pixels: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setPixelSize(max(1, pixels))
    font.setBold(bold)
    return font


def _big_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    label.setStyleSheet(f"color:{FOREGROUND};")
    return label
