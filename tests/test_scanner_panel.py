"""The scanner view: counts, measured TR, missed/extra triggers and the stimulus countdown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from drivers.interfaces import TriggerStats
from qst_station.deliver_scanner import ScannerStatus
from qst_station.event_feed import EventFeed
from qst_station.gui.scanner_panel import ScannerPanel, countdown_text, sample_for_screenshot
from qst_station.recording import Recording, SessionInfo
from tests.helpers import ManualClock

T0 = 500.0
TR = 2.0
MISSED = "/dev/pts/3: missed 1 trigger(s): volume 6 inferred (interval 4.000 s, TR 2.000 s)"
EXTRA = "/dev/pts/3: extra trigger 0.310 s after volume 8 < 0.75 x TR 2.000 s; not counted"



@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def run(clock: ManualClock) -> Iterator[tuple[Recording, EventFeed]]:
    recording, feed = Recording(clock), EventFeed()
    recording.subscribe(feed)
    recording.start(SessionInfo("P001", "scan"))
    yield recording, feed
    if recording.state == "recording":
        recording.stop("success")


def trigger(recording: Recording, volume: int, inferred: bool = False,
            source: str = "scanner") -> None:
    recording.event("trigger", {"volume": volume, "inferred": inferred, "dummy": volume <= 3,
                                "source": source}, T0 + TR * volume)


def warn(recording: Recording, message: str, device: str = "scanner") -> None:
    recording.event("device", {"device": device, "state": "warning", "message": message})


def test_counts_tr_missed_and_extra_from_events(
    qtbot: QtBot, run: tuple[Recording, EventFeed], clock: ManualClock
) -> None:
    recording, feed = run
    panel = ScannerPanel(feed, clock=clock)
    qtbot.addWidget(panel)
    panel.show()
    assert panel.volume_tile.value.text() == "—"
    assert panel.trigger_label.text() == "no trigger yet"
    for volume in range(1, 9):  # 3 dummies; volume 6 missed (inferred)
        trigger(recording, volume, inferred=volume == 6)
    trigger(recording, 2, source="other-scanner")  # another source: ignored
    warn(recording, MISSED)
    warn(recording, EXTRA)
    warn(recording, "ecg: extra trigger nonsense", device="ecg")  # not the scanner's
    clock.t = T0 + TR * 8 + 0.8
    qtbot.waitUntil(lambda: panel.view is not None and panel.view.volumes == 8
                    and len(panel.view.warnings) == 2)
    view = panel.view
    assert (view.volumes, view.counted, view.dummies) == (8, 5, 3)
    assert (view.missed, view.extra) == (1, 1)
    assert view.tr_s == pytest.approx(TR)
    assert view.warnings == (MISSED, EXTRA)
    assert panel.volume_tile.value.text() == "8"
    assert panel.volume_tile.note.text() == "5 counted · 3 dummies"
    assert panel.tr_tile.value.text() == "2.000 s"
    assert panel.tr_tile.note.text() == "median of 6 interval(s)"
    assert panel.missed_tile.value.text() == "1" and panel.missed_tile.highlighted
    assert panel.extra_tile.value.text() == "1" and panel.extra_tile.highlighted
    assert panel.trigger_label.text() == "last trigger 0.8 s ago"
    assert MISSED in panel.warnings_label.text() and "ecg" not in panel.warnings_label.text()
    assert panel.countdown_label.text() == "Next stimulus: none armed"

    clock.t = T0 + TR * 8 + 6.0  # three TRs without a trigger
    qtbot.waitUntil(lambda: panel.view.silent)
    assert panel.trigger_label.text() == "no trigger for 6.0 s"

    trigger(recording, 1)  # the trigger source was reset: a new run
    qtbot.waitUntil(lambda: panel.view.volumes == 1)
    assert (panel.view.missed, panel.view.extra, panel.view.tr_s) == (0, 0, None)
    assert not panel.missed_tile.highlighted


def test_clean_run_is_not_highlighted(
    qtbot: QtBot, run: tuple[Recording, EventFeed], clock: ManualClock
) -> None:
    recording, feed = run
    panel = ScannerPanel(feed, clock=clock)
    qtbot.addWidget(panel)
    for volume in range(1, 6):
        trigger(recording, volume)
    clock.t = T0 + TR * 5
    qtbot.waitUntil(lambda: panel.view.volumes == 5)
    assert (panel.view.missed, panel.view.extra) == (0, 0)
    assert not panel.missed_tile.highlighted and not panel.extra_tile.highlighted
    recording.stop("success")
    qtbot.waitUntil(lambda: "run stopped (success)" in panel.trigger_label.text())


def test_status_callable_drives_the_countdown(
    qtbot: QtBot, run: tuple[Recording, EventFeed], clock: ManualClock
) -> None:
    recording, feed = run
    status = ScannerStatus(None, None, TR, 4, 19, None)
    panel = ScannerPanel(feed, lambda: status, clock=clock)
    qtbot.addWidget(panel)
    assert panel.countdown_label.text() == ("Next stimulus: trial 4 on volume 19 "
                                            "(waiting for triggers)")
    assert panel.tr_tile.value.text() == "—" and panel.tr_tile.note.text() == "set 2 s"
    trigger(recording, 1)
    status = ScannerStatus(1, T0 + TR, TR, 4, 19, clock.now() + 3.4)
    qtbot.waitUntil(lambda: panel.countdown_label.text()
                    == "Next stimulus: trial 4 in 3.4 s (volume 19)")
    clock.t += 3.0
    qtbot.waitUntil(lambda: panel.view.countdown == "next stimulus: trial 4 in 0.4 s (volume 19)")
    clock.t += 0.5
    qtbot.waitUntil(lambda: panel.view.countdown == "next stimulus: trial 4 due now (volume 19)")

    def broken() -> ScannerStatus:
        raise RuntimeError("delivery closed")

    panel.status = broken  # a failing status never breaks the view
    qtbot.waitUntil(lambda: panel.view.countdown == "next stimulus: none armed")


def test_trigger_source_counts_win(
    qtbot: QtBot, run: tuple[Recording, EventFeed], clock: ManualClock
) -> None:
    recording, feed = run

    class Summarized:
        def summary(self) -> dict[str, object]:
            return {"volumes": 40, "dummies": 4, "missed": 2, "extra": 3,
                    "tr_s": 1.5, "estimated_tr_s": 1.49}

    class WithStats:
        stats = TriggerStats(12, 11, 1, 0, 5, 2.5)

    panel = ScannerPanel(feed, triggers=Summarized(), clock=clock)
    qtbot.addWidget(panel)
    view = panel.view
    assert (view.volumes, view.counted, view.missed, view.extra) == (40, 36, 2, 3)
    assert view.tr_s == pytest.approx(1.49)
    panel.triggers = WithStats()
    panel.refresh()
    assert (panel.view.volumes, panel.view.missed, panel.view.tr_s) == (12, 1, 2.5)


def test_countdown_text() -> None:
    assert countdown_text(None, 0.0) == "next stimulus: none armed"
    status = ScannerStatus(18, 10.0, 2.0, 7, 19, 12.3)
    assert countdown_text(status, 10.0) == "next stimulus: trial 7 in 2.3 s (volume 19)"


def test_screenshot(qtbot: QtBot) -> None:
    panel = sample_for_screenshot()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.view.volumes == 22 and panel.view.missed == 1
    assert panel.countdown_label.text() == "Next stimulus: trial 5 in 3.4 s (volume 24)"
    assert panel.grab().save("/tmp/scanner_panel.png")
