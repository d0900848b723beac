"""Save screenshots of the app's windows (``make screenshots``) for the docs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QApplication

from qst_station.clock import LslClock
from qst_station.config import default_config
from qst_station.gui.app import build_window


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


if __name__ == "__main__":
    main(*sys.argv[1:])
