"""Live plots of a run: thermode zones against the programmed profile, pressure against its
target, VAS with the ratings, heart rate.

:class:`LivePlots` reads a run's :class:`~qst_station.event_feed.EventFeed`,
:class:`~qst_station.live_buffer.LiveBuffers` and
:class:`~qst_station.live_heart_rate.LiveHeartRate` (a ``LiveRun`` of the run controller) on
a ~30 Hz timer: copies under short locks, never a wait on a device thread. Each frame draws the
newest ``window_s`` seconds, at most :data:`MAX_POINTS` samples per curve; plots of streams the
run does not have are hidden. The programmed thermal profile (dashed) is rebuilt from the
``stimulus_onset`` / ``stimulus_offset`` events, completed by the ``trial`` event's parameters
once it comes: baseline -> target at the rise rate -> hold until the offset -> back at the
return rate; a ramp stopped by the press or its cut-off turns back there. Without a baseline
in the events, the zones' mean at the onset stands for it until the trial event tells.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from qst_station.event_feed import EventFeed
from qst_station.gui.heart_rate_panel import AVERAGE_COLOR, HR_COLOR
from qst_station.gui.tcs_window import COLORS as THERMODE_COLORS
from qst_station.live_buffer import LiveBuffers
from qst_station.live_heart_rate import AVERAGE_BEATS, LiveHeartRate
from qst_station.recording import Event

FRAME_MS = 33
WINDOW_S = 60.0
MAX_POINTS = 600  # per curve and frame (about one per 2 px)
KEPT = 500  # stimuli and ratings remembered
LABELS = 24  # rating values written next to their points
THERMODE, CUFF, ALGOMETER = "thermode", "cuff", "pressure"  # stream names
PROFILE_COLOR = "#111111"
NEUTRAL_COLOR = "#b0b0b0"
OUTLET_COLORS = ("#1f4e9a", "#e07b00")
TARGET_COLOR = "#2e7d32"
VAS_COLOR = "#6a1b9a"
RATING_COLOR = "#c62828"
RATE_KEYS = ("rate_c_s", "rise", "rate_kpa_s", "rise_c_s")
RETURN_KEYS = ("return_rate_c_s", "ret", "return", "return_c_s")
BASELINE_KEYS = ("baseline", "baseline_c")
HOLD_KEYS = ("hold_s", "plateau_s")


class LiveSources(Protocol):
    """What the plots read (``LiveRun`` has these and more)."""

    feed: EventFeed
    buffers: LiveBuffers
    heart: LiveHeartRate


@dataclass
class Programmed:
    """One stimulus as programmed: what the dashed curve draws."""

    device: str
    trial: Any
    onset: float
    target: float
    rate: float | None  # per second; None: unknown (the rise is drawn as a step)
    baseline: float | None = None
    baseline_known: bool = False  # from the events, not estimated from the samples
    return_rate: float | None = None
    hold_s: float | None = None
    offset: float | None = None
    returns: bool = True  # thermal: back to the baseline; algometer: the ramp just ends

    def points(self, until: float) -> list[tuple[float, float]]:
        """Corners of the profile; an open stimulus holds its target until ``until``."""
        b = self.baseline if self.baseline is not None else self.target
        rate = self.rate if self.rate and self.rate > 0 else None
        rise_s = abs(self.target - b) / rate if rate else 0.0
        peak = self.onset + rise_s
        end = self.offset
        if end is None and self.hold_s is not None and self.returns:
            end = peak + self.hold_s
        corners = [(self.onset, b)]
        if end is not None and end < peak and rate:  # stopped on the way up (or down)
            level = b + math.copysign(rate * (end - self.onset), self.target - b)
            corners.append((end, level))
        else:
            corners.append((peak, self.target))
            if end is None:
                corners.append((max(until, peak), self.target))
                return corners
            corners.append((end, self.target))
            level = self.target
        if self.returns:
            back = self.return_rate or rate
            corners.append((end + (abs(level - b) / back if back else 0.0), b))
        return corners


def profile_curve(stimuli: Sequence[Programmed], now: float) -> tuple[np.ndarray, np.ndarray]:
    """One polyline (absolute times) through ``stimuli`` in onset order; NaN breaks where the
    baseline changes or a profile has no baseline yet."""
    xs: list[float] = []
    ys: list[float] = []
    last_b: float | None = None
    ordered = sorted(stimuli, key=lambda s: s.onset)
    for i, s in enumerate(ordered):
        if s.baseline is None:
            continue
        until = ordered[i + 1].onset if i + 1 < len(ordered) else now
        corners = s.points(until)
        if xs and (last_b is None or not s.returns or not math.isclose(last_b, s.baseline,
                                                                         abs_tol=0.05)):
            xs.append(math.nan)
            ys.append(math.nan)
        xs += [c[0] for c in corners]
        ys += [c[1] for c in corners]
        last_b = s.baseline if s.returns else None
    if xs and last_b is not None and xs[-1] < now:  # back at the baseline since
        xs.append(now)
        ys.append(last_b)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def decimate(times: np.ndarray, max_points: int, span_s: float) -> np.ndarray | slice:
    """Indices keeping the first sample of each of ``max_points`` time buckets (stable from
    frame to frame) and the newest; all if there are few."""
    if len(times) <= max_points:
        return slice(None)
    bucket = np.floor(times / (span_s / max_points))
    keep = np.flatnonzero(np.diff(bucket, prepend=bucket[0] - 1.0) != 0)
    return keep if keep[-1] == len(times) - 1 else np.append(keep, len(times) - 1)


class LivePlots(QWidget):
    """Four stacked plots over the newest ``window_s`` s of the attached run (see the module
    docstring); :meth:`attach` a run, :meth:`detach` when it is gone."""

    def __init__(self, window_s: float = WINDOW_S, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_s = window_s
        self.live: LiveSources | None = None
        self.now = 0.0  # the time the last frame refers to (x = 0)
        self._clock: Callable[[], float] | None = None
        self._frozen: float | None = None  # the run has stopped: time stands still
        self._reset()
        self._widgets: list[pg.PlotWidget] = []
        self._names: dict[int, str] = {}  # legend text per item
        self._drawn: set[int] = set()  # items with data this frame
        self._legends: dict[int, tuple[str, ...]] = {}
        self._titles: dict[int, str] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(0)
        self.placeholder = QLabel("No run")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color:#777;font-size:16px;")
        layout.addWidget(self.placeholder)
        self.thermode_plot = self._plot(layout, "Temperature (°C)")
        self.zone_curves = [self._curve(self.thermode_plot, "neutral",
                                        pg.mkPen(NEUTRAL_COLOR, width=1))]
        self.zone_curves += [self._curve(self.thermode_plot, f"zone {i}", pg.mkPen(color, width=2))
                             for i, color in enumerate(THERMODE_COLORS[1:], 1)]
        self.profile_curve = self._curve(self.thermode_plot, "programmed",
                                         _dashed(PROFILE_COLOR, 2))
        self.pressure_plot = self._plot(layout, "Pressure (kPa)")
        self.outlet_curves = [(self._curve(self.pressure_plot, f"outlet {n}",
                                           pg.mkPen(color, width=2)),
                               self._curve(self.pressure_plot, f"target {n}", _dashed(color, 2)))
                              for n, color in enumerate(OUTLET_COLORS, 1)]
        self.algometer_curve = self._curve(self.pressure_plot, "algometer",
                                           pg.mkPen(OUTLET_COLORS[0], width=2))
        self.ramp_curve = self._curve(self.pressure_plot, "target ramp",
                                      _dashed(TARGET_COLOR, 2))
        self.vas_plot = self._plot(layout, "VAS (0-100)")
        self.vas_plot.setYRange(-5.0, 105.0, padding=0.0)
        self.vas_plot.disableAutoRange(axis="y")
        self.vas_curve = self._curve(self.vas_plot, "cuff VAS", pg.mkPen(VAS_COLOR, width=2))
        self.rating_points = pg.ScatterPlotItem(size=11, brush=RATING_COLOR, pen="w")
        self.vas_plot.addItem(self.rating_points)
        self._names[id(self.rating_points)] = "ratings"
        self.rating_labels = [pg.TextItem(color=RATING_COLOR, anchor=(0.5, 1.2))
                              for _ in range(LABELS)]
        for label in self.rating_labels:
            self.vas_plot.addItem(label)
        self.heart_plot = self._plot(layout, "HR (bpm)")
        self.hr_curve = self._curve(self.heart_plot, "beat to beat", pg.mkPen(HR_COLOR, width=1))
        self.hr_average_curve = self._curve(self.heart_plot, f"mean of {AVERAGE_BEATS}",
                                            pg.mkPen(AVERAGE_COLOR, width=3))
        self.plots = {"thermode": self.thermode_plot, "pressure": self.pressure_plot,
                      "vas": self.vas_plot, "heart": self.heart_plot}
        self.widgets = dict(zip(self.plots, self._widgets, strict=True))
        self._shown = {name: False for name in self.plots}
        for widget in self._widgets:
            widget.hide()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.refresh)

    # ------------------------------------------------------------------ attach

    def attach(self, live: LiveSources, now: Callable[[], float] | None = None) -> None:
        """Follow ``live`` (its clock, or ``now``, says where the time axis ends)."""
        self.detach()
        self.live, self._clock = live, now or _clock_of(live)
        self.placeholder.setText("Waiting for data…")
        self._timer.start(FRAME_MS)
        self.refresh()

    def detach(self) -> None:
        """Stop drawing and forget the run."""
        self._timer.stop()
        self.live, self._clock, self._frozen = None, None, None
        self._reset()
        self._drawn.clear()
        for name, plot in self.plots.items():
            for item in plot.listDataItems():
                item.setData([], [])
            self._legend(plot)
            self._show_plot(name, False)
        for label in self.rating_labels:
            label.hide()
        self.placeholder.setText("No run")

    def visible_plots(self) -> list[str]:
        """Names of the plots shown: thermode, pressure, vas, heart."""
        return [name for name, shown in self._shown.items() if shown]

    # ------------------------------------------------------------------ frame

    def refresh(self, force: bool = False) -> None:
        """Read the newest data and redraw (the timer calls it; only while shown, unless
        ``force``)."""
        live = self.live
        if live is None or not (self.isVisible() or force):
            return
        self.now = self._time(live)
        events, self._cursor = live.feed.since(self._cursor)
        self._take(events)
        buffers = live.buffers.buffers
        cuff = buffers.get(CUFF)
        cuff_rows = self._window(cuff)
        self._drawn.clear()
        self._show_plot("thermode", self._draw_thermode(buffers.get(THERMODE)))
        self._show_plot("pressure", self._draw_pressure(cuff, cuff_rows, buffers.get(ALGOMETER)))
        self._show_plot("vas", self._draw_vas(cuff, cuff_rows))
        self._show_plot("heart", self._draw_heart(live.heart))
        for plot in self.plots.values():
            self._legend(plot)

    def _time(self, live: LiveSources) -> float:
        if self._frozen is not None:
            return self._frozen
        now = self._clock() if self._clock is not None else self.now
        if live.feed.state.state == "stopped":
            self._frozen = now
        return now

    def _window(self, buffer: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The buffer's rows in the window, decimated; None without a buffer or rows."""
        if buffer is None:
            return None
        times, values = buffer.snapshot()
        first = int(np.searchsorted(times, self.now - self.window_s - 1.0))
        times, values = times[first:], values[first:]
        if not len(times):
            return None
        keep = decimate(times, MAX_POINTS, self.window_s)
        return times[keep] - self.now, values[keep]

    def _draw_thermode(self, buffer: Any) -> bool:
        if buffer is None:
            return False
        self._estimate_baselines(buffer, 1, 6)
        rows = self._window(buffer)
        for i, curve in enumerate(self.zone_curves):
            self._set(curve, rows, i)
        thermal = [s for s in self._stimuli if s.returns and self._recent(s)]
        t, y = profile_curve(thermal, self.now)
        self._set(self.profile_curve, (t - self.now, y[:, None]), 0)
        text = "Thermode"
        zones = rows[1][-1, 1:6] if rows is not None else np.array([np.nan])
        if np.isfinite(zones).any():
            text += f"  ·  zones {np.nanmin(zones):.1f}–{np.nanmax(zones):.1f} °C"
        self._title(self.thermode_plot, text)
        return True

    def _draw_pressure(self, cuff: Any, rows: tuple[np.ndarray, np.ndarray] | None,
                       algometer: Any) -> bool:
        if cuff is None and algometer is None:
            return False
        parts: list[str] = []
        used = [n for n in (1, 2) if rows is not None and self._outlet_used(n, rows[1])]
        for n, (pressure, target) in enumerate(self.outlet_curves, 1):
            draw = n in used or (n == 1 and not used and algometer is None)
            self._set(pressure, rows if draw else None, 2 * n - 2)
            self._set(target, rows if draw else None, 2 * n - 1)
            if draw and rows is not None:
                parts.append(f"outlet {n} {rows[1][-1, 2 * n - 2]:.1f} kPa "
                             f"(target {rows[1][-1, 2 * n - 1]:.0f})")
        if algometer is not None:
            self._estimate_baselines(algometer, 0, 1, device="algometer")
        rows = self._window(algometer)
        self._set(self.algometer_curve, rows, 0)
        if rows is not None:
            parts.append(f"algometer {rows[1][-1, 0]:.0f} kPa")
        ramps = [s for s in self._stimuli if not s.returns and self._recent(s)]
        t, y = profile_curve(ramps, self.now)
        self._set(self.ramp_curve, (t - self.now, y[:, None]), 0)
        self._title(self.pressure_plot, "  ·  ".join(["Pressure", *parts]))
        return True

    def _draw_vas(self, cuff: Any, rows: tuple[np.ndarray, np.ndarray] | None) -> bool:
        if rows is not None:
            rows = (rows[0], rows[1][:, 4:5] * 10.0)  # cm -> 0-100
        self._set(self.vas_curve, rows, 0)
        start = self.now - self.window_s - 1.0
        ratings = [(t - self.now, v) for t, v in self._ratings if t >= start]
        self.rating_points.setData([x for x, _ in ratings], [v for _, v in ratings])
        if ratings:
            self._drawn.add(id(self.rating_points))
        shown = ratings[-LABELS:]
        for i, label in enumerate(self.rating_labels):
            if i < len(shown):
                label.setText(f"{shown[i][1]:.0f}")
                label.setPos(*shown[i])
                label.setAnchor((1.0 if shown[i][0] > -0.03 * self.window_s else 0.5, 1.2))
            label.setVisible(i < len(shown))
        parts = ["VAS"]
        if rows is not None:
            parts.append(f"cuff {rows[1][-1, 0]:.0f}")
        if self._ratings:
            parts.append(f"last rating {self._ratings[-1][1]:.0f}")
        self._title(self.vas_plot, "  ·  ".join(parts))
        return cuff is not None or bool(self._ratings)

    def _draw_heart(self, heart: LiveHeartRate) -> bool:
        snap = heart.snapshot(self.now)
        if not snap.source:
            if snap.problem:  # an ECG or RR stream it cannot follow: say why
                self._title(self.heart_plot, f"Heart rate  ·  {snap.problem}")
            return bool(snap.problem)
        first = int(np.searchsorted(snap.beat_times, self.now - self.window_s - 1.0))
        x = snap.beat_times[first:] - self.now
        self._set(self.hr_curve, (x, snap.hr_bpm[first:, None]), 0)
        self._set(self.hr_average_curve, (x, snap.hr_avg_bpm[first:, None]), 0)
        state = (f"{snap.latest_bpm:.0f} bpm" if snap.latest_bpm is not None
                 else "signal lost" if snap.state == "lost" else "waiting for beats")
        self._title(self.heart_plot, f"Heart rate  ·  {state}")
        return True

    # ------------------------------------------------------------------ events

    def _take(self, events: list[Event]) -> None:
        for event in events:
            p = event.payload
            if event.kind == "stimulus_onset":
                self._onset(event)
            elif event.kind == "stimulus_offset":
                for s in reversed(self._stimuli):
                    if s.device == p.get("device") and s.trial == p.get("trial"):
                        if s.offset is None:
                            s.offset = event.timestamp
                        break
            elif event.kind == "trial" and p.get("trial") is not None:
                for s in self._stimuli:
                    if s.trial == p.get("trial") and s.onset <= event.timestamp:
                        _complete(s, p)
            elif event.kind == "rating" or (event.kind == "response"
                                            and p.get("action") in ("vas", "rating")
                                            and p.get("source") != "cuff"):  # cuff: in cm
                value = _number(p, ("value",))
                if value is not None:
                    self._ratings.append((event.timestamp, value))

    def _onset(self, event: Event) -> None:
        p = event.payload
        target = _number(p, ("target",))
        device = str(p.get("device", ""))
        thermal = p.get("unit") == "degC" and p.get("reason") != "confirmed"
        if target is None or not (thermal or device == "algometer"):
            return  # the cuff has its target channels; the operator's steps no profile
        s = Programmed(device, p.get("trial"), event.timestamp, target, _number(p, RATE_KEYS),
                       returns=thermal)
        _complete(s, p)
        self._stimuli.append(s)

    def _estimate_baselines(self, buffer: Any, first: int, last: int, device: str = "") -> None:
        """Baselines still unknown: the mean of columns ``first:last`` at the onset."""
        open_ = [s for s in self._stimuli if s.baseline is None
                 and (s.device == device if device else s.returns)]
        if not open_:
            return
        times, values = buffer.snapshot()
        for s in open_:
            if len(times):  # the sample at the onset (the oldest kept if it is gone)
                i = max(0, int(np.searchsorted(times, s.onset, side="right")) - 1)
                s.baseline = float(np.nanmean(values[i, first:last]))

    def _recent(self, s: Programmed) -> bool:
        """Whether ``s`` may reach into the window (its return done well before it: no)."""
        end = s.offset if s.offset is not None else self.now
        return end >= self.now - self.window_s - 120.0

    def _outlet_used(self, outlet: int, values: np.ndarray) -> bool:
        if not self._outlets[outlet - 1]:
            used = values[:, 2 * outlet - 2:2 * outlet]
            self._outlets[outlet - 1] = bool(np.nanmax(np.abs(used), initial=0.0) > 0.5)
        return self._outlets[outlet - 1]

    # ------------------------------------------------------------------ helpers

    def _reset(self) -> None:
        self._cursor = 0
        self._stimuli: deque[Programmed] = deque(maxlen=KEPT)
        self._ratings: deque[tuple[float, float]] = deque(maxlen=KEPT)
        self._outlets = [False, False]

    def _curve(self, plot: pg.PlotItem, name: str, pen: Any) -> pg.PlotDataItem:
        curve = plot.plot([], [], pen=pen)
        if pen.style() == Qt.PenStyle.DashLine:
            curve.setZValue(-1)  # targets under the measured traces
        self._names[id(curve)] = name
        return curve

    def _set(self, curve: pg.PlotDataItem, rows: tuple[np.ndarray, np.ndarray] | None,
             column: int) -> None:
        """Draw column ``column`` of ``rows`` (x, values); nothing if None or all NaN."""
        if rows is None or not np.isfinite(rows[1][:, column]).any():
            curve.setData([], [])
            return
        curve.setData(rows[0], rows[1][:, column], connect="finite")
        self._drawn.add(id(curve))

    def _legend(self, plot: pg.PlotItem) -> None:
        """List the plot's items that have data (rebuilt only when that changes)."""
        items = [item for item in plot.listDataItems() if id(item) in self._drawn]
        names = tuple(self._names[id(item)] for item in items)
        if self._legends.get(id(plot)) == names:
            return
        self._legends[id(plot)] = names
        plot.legend.clear()
        for item, name in zip(items, names, strict=True):
            plot.legend.addItem(item, name)

    def _plot(self, layout: QVBoxLayout, left: str) -> pg.PlotItem:
        widget = pg.PlotWidget(background="w")
        layout.addWidget(widget, stretch=1)
        plot = widget.getPlotItem()
        plot.setLabel("left", left)
        for side in ("left", "bottom"):
            plot.getAxis(side).setPen("k")
            plot.getAxis(side).setTextPen("k")
            plot.getAxis(side).setStyle(maxTickLevel=0)  # a minor grid costs more than the data
        plot.getAxis("left").setWidth(56)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        plot.setXRange(-self.window_s, 0.0, padding=0.0)
        plot.disableAutoRange(axis="x")
        plot.enableAutoRange(axis="y")
        plot.setClipToView(True)
        plot.setTitle(" ", size="9pt")
        legend = pg.LegendItem(labelTextColor="k", colCount=8, labelTextSize="8pt",
                               horSpacing=14, verSpacing=-6, frame=False)
        legend.setParentItem(plot)  # in the title row, right-aligned: off the data
        legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-4, -2))
        plot.legend = legend
        self._widgets.append(widget)
        return plot

    def _show_plot(self, name: str, shown: bool) -> None:
        if self._shown[name] == shown:
            return
        self._shown[name] = shown
        self.widgets[name].setVisible(shown)
        visible = self.visible_plots()
        for key, plot in self.plots.items():
            plot.setLabel("bottom", "Time before now (s)" if visible and key == visible[-1]
                          else "")
        self.placeholder.setVisible(not visible)

    def _title(self, plot: pg.PlotItem, text: str) -> None:
        if self._titles.get(id(plot)) != text:
            self._titles[id(plot)] = text
            plot.setTitle(text, color="#222", size="9pt", justify="left")


