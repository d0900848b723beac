"""Save screenshots of the app's windows (``make screenshots``) for the docs."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget

from qst_station.clock import LslClock, SimulatedClock
from qst_station.config import default_config
from qst_station.gui.app import build_window
from qst_station.gui.console import ConsoleWindow
from qst_station.gui.rating_screen import sample_for_screenshot as rating_sample


def _pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main(out_dir: str = "docs/images") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv)
    window = build_window(default_config(), LslClock())
    window.show()
    _pump(app, 1.5)
    rows = window.rows
    for row, target in zip(rows, (44.0, 45.0, 46.0, 47.0, 48.0), strict=True):
        row.target.setValue(target)
        row.rise.setValue(5.0)
        row.duration.setValue(3500)
    window.start_stimulation()
    _pump(app, 4.0)
    path = out / "tcs-window.png"
    window.grab().save(str(path))
    print(f"saved {path}")
    window.show_devices()
    devices = window.devices
    assert devices is not None
    cuff = devices.panels[1]
    devices.tabs.setCurrentWidget(cuff)
    cuff.connect_device()
    _pump(app, 2.0)
    cuff.action_buttons[0].click()  # ramp 1 kPa/s until the simulated participant's VAS max
    _pump(app, 12.0)
    path = out / "devices-window.png"
    devices.grab().save(str(path))
    print(f"saved {path}")
    window.close()
    console_screenshots(app, out)


def _save(widget: QWidget, path: Path) -> None:
    widget.grab().save(str(path))
    print(f"saved {path}")


def _run(app: QApplication, console: ConsoleWindow, protocol: str, until: Callable[[], bool],
         timeout_s: float = 300.0) -> None:
    console.run_panel.chooser.setCurrentText(protocol)
    console.run_panel.start_button.click()
    end = time.monotonic() + timeout_s
    while not until() and time.monotonic() < end:
        _pump(app, 0.1)


def console_screenshots(app: QApplication, out: Path) -> None:
    """The operator console's views, from real simulated runs (about two minutes)."""
    with tempfile.TemporaryDirectory() as folder:
        console = ConsoleWindow(default_config(), SimulatedClock(10.0), folder=folder)
        console.show()
        panel = console.session_panel
        panel.code.setText("LBP023")
        panel.sex.setCurrentIndex(panel.sex.findText("female"))
        panel.age.setValue(41)
        panel.operator.setText("AK")
        _pump(app, 0.5)
        _save(console, out / "console-session.png")
        console.tabs.setCurrentWidget(console.devices_panel)
        _pump(app, 0.3)
        _save(console, out / "console-devices.png")
        done = lambda: console.last_outcome is not None  # noqa: E731
        _run(app, console, "dfns-thermal", done)
        _pump(app, 1.0)
        _save(console, out / "console-results.png")
        console.last_outcome = None
        _run(app, console, "heat-calibration", done)
        console.last_outcome = None
        live = lambda: console.controller.live  # noqa: E731
        _run(app, console, "fmri-heat", lambda: len(live().feed.of_kind("rating")) >= 2)
        console.tabs.setCurrentWidget(console.run_panel)
        _pump(app, 0.5)
        _save(console, out / "console-run.png")
        console.tabs.setCurrentWidget(console.scanner_panel)
        _pump(app, 0.5)
        _save(console, out / "console-scanner.png")
        console.tabs.setCurrentWidget(console.lsl_panel)
        _pump(app, 4.0)
        _save(console, out / "console-lsl.png")
        console.close()
    screen = rating_sample()
    screen.resize(1280, 720)
    _save(screen, out / "rating-screen.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
