"""Scanner view for fMRI runs: trigger count, measured TR, missed triggers, next stimulus countdown.

Everything comes from snapshots taken on a 20 Hz timer, never by waiting on a device:

* an :class:`~qst_station.event_feed.EventFeed`: ``trigger`` events (``volume``, ``inferred``,
  ``dummy``) count the volumes and give the measured TR (median of recent intervals between
  received triggers, per volume spanned); ``device`` warnings of the scanner are listed and
  those about extra triggers counted;
* optionally a callable returning :class:`~qst_station.deliver_scanner.ScannerStatus`
  (e.g. ``ScannerLockedDelivery.status``): the next trial, its volume and when it is due;
* optionally the trigger source itself (``summary()`` or ``stats``), whose counts then win.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from qst_station.clock import Clock, LslClock
from qst_station.deliver_scanner import ScannerStatus
from qst_station.event_feed import EventFeed
from qst_station.recording import Event

FRAME_MS = 50
TR_WINDOW = 16  # intervals the measured TR is the median of
SHOWN_WARNINGS = 4
SILENT_TRS = 2.5  # no trigger for this many TRs while recording: highlighted
RED, GREEN, DARK, GREY = "#c62828", "#2e7d32", "#222", "#666"


class TriggerTally:
    """Counts a run's ``trigger`` and scanner ``device`` events (pure, no Qt)."""

    def __init__(self, source: str | None = "scanner") -> None:
        self.source = source
        self.reset()

    def reset(self) -> None:
        self.volumes = self.dummies = self.missed = self.extra = 0
        self.last_trigger_time: float | None = None  # newest received (not inferred) trigger
        self._last_received: tuple[int, float] | None = None
        self._per_volume: deque[float] = deque(maxlen=TR_WINDOW)
        self.warnings: deque[str] = deque(maxlen=SHOWN_WARNINGS)

    @property
    def tr_s(self) -> float | None:
        """Median of recent intervals between received triggers, per volume spanned."""
        return statistics.median(self._per_volume) if self._per_volume else None

    @property
    def intervals(self) -> int:
        return len(self._per_volume)

    def add(self, event: Event) -> None:
        p = event.payload
        if event.kind == "trigger" and self.source in (None, p.get("source", self.source)):
            self._trigger(int(p.get("volume", self.volumes + 1)), event.timestamp,
                          bool(p.get("inferred")), bool(p.get("dummy")))
        elif (event.kind == "device" and p.get("state") == "warning"
              and self.source in (None, p.get("device"))):
            message = str(p.get("message", ""))
            self.warnings.append(message)
            self.extra += "extra trigger" in message

    def _trigger(self, volume: int, when: float, inferred: bool, dummy: bool) -> None:
        if volume == 1 and self.volumes:  # the trigger source was reset: a new run
            self.reset()
        self.volumes = max(self.volumes, volume)
        self.dummies += dummy
        if inferred:
            self.missed += 1
            return
        last = self._last_received
        if last is not None and volume > last[0]:
            self._per_volume.append((when - last[1]) / (volume - last[0]))
        self._last_received, self.last_trigger_time = (volume, when), when


@dataclass(frozen=True)
class ScannerView:
    """What the panel shows, from one snapshot."""

    volumes: int
    counted: int
    dummies: int
    tr_s: float | None  # measured
    tr_note: str
    missed: int
    extra: int
    countdown: str
    last_trigger: str
    silent: bool  # no trigger for a while during a run
    warnings: tuple[str, ...]


def countdown_text(status: ScannerStatus | None, now: float) -> str:
    """``next stimulus: trial 4 in 3.4 s (volume 19)`` and its variants."""
    if status is None or status.next_trial is None:
        return "next stimulus: none armed"
    trial, volume = status.next_trial, status.next_volume
    if status.next_due is None:
        return f"next stimulus: trial {trial} on volume {volume} (waiting for triggers)"
    left = status.next_due - now
    if left <= 0:
        return f"next stimulus: trial {trial} due now (volume {volume})"
    return f"next stimulus: trial {trial} in {left:.1f} s (volume {volume})"


