"""The other-devices window: every simulated bench device connects and streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from qst_station.clock import SimulatedClock
from qst_station.gui.devices_window import DevicePanel, DevicesWindow
from qst_station.gui.ppt_panel import PptPanel

TIMEOUT_MS = 8000


@pytest.fixture
def devices(qtbot: QtBot) -> Iterator[DevicesWindow]:
    window = DevicesWindow(SimulatedClock(speed=10.0))
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def connect(qtbot: QtBot, panel: DevicePanel) -> None:
    qtbot.mouseClick(panel.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.driver is not None and panel.driver.connected,
                    timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: len(panel.buffer) > 0, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: all(b.isEnabled() for b in panel.action_buttons),
                    timeout=TIMEOUT_MS)


def latest(panel: DevicePanel, channel: int = 0) -> float:
    _, values = panel.buffer.snapshot()
    return float(values[-1, channel])


def test_every_device_connects_streams_and_acts(
    qtbot: QtBot, devices: DevicesWindow, tmp_path: Path
) -> None:
    algometer, cuff, medoc, scanner = devices.panels
    for panel in devices.panels:
        devices.tabs.setCurrentWidget(panel)
        connect(qtbot, panel)
        qtbot.waitUntil(lambda p=panel: p.kind == "connected", timeout=TIMEOUT_MS)

    qtbot.mouseClick(algometer.action_buttons[0], Qt.MouseButton.LeftButton)  # press
    qtbot.waitUntil(lambda: latest(algometer) > 20.0, timeout=TIMEOUT_MS)

    qtbot.mouseClick(cuff.action_buttons[0], Qt.MouseButton.LeftButton)  # ramp to VAS max
    qtbot.waitUntil(lambda: latest(cuff, 0) > 5.0, timeout=TIMEOUT_MS)

    qtbot.mouseClick(medoc.action_buttons[0], Qt.MouseButton.LeftButton)  # program 2, 44 °C
    qtbot.waitUntil(lambda: latest(medoc) > 36.0, timeout=TIMEOUT_MS)

    qtbot.waitUntil(lambda: latest(scanner) >= 3, timeout=TIMEOUT_MS)  # volumes counted

    devices.tabs.setCurrentWidget(medoc)
    devices.refresh()
    x, y = medoc.curves[0].getData()
    assert x is not None and len(x) > 0
    assert devices.grab().save(str(tmp_path / "devices.png"))

    devices.stop_all()  # the main window's STOP reaches these devices too
    qtbot.waitUntil(lambda: latest(cuff, 0) < 2.0, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: medoc.driver.get_status().test_state.name != "RUNNING",
                    timeout=TIMEOUT_MS)


def test_disconnect_returns_to_the_start(qtbot: QtBot, devices: DevicesWindow) -> None:
    panel = devices.panels[0]
    connect(qtbot, panel)
    qtbot.mouseClick(panel.disconnect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.connect_button.isEnabled(), timeout=TIMEOUT_MS)
    assert panel.driver is None and panel.kind == "disconnected"
    assert not any(b.isEnabled() for b in panel.action_buttons)


def test_algometer_tab_shows_ppt_feedback(qtbot: QtBot, devices: DevicesWindow) -> None:
    algometer = devices.panels[0]
    ppt = algometer.view
    assert isinstance(ppt, PptPanel) and ppt.isVisible()
    connect(qtbot, algometer)
    press = algometer.action_buttons[0]
    qtbot.mouseClick(press, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ppt.tracker.trial is not None and ppt.tracker.trial.elapsed_s > 1.5,
                    timeout=TIMEOUT_MS)
    devices.activateWindow()
    qtbot.waitUntil(devices.isActiveWindow, timeout=TIMEOUT_MS)
    press.setFocus()
    qtbot.keyClick(press, Qt.Key.Key_Space)  # Space is Capture, even on a focused button
    qtbot.waitUntil(lambda: ppt.captures_list.count() == 1, timeout=TIMEOUT_MS)
    [capture] = ppt.tracker.captures
    assert capture.kpa > 50.0 and capture.source == "examiner"
    assert ppt.status_label.text().startswith(f"Trial 1: PPT {capture.kpa:.0f} kPa")
