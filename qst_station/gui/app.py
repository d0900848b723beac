"""Start the Qt application: the operator console; the TCS II window for manual control."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from qst_station.clock import Clock
from qst_station.config import StationConfig
from qst_station.gui.tcs_window import TcsWindow
from qst_station.station import open_thermode


def build_window(config: StationConfig, clock: Clock) -> TcsWindow:
    """The TCS II window; a simulated device is connected right away."""
    thermode = open_thermode(config, clock)
    window = TcsWindow(thermode, clock)
    if thermode.simulator is not None:
        window.connect_device()
    return window


def run_app(config: StationConfig, clock: Clock) -> int:
    """The operator console (simulated devices unless the configuration names real ones)."""
    from qst_station.gui.console import ConsoleWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("qst-station")
    window = ConsoleWindow(config, clock)
    window.show()
    return app.exec()
