"""The LSL panel: streams found on this machine, record choices, gone streams, run figures."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from qst_station.clock import LslClock
from qst_station.event_feed import EventFeed
from qst_station.gui.lsl_panel import LslPanel, LslStream, sample_for_screenshot
from qst_station.live_buffer import LiveBuffers
from qst_station.lsl_inlets import LslInletRecorder
from qst_station.recording import Recording, SessionInfo
from sim.ecg import EcgSimulator

WAIT_MS = 20000  # generous: LSL discovery on a busy machine


@pytest.fixture
def name() -> str:
    return f"qst-test-panel-ECG-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def panel(qtbot: QtBot) -> Iterator[tuple[LslPanel, list[tuple[str, bool]]]]:
    choices: list[tuple[str, bool]] = []
    widget = LslPanel(lambda n, record: choices.append((n, record)), interval_s=0.3,
                      wait_s=0.3)
    qtbot.addWidget(widget)
    widget.resize(1100, 300)
    widget.show()
    yield widget, choices
    widget.close()
    assert widget.finder is not None and not widget.finder._thread.is_alive()


def test_finds_a_stream_records_the_choice_and_shows_it_gone(
    qtbot: QtBot, panel: tuple[LslPanel, list[tuple[str, bool]]], name: str
) -> None:
    widget, choices = panel
    ecg = EcgSimulator(rate_hz=250.0, rr_stream=False, name=name)
    try:
        qtbot.waitUntil(lambda: widget.row(name) is not None, timeout=WAIT_MS)
        row = widget.row(name)
        assert row is not None and row.present and not row.record
        assert row.stream == LslStream(name, "ECG", 1, 250.0, f"qst-station-sim-{name}",
                                       socket.gethostname())
        assert (row.state, row.measured, row.offset) == ("available", "", "")
        widget.checkbox(name).click()
        assert choices == [(name, True)] and widget.row(name).record
        widget.checkbox(name).click()
        assert choices == [(name, True), (name, False)] and name not in widget.chosen
        widget.set_chosen({name})  # the console's choice: ticked without a callback
        assert widget.row(name).record and len(choices) == 2
    finally:
        ecg.close()
    qtbot.waitUntil(lambda: not widget.row(name).present, timeout=WAIT_MS)
    row = widget.row(name)
    assert row.state == "gone" and row.record  # still listed, still chosen
    assert "gone" in widget.status_label.text()


def test_recorded_stream_shows_rate_offset_and_gap(
    qtbot: QtBot, panel: tuple[LslPanel, list[tuple[str, bool]]], name: str
) -> None:
    widget, _ = panel
    clock = LslClock()
    recording, live, feed = Recording(clock), LiveBuffers(), EventFeed()
    ecg = EcgSimulator(rate_hz=250.0, rr_stream=False, name=name, clock=clock).start()
    recorder = LslInletRecorder(recording, name, name="ecg", resolve_timeout_s=5.0,
                                poll_s=0.05, lost_after_s=1.0)
    try:
        recorder.connect()
        recording.subscribe(live)
        recording.subscribe(feed)
        recording.start(SessionInfo("P001", "baseline"))
        widget.set_recording(recording, live, feed)
        row = widget.row(name)  # known from the recording before any look
        assert row is not None and row.recorded_as == "ecg"

        def rate_shown() -> bool:
            r = widget.row(name)
            return r.measured.endswith(" Hz") and 225 <= float(r.measured.split()[0]) <= 275

        qtbot.waitUntil(rate_shown, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: widget.row(name).offset.endswith(" ms"), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: widget.row(name).present, timeout=WAIT_MS)
        row = widget.row(name)
        assert row.state == "recording" and abs(float(row.offset.split()[0])) < 5.0
        assert row.stream.source_id == f"qst-station-sim-{name}"
        assert "1 recorded in this run" in widget.status_label.text()
        assert widget.grab().save("/tmp/lsl_panel.png")
        ecg.close()
        qtbot.waitUntil(lambda: widget.row(name).state.startswith("gap: "), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: widget.row(name).measured == "0 Hz")
        assert len([r for r in widget.rows() if r.stream.name == name]) == 1
    finally:
        ecg.close()
        if recording.state == "recording":
            recording.stop("success")
        recorder.disconnect()


def test_screenshot_sample(qtbot: QtBot) -> None:
    widget = sample_for_screenshot()
    qtbot.addWidget(widget)
    states = {r.stream.name: r.state for r in widget.rows()}
    assert states["BrainAmp-ECG"] == "recording" and states["EyeLink-gaze"] == "gone"
    assert states["Polar-H10-RR"].startswith("gap: ")
    assert widget.row("BrainAmp-ECG").measured == "499 Hz"
    assert not widget.checkbox("qst-station-markers").isEnabled()
    widget.close()
