"""The devices panel: configured or simulated devices, status from a run, ports, tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytestqt.qtbot import QtBot
from serial.tools import list_ports

from drivers.interfaces import ThermalCapabilities
from protocols.files import parse_protocol
from qst_station.clock import Clock, SimulatedClock
from qst_station.config import StationConfig, default_config, load_config
from qst_station.event_feed import EventFeed
from qst_station.gui.devices_panel import STATUS_COL, DevicesPanel, sample_for_screenshot
from qst_station.protocol_session import ProtocolSession
from qst_station.recorders import record_status
from qst_station.recording import Recording, SessionInfo
from sim.tcs import SimulatedTcs
from tests.test_simulated_run import SHORT, exact_participant

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
WAIT_MS = 10000


def config_file(tmp_path: Path, text: str) -> StationConfig:
    path = tmp_path / "station.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture
def make_panel(qtbot: QtBot, clock: Clock) -> Iterator[Callable[[StationConfig], DevicesPanel]]:
    panels: list[DevicesPanel] = []

    def make(config: StationConfig) -> DevicesPanel:
        panel = DevicesPanel(config, clock)
        qtbot.addWidget(panel)
        panel.resize(1200, 500)
        panel.show()
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
        panel._executor.shutdown(wait=True)


def cell(panel: DevicesPanel, name: str, column: int) -> str:
    row = next(i for i, r in enumerate(panel.rows) if r.name == name)
    item = panel.table.item(row, column)
    return item.text() if item is not None else ""


def test_without_configuration_runs_use_simulated_devices(
        make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    panel = make_panel(default_config())
    assert "protocol runs use simulated devices" in panel.mode_label.text()
    assert "Configuration: none" in panel.config_label.text()
    names = [r.name for r in panel.rows]
    assert names == ["thermode", "cuff", "algometer", "buttons", "scanner", "ecg"]
    assert {r.status for r in panel.rows} == {"simulated"}
    assert panel.table.rowCount() == 6
    assert cell(panel, "thermode", 3).startswith("0–50 °C · ≤300 °C/s · hold ≤12 s at 50 °C")
    assert cell(panel, "cuff", 3).startswith("≤100 kPa")
    assert not panel.test_button.isEnabled()  # nothing configured to test


def test_configured_devices_show_ports_limits_and_the_file(
        tmp_path: Path, make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    config = config_file(tmp_path, """
[devices.thermode]
driver = "tcs2"
port = "/dev/ttyACM0"
[devices.thermode.limits]
max_celsius = 48.0
max_rate = 100.0
[devices.cuff]
driver = "ocp1-cuff"
port = "sim"
max_kpa = 80.0
[devices.medoc]
driver = "medoc"
host = "192.0.2.10"
allowed_programs = [1, 2]
""")
    panel = make_panel(config)
    assert str(tmp_path / "station.toml") in panel.config_label.text()
    assert "Configured devices" in panel.mode_label.text()
    assert cell(panel, "thermode", 2) == "/dev/ttyACM0"
    assert cell(panel, "thermode", 3).startswith("0–48 °C · ≤100 °C/s · hold ≤")
    assert "dose envelope" in panel.table.item(0, 3).toolTip()
    assert (cell(panel, "cuff", 3), cell(panel, "cuff", STATUS_COL)) == (
        "≤80 kPa · stop by vas", "simulated")
    assert cell(panel, "medoc", 2) == "192.0.2.10:20121"
    assert cell(panel, "medoc", 3) == "0–50 °C · programs 1, 2"
    assert panel.status("thermode") == panel.status("medoc") == "not connected"
    assert panel.test_button.isEnabled()  # the one thermode


def test_test_connection_shows_the_identity_without_blocking(
        tmp_path: Path, qtbot: QtBot, clock: Clock,
        make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    with SimulatedTcs(clock, seed=1) as sim:
        panel = make_panel(config_file(tmp_path, f'[devices.thermode]\nport = "{sim.port}"\n'))
        before = time.monotonic()
        job = panel.test_connection()
        assert job is not None and time.monotonic() - before < 0.2
        assert panel.status("thermode") == "connecting…"
        assert not panel.test_button.isEnabled() and not panel.tcs_button.isEnabled()
        qtbot.waitUntil(lambda: panel.status("thermode") != "connecting…", timeout=WAIT_MS)
        assert panel.status("thermode") == "not connected"  # the console keeps none open
        details = cell(panel, "thermode", 5)
        assert "test OK" in details and "TCS, firmware " in details
        assert "disconnected again" in details and "thermode:" in panel.message.text()
        assert sim.device.log[-1].name == "abort"  # disconnect aborts first
        assert panel.test_button.isEnabled() and panel.tcs_button.isEnabled()


def test_a_bad_port_shows_a_one_line_error(
        tmp_path: Path, qtbot: QtBot, make_panel: Callable[[StationConfig], DevicesPanel]
) -> None:
    panel = make_panel(config_file(tmp_path, '[devices.thermode]\nport = "/dev/qst-nope"\n'))
    panel.test_button.click()
    qtbot.waitUntil(lambda: panel.status("thermode").startswith("error: "), timeout=WAIT_MS)
    status = panel.status("thermode")
    assert "\n" not in status and "/dev/qst-nope" in status
    assert cell(panel, "thermode", STATUS_COL) == status
    assert panel.message.text() == "thermode: " + status.removeprefix("error: ")


class FakeDevice:
    """Anything with ``on_status`` (as drivers have)."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[str, str], None]] = []

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: None

    def report(self, kind: str, message: str) -> None:
        for callback in self.callbacks:
            callback(kind, message)


