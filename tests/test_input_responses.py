"""Keyboard and mouse responses in a Qt widget, stamped on the program clock."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget

from qst_station.gui.input_responses import KeyboardMouseResponses, key_codes
from tests.helpers import ManualClock


@pytest.fixture
def screen(qtbot):
    widget = QWidget()
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.resize(200, 100)
    qtbot.addWidget(widget)
    clock = ManualClock(100.0)
    source = KeyboardMouseResponses(widget, clock, keys={"Space": 1, "F": 2, "J": 3})
    received = []
    source.subscribe(received.append)
    source.connect()
    return widget, clock, source, received


def test_keys_map_to_buttons_with_press_and_release(qtbot, screen) -> None:
    widget, clock, _, received = screen
    clock.sleep(1.5)
    qtbot.keyPress(widget, Qt.Key.Key_F)
    clock.sleep(0.25)
    qtbot.keyRelease(widget, Qt.Key.Key_F)
    qtbot.keyClick(widget, Qt.Key.Key_Space)
    assert [(r.kind, r.value) for r in received] == [
        ("press", 2.0), ("release", 2.0), ("press", 1.0), ("release", 1.0)]
    assert [r.timestamp for r in received] == [101.5, 101.75, 101.75, 101.75]
    assert {r.source for r in received} == {"keyboard"}


def test_unmapped_keys_pass_through_and_auto_repeat_is_ignored(qtbot, screen) -> None:
    widget, _, _, received = screen
    qtbot.keyClick(widget, Qt.Key.Key_X)
    repeat = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_J, Qt.KeyboardModifier.NoModifier,
                       "j", True)
    QApplication.sendEvent(widget, repeat)
    assert received == []


def test_mouse_buttons_and_disconnect(qtbot, screen) -> None:
    widget, _, source, received = screen
    qtbot.mouseClick(widget, Qt.MouseButton.RightButton, pos=QPoint(10, 10))
    qtbot.mouseClick(widget, Qt.MouseButton.MiddleButton, pos=QPoint(10, 10))
    assert [(r.kind, r.value) for r in received] == [("press", 2.0), ("release", 2.0)]
    source.disconnect()
    assert not source.connected
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    qtbot.keyClick(widget, Qt.Key.Key_Space)
    assert len(received) == 2


def test_key_names_are_checked(qapp) -> None:
    assert key_codes({"Space": 1}) == {Qt.Key.Key_Space.value: 1}
    with pytest.raises(ValueError, match="unknown key 'NoSuchKey'"):
        key_codes({"NoSuchKey": 1})
