"""The operator console, offscreen: a whole simulated battery driven by clicks and keys, the
emergency stop, closing mid-run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.config import default_config
from qst_station.gui.console import ConsoleWindow

RUN_TIMEOUT_MS = 180_000


@pytest.fixture
def console(qtbot, tmp_path: Path):  # noqa: ANN001, ANN201
    window = ConsoleWindow(default_config(), SimulatedClock(20.0), folder=tmp_path / "sessions",
                           scan_lsl=False)
    qtbot.addWidget(window)
    window.show()
    yield window
    if window.controller.running:
        window.controller.stop("test teardown")
        window.controller.wait(30.0)


def set_up_participant(qtbot, window: ConsoleWindow) -> None:  # noqa: ANN001
    panel = window.session_panel
    window.tabs.setCurrentWidget(panel)
    panel.code.clear()
    qtbot.keyClicks(panel.code, "P001")
    panel.sex.setCurrentIndex(panel.sex.findText("female"))
    panel.age.setValue(34)


def start(qtbot, window: ConsoleWindow, protocol: str) -> None:  # noqa: ANN001
    window.tabs.setCurrentWidget(window.run_panel)
    window.run_panel.chooser.setCurrentText(protocol)
    qtbot.mouseClick(window.run_panel.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.controller.running, timeout=5000)


def wait_for_onset(qtbot, window: ConsoleWindow) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.controller.live is not None
                    and bool(window.controller.live.feed.of_kind("stimulus_onset")),
                    timeout=30_000)


def test_a_whole_thermal_battery_from_the_window(qtbot, console: ConsoleWindow,
                                                 tmp_path: Path) -> None:  # noqa: ANN001
    set_up_participant(qtbot, console)
    start(qtbot, console, "dfns-thermal")
    qtbot.waitUntil(lambda: console.run_panel.trials.rowCount() >= 1, timeout=30_000)
    qtbot.waitUntil(lambda: console.last_outcome is not None, timeout=RUN_TIMEOUT_MS)
    outcome = console.last_outcome
    assert outcome is not None and outcome.status == "success", outcome
    s = session.open(outcome.path)
    assert s.participant == "P001" and s.attrs["sex"] == "female" and s.attrs["age"] == 34
    assert set(s.results()) >= {"CDT", "WDT", "TSL", "CPT", "HPT"}
    assert console.run_panel.trials.rowCount() == len(s.trials())
    # the results: values, z-scores, the profile; then export from the window
    results = console.results_panel
    assert console.tabs.currentWidget() is results
    names = {results.table.item(r, 0).text() for r in range(results.table.rowCount())}
    assert {"CDT", "HPT"} <= names
    out = tmp_path / "tables"
    out.mkdir()
    results.ask_folder = lambda title, start: str(out)
    qtbot.mouseClick(results.csv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(out.glob("*.csv")) and not results.busy, timeout=30_000)
    png = tmp_path / "profile.png"
    results.ask_save_file = lambda title, suggested: str(png)
    qtbot.mouseClick(results.png_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(png.exists, timeout=30_000)


def test_escape_aborts_the_thermode_at_once_and_the_run_ends_aborted(
        qtbot, console: ConsoleWindow) -> None:  # noqa: ANN001
    set_up_participant(qtbot, console)
    start(qtbot, console, "dfns-thermal")
    wait_for_onset(qtbot, console)
    live = console.controller.live
    device = live.session.station.drivers["thermode-sim"].device
    aborts_before = sum(1 for c in device.log if c.name == "abort")
    qtbot.keyClick(console, Qt.Key.Key_Escape)
    # the abort reaches the device without the GUI's event loop running again
    deadline = time.monotonic() + 5.0
    while sum(1 for c in device.log if c.name == "abort") == aborts_before:
        assert time.monotonic() < deadline, "no abort reached the thermode"
        time.sleep(0.001)
    qtbot.waitUntil(lambda: console.last_outcome is not None, timeout=30_000)
    part = session.open(console.last_outcome.path).parts[0]
    assert (part.status, part.reason) == ("aborted", "emergency stop by the operator")
    notes = [e.payload["message"] for e in session.open(part_path(console)).events_of("note")]
    assert "stop: emergency stop by the operator" in notes


def part_path(window: ConsoleWindow) -> Path:
    assert window.last_outcome is not None
    return window.last_outcome.path


def test_closing_the_window_mid_run_leaves_a_valid_file_marked_aborted(
        qtbot, console: ConsoleWindow) -> None:  # noqa: ANN001
    set_up_participant(qtbot, console)
    start(qtbot, console, "dfns-thermal")
    wait_for_onset(qtbot, console)
    path = console.controller.live.path
    console.close()
    assert not console.controller.running
    part = session.open(path).parts[0]
    assert (part.status, part.reason) == ("aborted", "the console was closed during the run")
    assert len(session.open(path).events_of("stimulus_onset")) >= 1


def test_a_setup_problem_is_shown_and_nothing_starts(qtbot, console: ConsoleWindow,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(console, "_warn", lambda title, message: shown.append(message))
    console.session_panel.code.clear()
    start_button = console.run_panel.start_button
    qtbot.mouseClick(start_button, Qt.MouseButton.LeftButton)
    assert not console.controller.running and shown and "participant" in shown[0]
    assert console.tabs.currentWidget() is console.session_panel


def test_on_the_labs_devices_the_person_rates_on_the_participant_screen(
        qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    from protocols.files import parse_protocol
    from sim.tcs import SimulatedTcs
    from tests.test_real_station import CALIBRATION, lab_config

    clock = SimulatedClock(5.0)
    with SimulatedTcs(clock, seed=1) as tcs:
        config = lab_config({"tcs": tcs.port})
        window = ConsoleWindow(config, clock, folder=tmp_path / "sessions", scan_lsl=False)
        qtbot.addWidget(window)
        window.show()
        assert window.real_devices
        set_up_participant(qtbot, window)
        window.run_panel.show_protocol(parse_protocol(CALIBRATION, "cal.toml"))
        qtbot.mouseClick(window.run_panel.start_button, Qt.MouseButton.LeftButton)
        screen = window.rating_screen
        for presses in (1, 2, 4):  # the person moves the marker and confirms, three times
            qtbot.waitUntil(lambda: screen.state == "rating", timeout=60_000)
            for _ in range(presses):
                qtbot.keyClick(screen, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
            qtbot.keyClick(screen, Qt.Key.Key_Return)
            qtbot.waitUntil(lambda: screen.state != "rating", timeout=10_000)
        qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=60_000)
        assert window.last_outcome.status == "success", window.last_outcome
        s = session.open(window.last_outcome.path)
        assert s.parts[0].simulation is None  # a person, not a model
        assert screen_start(window) == 50.0  # the marker starts in the middle
        assert [t["value"] for t in s.trials()] == [60.0, 70.0, 90.0]  # Shift+Right: 10
        assert {d["kind"] for d in s.parts[0].devices} >= {"tcs2"}
        window.close()


def screen_start(window: ConsoleWindow) -> float:
    """Where the participant screen's marker starts (its default: the middle)."""
    rating = window.rating_screen.last_rating
    assert rating is not None
    return float(rating.start)


def test_pause_and_resume_from_the_run_view(qtbot, console: ConsoleWindow) -> None:  # noqa: ANN001
    set_up_participant(qtbot, console)
    start(qtbot, console, "dfns-thermal")
    wait_for_onset(qtbot, console)
    panel = console.run_panel
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    assert console.controller.live.session.paused and panel.pause_button.text() == "Resume"
    qtbot.mouseClick(panel.pause_button, Qt.MouseButton.LeftButton)
    assert not console.controller.live.session.paused and panel.pause_button.text() == "Pause"
    qtbot.keyClick(console, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: console.last_outcome is not None, timeout=30_000)
    pauses = [e.payload["state"] for e in session.open(console.last_outcome.path)
              .events_of("phase") if e.payload["name"] == "pause"]
    assert pauses == ["start", "end"]