def test_device_events_update_the_status_column(
        qtbot: QtBot, make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    recording, feed = Recording(SimulatedClock()), EventFeed()
    recording.subscribe(feed)
    thermode, scanner = FakeDevice(), FakeDevice()
    record_status(recording, thermode, "thermode")
    record_status(recording, scanner, "scanner")
    session = SimpleNamespace(station=None)
    panel = make_panel(default_config())
    panel.attach(SimpleNamespace(session=session, feed=feed))
    assert panel.rows == [] and "being built" in panel.mode_label.text()
    assert not panel.tcs_button.isEnabled() and not panel.test_button.isEnabled()
    recording.start(SessionInfo("SIM001", "demo"))
    scanner.report("connected", "trigger box on /dev/pts/7")  # before the station is seen
    qtbot.waitUntil(lambda: panel.status("scanner") == "connected", timeout=WAIT_MS)
    caps = ThermalCapabilities("TCS II", 5, 0.0, 50.0, 300.0, 300.0)
    session.station = SimpleNamespace(
        devices=[{"kind": "tcs2", "identity": "TCS", "firmware": "2.1", "port": "/dev/pts/5"},
                 {"kind": "trigger-box", "identity": "simulated scanner", "port": "/dev/pts/7"}],
        capabilities={"thermode": caps})
    qtbot.waitUntil(lambda: panel.row("thermode") is not None, timeout=WAIT_MS)
    assert cell(panel, "thermode", 5) == "TCS 2.1"
    assert cell(panel, "thermode", 3) == "0–50 °C · rise ≤300, return ≤300 °C/s"
    assert (panel.status("thermode"), panel.status("scanner")) == ("simulated", "connected")
    for kind, message, status in (("connected", "TCS II on /dev/pts/5", "connected"),
                                  ("lost", "port gone", "lost"),
                                  ("error", "silent for 3 s", "error: silent for 3 s")):
        thermode.report(kind, message)
        qtbot.waitUntil(lambda s=status: panel.status("thermode") == s, timeout=WAIT_MS)
        assert cell(panel, "thermode", STATUS_COL) == status
        assert cell(panel, "thermode", 5) == message
    scanner.report("warning", "ignored 2 byte(s)")
    qtbot.waitUntil(lambda: cell(panel, "scanner", 5) == "warning: ignored 2 byte(s)",
                    timeout=WAIT_MS)
    assert panel.status("scanner") == "connected"
    recording.stop("aborted", "test")
    qtbot.waitUntil(lambda: "the run ended (aborted)" in panel.mode_label.text(),
                    timeout=WAIT_MS)
    assert panel.status("scanner") == "not connected"  # closed with the run
    assert panel.status("thermode") == "error: silent for 3 s"  # what went wrong stays
    panel.detach()
    assert [r.status for r in panel.rows] == ["simulated"] * 6


def test_attached_to_a_real_run_it_shows_the_run_devices(
        tmp_path: Path, qtbot: QtBot, make_panel: Callable[[StationConfig], DevicesPanel]
) -> None:
    feed = EventFeed()
    run = ProtocolSession(parse_protocol(SHORT, "short.toml"), SimulatedClock(10.0),
                          tmp_path / "r.h5", exact_participant(), seed=5,
                          progress=lambda line: None, subscribers=[feed])
    panel = make_panel(default_config())
    panel.attach(SimpleNamespace(session=run, feed=feed))
    worker = threading.Thread(target=run.run, name="test-run")
    worker.start()
    try:
        qtbot.waitUntil(lambda: panel.status("buttons") == "connected", timeout=WAIT_MS)
        row = panel.row("thermode")
        assert row is not None and row.kind == "tcs2" and row.address.startswith("/dev/")
        assert row.details.startswith("TCS ") and row.status == "connected"  # its driver
        assert row.limits.startswith("0–50 °C · rise ≤") and "hold ≤12 s at 50 °C" in row.limits
        assert panel.row("rating") is not None
    finally:
        run.stop("test over")
        worker.join(30.0)
    assert not worker.is_alive()
    qtbot.waitUntil(lambda: panel.status("thermode") == "not connected", timeout=WAIT_MS)
    assert "the run ended (aborted)" in panel.mode_label.text()


def test_port_discovery_runs_off_the_gui_thread(
        tmp_path: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch,
        make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    release, threads = threading.Event(), []

    def comports() -> list[SimpleNamespace]:
        threads.append(threading.current_thread())
        release.wait(5.0)
        return [SimpleNamespace(device="/dev/ttyUSB3", description="FT232R USB UART",
                                vid=0x0403, pid=0x6001, serial_number="A50285BI",
                                manufacturer="FTDI"),
                SimpleNamespace(device="/dev/ttyS0", description="n/a", vid=None, pid=None,
                                serial_number=None, manufacturer=None)]

    monkeypatch.setattr(list_ports, "comports", comports)
    config = config_file(tmp_path, '[devices.thermode]\nport = "/dev/ttyUSB3"\n'
                                   '[devices.cuff]\ndriver = "ocp1-cuff"\nport = "/dev/ttyACM9"\n')
    panel = make_panel(config)
    assert panel.ports_table.isHidden()
    panel.ports_button.click()  # returns while comports() is still busy
    assert not panel.ports_button.isEnabled() and panel.ports_table.isHidden()
    qtbot.waitUntil(lambda: len(threads) == 1, timeout=WAIT_MS)
    assert threads[0] is not threading.main_thread()
    release.set()
    qtbot.waitUntil(lambda: panel.ports_table.rowCount() == 2, timeout=WAIT_MS)
    assert panel.ports_button.isEnabled() and not panel.ports_table.isHidden()
    row = [panel.ports_table.item(0, c).text() for c in range(6)]
    assert row == ["/dev/ttyS0", "", "", "", "", ""]
    row = [panel.ports_table.item(1, c).text() for c in range(6)]
    assert row == ["/dev/ttyUSB3", "FT232R USB UART", "FTDI", "0403:6001", "A50285BI",
                   "thermode"]
    assert "Configured but not on this computer: cuff (/dev/ttyACM9)" in panel.message.text()


def test_opens_the_manual_and_other_devices_windows(
        qtbot: QtBot, make_panel: Callable[[StationConfig], DevicesPanel]) -> None:
    panel = make_panel(default_config())
    panel.tcs_button.click()
    window = panel.tcs_window
    assert window is not None and window.isVisible()
    qtbot.waitUntil(lambda: window.driver.connected, timeout=WAIT_MS)  # simulated: connects
    assert panel.open_manual_tcs() is window  # one at a time
    panel.other_button.click()
    others = panel.devices_window
    assert others is not None and others.isVisible()
    window.close()
    others.close()
    qtbot.waitUntil(lambda: panel.tcs_window is None, timeout=WAIT_MS)
    assert not window.driver.connected


def test_screenshot(qtbot: QtBot) -> None:
    panel = sample_for_screenshot()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.wait(50)
    assert panel.grab().save("/tmp/devices_panel.png")
    assert panel.status("cuff").startswith("error: ")
    assert panel.ports_table.rowCount() == 3
    panel.close()