class _Tile(QFrame):
    """A titled big number with a line below; red when highlighted."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.setObjectName("tile")
        column = QVBoxLayout(self)
        column.setContentsMargins(10, 6, 10, 6)
        self.title = _label(title, 16, color=GREY)
        self.value = _label("—", 56, bold=True)
        self.note = _label("", 15, color=GREY)
        for label in (self.title, self.value, self.note):
            column.addWidget(label)
        self.highlighted: bool | None = None
        self.set(("—", ""), False)

    def set(self, texts: tuple[str, str], highlighted: bool) -> None:
        for label, text in zip((self.value, self.note), texts, strict=True):
            if label.text() != text:
                label.setText(text)
        if highlighted != self.highlighted:
            self.highlighted = highlighted
            back, border = ("#fde0e0", RED) if highlighted else ("#f7f7f7", "#ccc")
            self.setStyleSheet(f"#tile{{background:{back};border:2px solid {border};"
                               "border-radius:6px;}")
            color = RED if highlighted else DARK
            self.value.setStyleSheet(f"font-size:56px;font-weight:bold;color:{color};")


class ScannerPanel(QWidget):
    """Large readouts of the scanner run; see the module docstring for the inputs."""

    def __init__(self, feed: EventFeed | None = None,
                 status: Callable[[], ScannerStatus] | None = None, triggers: Any = None,
                 clock: Clock | None = None, source: str | None = "scanner") -> None:
        super().__init__()
        self.feed, self.status, self.triggers = feed, status, triggers
        self.clock = clock or LslClock()
        self.tally = TriggerTally(source)
        self._cursor = 0
        self.view: ScannerView | None = None
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        self.volume_tile, self.tr_tile = _Tile("Volume"), _Tile("TR (measured)")
        self.missed_tile, self.extra_tile = _Tile("Missed triggers"), _Tile("Extra triggers")
        for i, tile in enumerate((self.volume_tile, self.tr_tile, self.missed_tile,
                                  self.extra_tile)):
            grid.addWidget(tile, 0, i)
            grid.setColumnStretch(i, 2 if i < 2 else 1)
        self.countdown_label = _label("", 30, bold=True)
        self.trigger_label = _label("", 17, color=GREY)
        self.warnings_label = _label("", 15, color=RED)
        self.warnings_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.warnings_label.setWordWrap(True)
        grid.addWidget(self.countdown_label, 1, 0, 1, 4)
        grid.addWidget(self.trigger_label, 2, 0, 1, 4)
        grid.addWidget(self.warnings_label, 3, 0, 1, 4)
        grid.setRowStretch(3, 1)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)
        self._timer.start(FRAME_MS)
        self.refresh()

    def set_feed(self, feed: EventFeed | None) -> None:
        """A new run's events: the counts start again."""
        self.feed, self._cursor = feed, 0
        self.tally.reset()
        self.refresh()

    def refresh(self) -> None:
        """Take the snapshots and redraw what changed."""
        if self.feed is not None:
            events, self._cursor = self.feed.since(self._cursor)
            for event in events:
                self.tally.add(event)
        self.view = view = self.snapshot()
        self.volume_tile.set((str(view.volumes) if view.volumes else "—",
                              f"{view.counted} counted · {view.dummies} dummies"), False)
        tr = "—" if view.tr_s is None else f"{view.tr_s:.3f} s"
        self.tr_tile.set((tr, view.tr_note), False)
        self.missed_tile.set((str(view.missed), "volumes inferred"), view.missed > 0)
        self.extra_tile.set((str(view.extra), "not counted"), view.extra > 0)
        _set(self.countdown_label, view.countdown[:1].upper() + view.countdown[1:])
        _set(self.trigger_label, view.last_trigger)
        self.trigger_label.setStyleSheet(
            f"font-size:17px;{'font-weight:bold;' if view.silent else ''}"
            f"color:{RED if view.silent else GREY};")
        _set(self.warnings_label, "\n".join(f"⚠ {w}" for w in view.warnings))

    def snapshot(self) -> ScannerView:
        t = self.tally
        volumes, dummies, missed, extra = t.volumes, t.dummies, t.missed, t.extra
        measured, note = t.tr_s, f"median of {t.intervals} interval(s)" if t.intervals else ""
        counts = _source_counts(self.triggers)
        if counts is not None:
            volumes, dummies, missed, extra, estimate = counts
            measured = measured if measured is not None else estimate
        status, now = self._status(), self.clock.now()
        if status is not None:
            note = f"{note} · set {status.tr_s:g} s" if note else f"set {status.tr_s:g} s"
        tr = measured or (status.tr_s if status is not None else None)
        last = t.last_trigger_time
        if last is None and status is not None:
            last = status.last_trigger_time
        recording = self.feed is None or self.feed.state.state == "recording"
        silent = bool(recording and last is not None and tr and now - last > SILENT_TRS * tr)
        if last is None:
            said = "no trigger yet"
        else:
            said = (f"no trigger for {now - last:.1f} s" if silent
                    else f"last trigger {max(0.0, now - last):.1f} s ago")
        if self.feed is not None and self.feed.state.state == "stopped":
            said += f" · run stopped ({self.feed.state.status})"
        return ScannerView(volumes, max(0, volumes - dummies), dummies, measured, note, missed,
                           extra, countdown_text(status, now), said, silent,
                           tuple(t.warnings))

    def _status(self) -> ScannerStatus | None:
        if self.status is None:
            return None
        try:
            return self.status()
        except Exception:  # noqa: BLE001 - a view must not fail with the run
            return None