def _dashed(color: str, width: int) -> Any:
    return pg.mkPen(color, width=width, style=Qt.PenStyle.DashLine)


def _number(payload: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    """The first of ``keys`` holding a finite number."""
    for key in keys:
        value = payload.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value)
    return None


def _complete(s: Programmed, payload: Mapping[str, Any]) -> None:
    """Fill what ``s`` does not know yet from ``payload`` (a baseline replaces an estimate)."""
    baseline = _number(payload, BASELINE_KEYS)
    if baseline is not None and not s.baseline_known:
        s.baseline, s.baseline_known = baseline, True
    if s.rate is None:
        s.rate = _number(payload, RATE_KEYS)
    if s.return_rate is None:
        s.return_rate = _number(payload, RETURN_KEYS)
    if s.hold_s is None:
        s.hold_s = _number(payload, HOLD_KEYS)


def _clock_of(live: Any) -> Callable[[], float] | None:
    for owner in (getattr(live, "session", None), getattr(live, "heart", None)):
        clock = getattr(owner, "clock", None)
        if clock is not None:
            return clock.now
    return None


def sample_for_screenshot(seconds: float = 60.0) -> LivePlots:
    """Plots of a made-up CPM-like minute (no devices): a heat ramp stopped at the press, two
    rated heat pulses, cuff conditioning on outlet 2 with its VAS, and an RR stream. Time
    stands still at its end; ``show()`` it (or ``refresh(force=True)``) before a grab."""
    from qst_station.clock import SimulatedClock
    from qst_station.recorders import THERMODE_CHANNELS
    from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
    from qst_station.simulated_pressure import CUFF_CHANNELS

    @dataclass
    class Sample:
        feed: EventFeed
        buffers: LiveBuffers
        heart: LiveHeartRate
        recording: Recording

    recording = Recording(SimulatedClock())
    sample = Sample(EventFeed(), LiveBuffers(seconds=120.0), LiveHeartRate(), recording)
    for subscriber in (sample.feed, sample.buffers, sample.heart):
        recording.subscribe(subscriber)
    for name, channels, rate in ((THERMODE, THERMODE_CHANNELS, 100.0), (CUFF, CUFF_CHANNELS, 20.0),
                                 ("rr", (Channel("RR", "s"),), 0.0)):
        recording.add_stream(StreamSpec(name, channels, rate, "made up", lsl_type=(
            "RR" if name == "rr" else "")))
    recording.start(SessionInfo("SIM001", "demo"))
    t0 = recording.clock.now()
    rng = np.random.default_rng(7)
    stimuli = [  # (onset, target, rate, return rate, hold, press, rating)
        (4.0, 50.0, 1.0, 5.0, 0.0, 16.4, None), (27.0, 46.0, 10.0, 5.0, 4.0, None, 55.0),
        (43.0, 47.0, 10.0, 5.0, 4.0, None, 68.0)]
    programmed = []
    for trial, (onset, target, rate, back, hold, press, rating) in enumerate(stimuli, 1):
        s = Programmed("thermode", trial, t0 + onset, target, rate, 32.0, True, back,
                       None if press else hold)
        s.offset = t0 + press if press else t0 + onset + (target - 32.0) / rate + hold
        programmed.append(s)
        recording.event("stimulus_onset", {"device": "thermode", "trial": trial,
                                           "target": target, "unit": "degC", "rate_c_s": rate},
                        s.onset)
        recording.event("stimulus_offset", {"device": "thermode", "trial": trial,
                                            "reason": "button" if press else "end"}, s.offset)
        recording.event("trial", {"trial": trial, "baseline_c": 32.0, "return_rate_c_s": back,
                                  "hold_s": hold}, s.offset)
        if rating is not None:
            recording.event("response", {"source": "rating-screen", "action": "vas",
                                         "value": rating}, s.offset + 3.0)
    times = t0 + np.arange(0.0, seconds, 0.01)
    px, py = profile_curve(programmed, times[-1])
    ideal = np.interp(times, px[np.isfinite(px)], py[np.isfinite(py)])
    zones = [_lag(ideal, 0.01, 0.2 + 0.04 * k) + rng.normal(0, 0.03, times.size)
             for k in range(5)]
    neutral = 31.6 + 0.02 * (ideal - 32.0) + rng.normal(0, 0.02, times.size)
    recording.push(THERMODE, times, np.column_stack([neutral, *zones]))
    cuff_t = t0 + np.arange(0.0, seconds, 0.05)
    target2 = np.where((cuff_t >= t0 + 20.0) & (cuff_t < t0 + 57.0), 30.0, 0.0)
    p2 = _lag(target2, 0.05, 0.8) + rng.normal(0, 0.1, cuff_t.size)
    vas = np.clip((p2 - 12.0) / 18.0 * 3.5 + 0.03 * np.maximum(cuff_t - t0 - 22.0, 0.0), 0, 10)
    zero = np.zeros(cuff_t.size)
    recording.push(CUFF, cuff_t, np.column_stack([zero, zero, p2, target2, vas, zero]))
    beat, beats = t0, []
    while beat < t0 + seconds:
        rr = 0.92 + 0.05 * math.sin(2 * math.pi * (beat - t0) / 9.0) - 0.0015 * max(
            0.0, min(ideal[min(int((beat - t0) * 100), ideal.size - 1)] - 40.0, 10.0)) * 10
        beat += rr
        beats.append((beat, rr))
    recording.push("rr", [b for b, _ in beats], [[rr] for _, rr in beats])
    plots = LivePlots(window_s=seconds)
    plots.resize(1100, 880)
    plots.attach(sample, now=lambda: t0 + seconds)
    plots.refresh(force=True)
    return plots


def _lag(signal: np.ndarray, dt: float, tau_s: float) -> np.ndarray:
    """A first-order lag (the probe or cuff following its target)."""
    out = np.empty_like(signal)
    alpha, level = dt / (tau_s + dt), float(signal[0])
    for i, value in enumerate(signal):
        level += alpha * (value - level)
        out[i] = level
    return out
