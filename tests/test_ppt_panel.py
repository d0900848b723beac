"""The PPT examiner view: live readouts, capture by button, Space or a response source."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from drivers.algometer import AlgometerDriver, PressureSample
from drivers.responses import Response
from qst_station.clock import SimulatedClock
from qst_station.gui.ppt_panel import PptPanel
from sim.algometer import SimulatedAlgometer
from tests.helpers import ManualClock

T0 = 1000.0



@dataclass
class Sample:
    timestamp: float
    kpa: float


class ThreadedResponses:
    """A ResponseSource whose responses arrive on a thread of their own."""

    connected = True

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Response], None]] = []

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return lambda: None

    def subscribe(self, callback: Callable[[Response], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def send(self, response: Response) -> None:
        def deliver() -> None:
            for callback in list(self.callbacks):
                callback(response)

        thread = threading.Thread(target=deliver)
        thread.start()
        thread.join()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def panel(qtbot: QtBot, clock: ManualClock) -> Iterator[PptPanel]:
    widget = PptPanel(clock)
    qtbot.addWidget(widget)
    widget.resize(900, 480)
    widget.show()
    yield widget
    widget.set_response_source(None)


def push(panel: PptPanel, clock: ManualClock, rate: float, seconds: float,
         hz: float = 10.0) -> None:
    """Rest 0.3 s at 0 kPa, then a ramp at ``rate``; the clock ends at the last sample."""
    rest = round(0.3 * hz)
    for i in range(round((0.3 + seconds) * hz) + 1):
        panel.feed(Sample(T0 + i / hz, rate * max(0, i - rest) / hz))
    clock.t = T0 + i / hz
    panel.refresh()


def test_live_readouts_on_target(panel: PptPanel, clock: ManualClock) -> None:
    assert panel.pressure_label.text() == "— kPa"
    assert "passes 5 kPa" in panel.status_label.text()
    push(panel, clock, 50.0, 3.0)
    assert panel.pressure_label.text() == "150 kPa"
    assert panel.rate_label.text() == "50 kPa/s"
    assert panel.pace_label.text() == "on target"
    assert panel.status_label.text() == "Trial 1: 3.0 s, waiting for the button"
    x, y = panel.pressure_curve.getData()
    assert x is not None and x[0] == pytest.approx(0.0) and y[-1] == pytest.approx(150.0)
    tx, ty = panel.target_curve.getData()
    assert ty[-1] == pytest.approx(50.0 * tx[-1])


def test_too_fast_and_too_slow(panel: PptPanel, clock: ManualClock) -> None:
    push(panel, clock, 80.0, 2.0)
    assert (panel.rate_label.text(), panel.pace_label.text()) == ("80 kPa/s", "too fast")
    panel.set_target_rate(120.0)
    assert panel.pace_label.text() == "too slow"
    assert panel.rate_spin.value() == 120.0
    assert panel.legend.getLabel(panel.target_curve).text == "target 120 kPa/s ± 20 %"


def test_capture_button_takes_the_latest_sample(
    qtbot: QtBot, panel: PptPanel, clock: ManualClock
) -> None:
    push(panel, clock, 50.0, 4.0)
    clock.t = T0 + 0.3 + 2.55  # the examiner clicks between two samples
    qtbot.mouseClick(panel.capture_button, Qt.MouseButton.LeftButton)
    [capture] = panel.tracker.captures
    assert capture.kpa == pytest.approx(125.0) and capture.source == "examiner"
    assert panel.captures_list.count() == 1
    assert panel.captures_list.item(0).text() == "#1  125 kPa  @ 50 kPa/s"
    assert panel.mean_label.text() == "Mean 125 kPa (n = 1)"
    assert panel.status_label.text() == "Trial 1: PPT 125 kPa at 2.5 s (examiner)"
    assert panel.capture_text.textItem.toPlainText().strip() == "PPT 125 kPa"
    assert panel.pace_label.text() == "—"
    qtbot.mouseClick(panel.capture_button, Qt.MouseButton.LeftButton)  # same application
    assert panel.captures_list.count() == 1
    assert "Nothing to capture" in panel.status_label.text()


def test_space_captures_and_flags_a_fast_application(
    qtbot: QtBot, panel: PptPanel, clock: ManualClock
) -> None:
    panel.activateWindow()
    qtbot.waitUntil(panel.isActiveWindow)
    push(panel, clock, 75.0, 3.0)
    qtbot.keyClick(panel.rate_spin, Qt.Key.Key_Tab)  # focus somewhere in the panel
    qtbot.keyClick(panel, Qt.Key.Key_Space)
    [capture] = panel.tracker.captures
    assert capture.kpa == pytest.approx(225.0) and capture.flagged
    assert panel.captures_list.item(0).text() == "#1  225 kPa  @ 75 kPa/s  ⚠ too fast"
    assert panel.mean_label.text() == "Mean 225 kPa (n = 1, 1 flagged)"


def test_new_trial_button(qtbot: QtBot, panel: PptPanel, clock: ManualClock) -> None:
    push(panel, clock, 50.0, 1.0)
    panel.feed(Sample(clock.t + 0.1, 1.0))
    panel.refresh()
    qtbot.mouseClick(panel.new_trial_button, Qt.MouseButton.LeftButton)
    assert panel.tracker.trial is not None and panel.tracker.trial.number == 2
    assert panel.status_label.text() == "Trial 2: waiting for the pressure to pass 5 kPa"


def test_responses_from_another_thread_capture_at_their_timestamp(
    qtbot: QtBot, panel: PptPanel, clock: ManualClock
) -> None:
    responses = ThreadedResponses()
    panel.set_response_source(responses)
    push(panel, clock, 50.0, 4.0)
    threads: list[threading.Thread] = []
    original = panel.tracker.capture
    panel.tracker.capture = lambda *a, **k: (threads.append(threading.current_thread()),
                                             original(*a, **k))[1]
    responses.send(Response(T0 + 0.3 + 1.0, "buttonbox", "release", 1.0))  # ignored
    responses.send(Response(T0 + 0.3 + 3.05, "buttonbox", "press", 1.0))
    qtbot.waitUntil(lambda: panel.captures_list.count() == 1, timeout=2000)
    assert threads == [threading.main_thread()]
    [capture] = panel.tracker.captures
    assert capture.kpa == pytest.approx(150.0) and capture.source == "buttonbox"
    assert "(buttonbox)" in panel.status_label.text()
    panel.set_response_source(None)
    assert responses.callbacks == []


def test_samples_fed_on_a_reader_thread(panel: PptPanel, clock: ManualClock) -> None:
    def reader() -> None:
        for i in range(50):
            panel.feed(Sample(T0 + i / 10, 50.0 * i / 10))

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    panel.refresh()
    trial = panel.tracker.trial
    assert trial is not None and len(trial.times) == 50
    assert panel.pressure_label.text() == "245 kPa"


def test_with_the_simulated_algometer(qtbot: QtBot) -> None:
    clock = SimulatedClock(speed=10.0)
    widget = PptPanel(clock)
    qtbot.addWidget(widget)
    widget.show()
    with SimulatedAlgometer(clock, seed=2) as simulator:
        driver = AlgometerDriver(simulator.port, clock=clock)
        samples: list[PressureSample] = []
        driver.subscribe(samples.append)
        driver.subscribe(widget.feed)
        driver.connect()
        try:
            simulator.press(50.0)
            qtbot.waitUntil(lambda: widget.tracker.trial is not None
                            and widget.tracker.trial.elapsed_s > 3.0, timeout=5000)
            qtbot.mouseClick(widget.capture_button, Qt.MouseButton.LeftButton)
        finally:
            driver.disconnect()
    [capture] = widget.tracker.captures
    before = [s for s in samples if s.timestamp <= capture.response_time]
    assert capture.kpa == before[-1].kpa and capture.sample_time == before[-1].timestamp
    trial = widget.tracker.trial
    assert trial is not None and trial.number == 1
    rate = (capture.kpa - trial.p0) / (capture.sample_time - trial.t0)
    assert capture.mean_rate_kpa_s == pytest.approx(rate)
    assert rate == pytest.approx(50.0, rel=0.5)  # arrival stamps jitter x10 under load
    assert capture.flagged is (abs(rate / 50.0 - 1.0) > 0.2)
    assert widget.captures_list.item(0).text().startswith(f"#1  {capture.kpa:.0f} kPa")
