"""The participant's rating screen: keyboard, mouse and button boxes; thread-safe asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from drivers.responses import Response
from qst_station.gui.rating_screen import (
    CUE,
    NRS,
    RATING,
    REST,
    VAS,
    Rating,
    RatingScreen,
    parse_scale,
    sample_for_screenshot,
)
from tests.helpers import ManualClock

T0 = 500.0



class FakeButtons:
    """A ResponseSource of button presses the test triggers from a thread of its own."""

    def __init__(self, name: str = "fakebox", release_map: dict[bytes, int] | None = None
                 ) -> None:
        self.name = name
        self.connected = True
        if release_map is not None:
            self.release_map = release_map
        self._callbacks: list[Callable[[Response], None]] = []

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return lambda: None

    def subscribe(self, callback: Callable[[Response], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def send(self, kind: str, button: int, timestamp: float) -> None:
        """Deliver one press or release from a device thread (waits until delivered)."""
        def deliver() -> None:
            for callback in list(self._callbacks):
                callback(Response(timestamp, self.name, kind, float(button)))

        thread = threading.Thread(target=deliver, name="fake-device")
        thread.start()
        thread.join(5)
        assert not thread.is_alive()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def make_screen(qtbot: QtBot, clock: ManualClock) -> Iterator[Callable[..., RatingScreen]]:
    def make(**options: object) -> RatingScreen:
        screen = RatingScreen(clock, **options)  # type: ignore[arg-type]
        qtbot.addWidget(screen)
        screen.show_on(full_screen=False)
        qtbot.waitExposed(screen)
        screen.connect()
        return screen

    yield make


@pytest.fixture
def screen(make_screen: Callable[..., RatingScreen]) -> RatingScreen:
    return make_screen()


def collect(screen: RatingScreen) -> list[Response]:
    received: list[Response] = []
    screen.subscribe(received.append)
    return received


def test_keys_move_the_marker_and_enter_confirms_once(
        qtbot: QtBot, screen: RatingScreen, clock: ManualClock) -> None:
    received = collect(screen)
    assert screen.state == REST
    screen.ask(VAS, "How painful?")
    assert screen.state == RATING and screen.value == 50.0
    for _ in range(3):
        qtbot.keyClick(screen, Qt.Key.Key_Right)
    qtbot.keyClick(screen, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(screen, Qt.Key.Key_Left)
    assert screen.value == 62.0
    clock.t += 2.5
    qtbot.keyClick(screen, Qt.Key.Key_Return)
    qtbot.keyClick(screen, Qt.Key.Key_Space)  # the screen is at rest: nothing more
    assert received == [Response(T0 + 2.5, "rating-screen", "vas", 62.0)]
    assert screen.state == REST
    assert screen.last_latency_s == pytest.approx(2.5)
    assert screen.last_rating is not None and screen.last_rating.via == "keyboard"


def test_home_end_and_the_ends_of_the_scale(qtbot: QtBot, screen: RatingScreen) -> None:
    screen.ask(VAS)
    qtbot.keyClick(screen, Qt.Key.Key_End)
    qtbot.keyClick(screen, Qt.Key.Key_Right)
    assert screen.value == 100.0
    qtbot.keyClick(screen, Qt.Key.Key_Home)
    qtbot.keyClick(screen, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert screen.value == 0.0


def test_a_click_sets_the_value_and_the_confirm_button_confirms(
        qtbot: QtBot, screen: RatingScreen, clock: ManualClock) -> None:
    received = collect(screen)
    screen.ask(VAS, start="left")
    view = screen.scale_view
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.point_for(25).toPoint())
    assert screen.value == pytest.approx(25.0, abs=1.0)
    clock.t += 1.0
    qtbot.mouseClick(screen.confirm_button, Qt.MouseButton.LeftButton)
    assert len(received) == 1
    assert received[0].value == screen.last_rating.value == pytest.approx(25.0, abs=1.0)
    assert received[0].timestamp == T0 + 1.0
    assert screen.last_rating.via == "mouse" and screen.last_rating.start == 0.0


def test_drag_then_double_click_confirms(qtbot: QtBot, screen: RatingScreen) -> None:
    received = collect(screen)
    screen.ask(VAS)
    view = screen.scale_view
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=view.point_for(10).toPoint())
    for target in (40, 80):
        move = QMouseEvent(QEvent.Type.MouseMove, view.point_for(target),
                           view.mapToGlobal(view.point_for(target)), Qt.MouseButton.NoButton,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view, move)
    assert screen.value == pytest.approx(80.0, abs=1.0)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=view.point_for(80).toPoint())
    qtbot.mouseDClick(view, Qt.MouseButton.LeftButton, pos=view.point_for(70).toPoint())
    assert [r.value for r in received] == [pytest.approx(70.0, abs=1.0)]


def test_button_box_moves_while_held_and_confirms(
        qtbot: QtBot, make_screen: Callable[..., RatingScreen]) -> None:
    screen = make_screen(button_speed=200.0, hold_delay_s=0.0)
    box = FakeButtons()
    screen.attach_buttons(box, left=1, right=2, confirm=3)
    received = collect(screen)
    screen.ask(VAS)
    box.send("press", 2, T0)
    qtbot.waitUntil(lambda: screen.value >= 75.0)
    box.send("release", 2, T0 + 0.2)
    qtbot.waitUntil(lambda: not screen._held)
    held_at = screen.value
    box.send("press", 1, T0 + 0.3)  # a tap: one step left
    box.send("release", 1, T0 + 0.35)
    qtbot.waitUntil(lambda: not screen._held and screen.value <= held_at - 1.0)
    value = screen.value
    box.send("press", 3, T0 + 0.5)
    qtbot.waitUntil(lambda: len(received) == 1)
    assert received[0] == Response(T0 + 0.5, "rating-screen", "vas", value)
    assert screen.last_rating.via == "button:fakebox"
    assert screen.state == REST


def test_a_box_without_releases_steps_once_per_press(
        qtbot: QtBot, screen: RatingScreen) -> None:
    box = FakeButtons(release_map={})
    screen.attach_buttons(box, left=1, right=2, confirm=4)
    received = collect(screen)
    screen.ask(VAS)
    for _ in range(3):
        box.send("press", 2, T0)
    box.send("press", 4, T0 + 1.0)
    qtbot.waitUntil(lambda: len(received) == 1)
    assert received[0].value == 53.0


def test_presses_before_the_scale_appeared_and_after_detach_are_ignored(
        qtbot: QtBot, screen: RatingScreen, clock: ManualClock) -> None:
    box = FakeButtons()
    detach = screen.attach_buttons(box)
    received = collect(screen)
    clock.t = T0 + 10.0
    screen.ask(VAS)
    box.send("press", 3, T0 + 9.0)  # stamped before the scale was up
    detach()
    box.send("press", 3, T0 + 11.0)
    qtbot.keyClick(screen, Qt.Key.Key_Right)  # the GUI has handled what came before
    assert received == [] and screen.state == RATING


def test_timeout_returns_to_rest_without_a_response(
        qtbot: QtBot, screen: RatingScreen, clock: ManualClock) -> None:
    received = collect(screen)
    with qtbot.waitSignal(screen.timed_out) as timed_out:
        number = screen.ask(VAS, timeout_s=0.05)
    assert timed_out.args == [number]
    assert screen.state == REST and received == [] and screen.request is None
    screen.ask(VAS, timeout_s=10.0)
    clock.t += 10.5  # the confirmation comes after the deadline: refused
    qtbot.keyClick(screen, Qt.Key.Key_Return)
    assert received == [] and screen.state == REST


def test_ask_cue_and_rest_from_a_worker_thread_never_block(
        qtbot: QtBot, screen: RatingScreen) -> None:
    received = collect(screen)
    numbers: list[int] = []

    def worker() -> None:
        screen.show_cue("Get ready")
        numbers.append(screen.ask(NRS, "How intense?", anchors=("none", "worst"),
                                  start="left"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(5)  # the GUI thread is blocked here: ask() must not wait for it
    assert not thread.is_alive() and screen.state == REST
    qtbot.waitUntil(lambda: screen.state == RATING)
    assert screen.request is not None and screen.request.number == numbers[0]
    assert screen.scale_view.anchors == ("none", "worst")
    assert screen.question_label.text() == "How intense?"
    thread = threading.Thread(target=screen.show_cue, args=("Relax",))
    thread.start()
    thread.join(5)
    qtbot.waitUntil(lambda: screen.state == CUE)
    assert screen.cue_label.text() == "Relax"
    threading.Thread(target=screen.rest).start()
    qtbot.waitUntil(lambda: screen.state == REST)
    assert received == []  # the rating was replaced, not answered


def test_nrs_reports_times_ten_and_keeps_the_raw_value(
        qtbot: QtBot, screen: RatingScreen) -> None:
    received = collect(screen)
    with qtbot.waitSignal(screen.rated) as rated:
        screen.ask(NRS, start="left")
        for _ in range(3):
            qtbot.keyClick(screen, Qt.Key.Key_Right)
        qtbot.keyClick(screen, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
        qtbot.keyClick(screen, Qt.Key.Key_Enter)
    rating: Rating = rated.args[0]
    assert (rating.scale, rating.raw, rating.value) == (NRS, 5.0, 50.0)
    assert [r.value for r in received] == [50.0]
    screen.ask("NRS")
    view = screen.scale_view
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.point_for(70).toPoint())
    assert screen.value == 7.0
    qtbot.keyClick(screen, Qt.Key.Key_Space)
    assert received[-1].value == 70.0 and screen.last_rating.raw == 7.0


def test_marker_start_left_middle_random_seeded_and_fixed(
        make_screen: Callable[..., RatingScreen]) -> None:
    first, second = make_screen(start="random", seed=7), make_screen(start="random", seed=7)
    starts = []
    for screen in (first, second):
        values = []
        for scale in (VAS, NRS, VAS):
            screen.ask(scale)
            values.append(screen.value)
        starts.append(values)
    assert starts[0] == starts[1]
    assert 0 <= starts[0][0] <= 100 and starts[0][1] in range(11)
    first.ask(VAS, start="left")
    assert first.value == 0.0
    first.ask(VAS, start="middle")
    assert first.value == 50.0
    first.ask(NRS, start=3)
    assert first.value == 3.0


def test_no_responses_while_disconnected(qtbot: QtBot, screen: RatingScreen) -> None:
    received = collect(screen)
    screen.disconnect()
    assert not screen.connected
    screen.ask(VAS)
    qtbot.keyClick(screen, Qt.Key.Key_Return)
    assert received == [] and screen.last_rating is not None


def test_bad_arguments_raise_on_the_callers_thread(screen: RatingScreen) -> None:
    assert parse_scale("vas 0-100") == VAS and parse_scale("NRS") == NRS
    with pytest.raises(ValueError, match="unknown rating scale"):
        screen.ask("VAS 0-10")
    with pytest.raises(ValueError, match="two texts"):
        screen.ask(VAS, anchors=("only one",))
    with pytest.raises(ValueError, match="marker start"):
        screen.ask(VAS, start="right")
    assert screen.state == REST


def test_sample_for_screenshot(qtbot: QtBot) -> None:
    sample = sample_for_screenshot()
    qtbot.addWidget(sample)
    assert sample.state == RATING and sample.value == 60.0
    assert not sample.grab().isNull()
    assert sample.scale_view.point_for(60).x() > sample.width() / 2


def test_full_screen_on_the_second_monitor(tmp_path) -> None:
    """Two offscreen screens (a separate Qt process): the screen fills the second one."""
    screens = tmp_path / "screens.json"
    screens.write_text(json.dumps({"screens": [
        {"name": "operator", "x": 0, "y": 0, "width": 1920, "height": 1080},
        {"name": "participant", "x": 1920, "y": 0, "width": 1280, "height": 1024}]}))
    script = (
        "from PySide6.QtWidgets import QApplication\n"
        "from qst_station.clock import LslClock\n"
        "from qst_station.gui.rating_screen import RatingScreen\n"
        "app = QApplication([])\n"
        "screen = RatingScreen(LslClock())\n"
        "screen.show_on()\n"
        "app.processEvents()\n"
        "g = screen.geometry()\n"
        "print(screen.screen().name(), screen.isFullScreen(), g.x(), g.width(), g.height())\n")
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screens}"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == ["participant", "True", "1920", "1280", "1024"]


def test_one_screen_gives_a_window(screen: RatingScreen) -> None:
    assert not screen.isFullScreen() and screen.isVisible()
