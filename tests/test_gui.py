"""Offscreen pytest-qt tests of the TCS II window against its in-process simulated device.

Each test builds the window as the app does (``build_window`` with the default, simulated
configuration, which connects at once), drives it through its widgets (form, Start, Esc),
checks what the simulated device received and did, and closes the window, which must
leave the device aborted and stop the simulator.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from qst_station.clock import Clock
from qst_station.config import default_config
from qst_station.gui.app import build_window
from qst_station.gui.tcs_window import TcsWindow
from sim.tcs import SimulatedTcs

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TIMEOUT_MS = 5000


def simulator(window: TcsWindow) -> SimulatedTcs:
    sim = window.thermode.simulator
    assert sim is not None, "the default configuration is simulated"
    return sim


def names_since(window: TcsWindow, index: int) -> list[str]:
    """Names of the commands the simulated device decoded from ``index`` on."""
    return [cmd.name for cmd in simulator(window).device.log[index:]]


def close_window(window: TcsWindow, links: list[threading.Thread]) -> None:
    """Close as the operator would; the device must be left aborted, the simulator stopped."""
    sim = simulator(window)
    was_connected = window.driver.connected
    before = len(sim.device.log)
    window.close()
    assert not window.driver.connected
    if was_connected:
        assert "abort" in names_since(window, before), "closing did not abort the device"
    assert all(zone.phase in ("return", "idle") for zone in sim.device.zones)
    for link in links:
        link.join(timeout=2.0)
        assert not link.is_alive(), "the simulator's pty thread still runs after close"


@pytest.fixture
def window(qtbot: QtBot, clock: Clock) -> Iterator[TcsWindow]:
    """The window, shown and connected to its simulated TCS II."""
    threads_before = set(threading.enumerate())
    win = build_window(default_config(), clock)
    links = [t for t in threading.enumerate() if t.name == "pty-link" and t not in threads_before]
    assert links, "build_window did not start a simulator"
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.state == "connected", timeout=TIMEOUT_MS)
    yield win
    close_window(win, links)


def set_zone(window: TcsWindow, zone: int, target: float, rise: float, ret: float,
             duration_ms: int) -> None:
    row = window.rows[zone - 1]
    row.target.setValue(target)
    row.rise.setValue(rise)
    row.ret.setValue(ret)
    row.duration.setValue(duration_ms)


def click_start(qtbot: QtBot, window: TcsWindow) -> None:
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)


def start_zone_1_ramp(qtbot: QtBot, window: TcsWindow) -> None:
    """Zone 1 to 45 °C at 10 °C/s for 3 s; wait until it is 2 °C above baseline."""
    set_zone(window, 1, 45.0, 10.0, 10.0, 3000)
    click_start(qtbot, window)
    device = simulator(window).device
    baseline = window.driver.baseline
    qtbot.waitUntil(lambda: device.zones[0].temperature > baseline + 2.0, timeout=TIMEOUT_MS)


def test_start_from_the_form_streams_and_plots(qtbot: QtBot, window: TcsWindow) -> None:
    device = simulator(window).device
    samples_before = len(window.buffer)
    logged = len(device.log)
    start_zone_1_ramp(qtbot, window)

    assert len(window.buffer) > samples_before
    sent = names_since(window, logged)
    assert sent[-1] == "start" or "start" in sent
    assert window.driver.stimulus(1).target == 45.0
    assert window.driver.stimulus(1).duration_ms == 3000
    assert device.zones[0].phase == "ramp"
    qtbot.waitUntil(
        lambda: "Stimulation started" in window.statusBar().currentMessage(), timeout=2000)

    window.refresh()
    x, y = window.curves[1].getData()
    assert x is not None and y is not None and len(x) > 0
    assert np.all(x <= 0.5)  # plotted as seconds before now
    assert np.nanmax(y) > window.driver.baseline + 1.0  # zone 1's curve shows the ramp
    assert "°C" in window.readouts[1].text()
    assert not window.banner.isVisible()
    assert window.state == "connected"


def test_escape_aborts_a_running_stimulation(qtbot: QtBot, window: TcsWindow) -> None:
    device = simulator(window).device
    start_zone_1_ramp(qtbot, window)
    assert device.zones[0].phase == "ramp"
    logged = len(device.log)

    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: "abort" in names_since(window, logged), timeout=2000)
    qtbot.waitUntil(
        lambda: all(zone.phase in ("return", "idle") for zone in device.zones), timeout=2000)
    assert "start" not in names_since(window, logged)
    assert not window.driver.stimulating
    qtbot.waitUntil(lambda: "Stopped" in window.statusBar().currentMessage(), timeout=2000)
    assert window.state == "connected"


def test_stimulus_beyond_the_dose_envelope_is_refused(
    qtbot: QtBot, window: TcsWindow
) -> None:
    device = simulator(window).device
    set_zone(window, 1, 50.0, 10.0, 10.0, 99999)  # ~97 s at 50 °C; 12 s allowed
    logged = len(device.log)
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)

    qtbot.waitUntil(window.banner.isVisible, timeout=TIMEOUT_MS)
    text = window.banner.text()
    assert "dose envelope" in text
    assert "zone 1" in text and "50.0 °C" in text
    sent = device.log[logged:]
    assert "start" not in [cmd.name for cmd in sent]
    assert not any(cmd.name == "target" and cmd.values == (1, 500) for cmd in sent)
    assert all(zone.phase == "idle" for zone in device.zones)
    assert window.state == "connected"


def test_lost_connection_shows_banner_and_offers_reconnect(
    qtbot: QtBot, window: TcsWindow
) -> None:
    simulator(window).disconnect()
    qtbot.waitUntil(lambda: window.state == "lost", timeout=TIMEOUT_MS)
    assert window.banner.isVisible()
    assert "connection lost" in window.banner.text()
    assert window.connect_button.text() == "Reconnect"
    assert window.connect_button.isEnabled()
    assert not window.start_button.isEnabled()
    assert not window.disconnect_button.isEnabled()
    assert "lost" in window.state_label.text().lower()


def test_screenshot_is_not_blank(qtbot: QtBot, window: TcsWindow, tmp_path: Path) -> None:
    start_zone_1_ramp(qtbot, window)
    window.refresh()
    path = str(tmp_path / "w.png")
    assert window.grab().save(path)

    image = QImage(path)
    assert not image.isNull()
    assert image.width() >= 600 and image.height() >= 400
    rgb = image.convertToFormat(QImage.Format.Format_RGB32)
    pixels = np.frombuffer(rgb.constBits(), dtype=np.uint32, count=rgb.sizeInBytes() // 4)
    pixels = pixels.reshape(rgb.height(), rgb.bytesPerLine() // 4)[:, : rgb.width()]
    assert len(np.unique(pixels)) > 50, "the screenshot is (nearly) blank"
    stop_red = np.uint32(0xFFC62828)  # the STOP button's background
    assert np.count_nonzero(pixels == stop_red) > 1000


def test_record_button_records_a_session_the_plot_follows(
        qtbot: QtBot, window: TcsWindow, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from qst_station import session

    window.session.out_dir = tmp_path
    window.session.publish = False  # LSL publishing is covered by the LSL tests
    qtbot.mouseClick(window.record_button, Qt.MouseButton.LeftButton)
    assert not window.record_button.isChecked()  # no participant code yet: refused
    assert "enter a participant code" in window.banner.text()
    window.participant_edit.setText("P042")
    window.visit_edit.setText("m3")
    qtbot.mouseClick(window.record_button, Qt.MouseButton.LeftButton)
    assert window.record_button.isChecked() and window.session.active
    start_zone_1_ramp(qtbot, window)
    live = window.session.live.buffers["thermode"]
    heated = window.driver.baseline + 2.5  # the ramp is well under way (zone 1: column 1)
    qtbot.waitUntil(lambda: len(live) > 20 and live.snapshot()[1][:, 1].max() > heated,
                    timeout=TIMEOUT_MS)
    window.refresh()  # drawn from the recording's live buffer now
    x, _ = window.curves[1].getData()
    assert len(x) <= len(live)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.mouseClick(window.record_button, Qt.MouseButton.LeftButton)
    assert not window.session.active
    (path,) = tmp_path.glob("sub-P042_ses-m3_tcs_*.h5")
    s = session.open(path)
    assert s.status == "success" and s.parts[0].protocol == "manual TCS II"
    assert s.events_of("stimulus_onset")[0].payload["plan"][0]["target_c"] == 45.0
    assert any(e.payload["state"] == "emergency-stop" for e in s.events_of("device"))
    assert s.streams["thermode"].column("zone1").max() > window.driver.baseline + 2.0