def _source_counts(triggers: Any) -> tuple[int, int, int, int, float | None] | None:
    """(volumes, dummies, missed, extra, TR estimate) from a trigger source, if given."""
    if triggers is None:
        return None
    summary = getattr(triggers, "summary", None)
    if callable(summary):
        s = summary()
        return (int(s["volumes"]), int(s.get("dummies", 0)), int(s["missed"]),
                int(s["extra"]), s.get("estimated_tr_s") or s.get("tr_s"))
    stats = triggers.stats
    return stats.count, 0, stats.missed, stats.extra, stats.tr_s


def _set(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)


def _label(text: str, size: int, bold: bool = False, color: str = DARK) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet(f"font-size:{size}px;{'font-weight:bold;' if bold else ''}"
                        f"color:{color};")
    return label


class _StillClock:
    """A clock that stays where it is set (samples and tests)."""

    speed = 1.0

    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def sample_for_screenshot() -> ScannerPanel:
    """A populated panel: 3 dummies, 19 volumes with one missed and one extra trigger."""
    from qst_station.recording import Recording, SessionInfo

    clock = _StillClock(100.0)
    recording, feed = Recording(clock), EventFeed()
    recording.subscribe(feed)
    recording.start(SessionInfo("SIM001", "demo"))
    for volume in range(1, 23):
        recording.event("trigger", {"volume": volume, "inferred": volume == 12,
                                    "dummy": volume <= 3, "source": "scanner"},
                        100.0 + 2.0 * volume + 0.001 * (volume % 3))
    for message in ("/dev/ttyACM1: missed 1 trigger(s): volume 12 inferred "
                    "(interval 4.001 s, TR 2.000 s)",
                    "/dev/ttyACM1: extra trigger 0.312 s after volume 17 < 0.75 x TR 2.000 s; "
                    "not counted"):
        recording.event("device", {"device": "scanner", "state": "warning",
                                   "message": message})
    clock.t = 100.0 + 2.0 * 22 + 0.8
    status = ScannerStatus(22, clock.t - 0.8, 2.0, 5, 24, clock.t + 3.4)
    panel = ScannerPanel(feed, lambda: status, clock=clock)
    panel.resize(1000, 340)
    return panel
