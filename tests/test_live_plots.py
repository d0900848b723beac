"""Live plots: the programmed profile from the events, hidden plots for absent streams, a
simulated heat-pulse run drawn live, and the made-up sample for screenshots."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocols.files import parse_protocol
from qst_station.clock import SimulatedClock
from qst_station.event_feed import EventFeed
from qst_station.gui.live_plots import (
    MAX_POINTS,
    LivePlots,
    Programmed,
    decimate,
    profile_curve,
    sample_for_screenshot,
)
from qst_station.live_buffer import LiveBuffers
from qst_station.live_heart_rate import LiveHeartRate
from qst_station.protocol_session import ProtocolSession
from qst_station.recorders import THERMODE_CHANNELS
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec
from tests.test_thermal_pulses import quiet_participant

PULSES = """
[protocol]
name = "cal-live"
title = "three rated heat pulses"
kind = "heat-calibration"

[calibration]
temperatures_c = [44.0, 45.0, 46.0]
repetitions = 1

[pulse]
rate_c_s = 10.0
return_rate_c_s = 5.0
hold_s = 2.0
rating_window_s = 4.0
isi_s = [1.0, 1.5]
"""


@dataclass
class Live:
    feed: EventFeed
    buffers: LiveBuffers
    heart: LiveHeartRate
    session: Any = None


def corners(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.column_stack([x, y])


def approx(rows: list[tuple[float, float]]) -> Any:
    return pytest.approx(np.array(rows, dtype=float))


def has_corner(x: np.ndarray, y: np.ndarray, t: float, value: float) -> bool:
    return bool(np.any(np.isclose(x, t, atol=1e-6) & np.isclose(y, value, atol=1e-6)))


def drawn(curve: Any) -> int:
    x, _ = curve.getData()
    return 0 if x is None else len(x)


# -- the programmed profile -------------------------------------------------------------------

def test_a_pulse_rises_at_its_rate_holds_and_returns_at_the_return_rate() -> None:
    pulse = Programmed("thermode", 1, 10.0, 46.0, 10.0, 32.0, True, 5.0, offset=13.4)
    assert corners(*profile_curve([pulse], 30.0)) == approx(
        [(10.0, 32.0), (11.4, 46.0), (13.4, 46.0), (16.2, 32.0), (30.0, 32.0)])
    # still open (no offset, hold unknown): holds its target until now
    pulse.offset = None
    pulse.hold_s = None
    assert corners(*profile_curve([pulse], 12.0)) == approx(
        [(10.0, 32.0), (11.4, 46.0), (12.0, 46.0)])
    # the hold from the trial's parameters ends it without an offset
    pulse.hold_s = 2.0
    assert corners(*profile_curve([pulse], 14.0))[2:4] == approx(
        [(13.4, 46.0), (16.2, 32.0)])


def test_a_ramp_stopped_by_the_press_turns_back_there() -> None:
    cold = Programmed("thermode", 1, 5.0, 0.0, 1.0, 32.0, True, 2.0, offset=6.4)
    x, y = profile_curve([cold], 20.0)
    assert corners(x, y) == approx([(5.0, 32.0), (6.4, 30.6), (7.1, 32.0), (20.0, 32.0)])
    # unknown rate: a step to the target
    step = Programmed("tcs2", 1, 5.0, 40.0, None, 32.0, offset=8.0)
    assert corners(*profile_curve([step], 8.0))[:3] == approx(
        [(5.0, 32.0), (5.0, 40.0), (8.0, 40.0)])


def test_profiles_join_on_one_baseline_and_break_where_it_changes() -> None:
    a = Programmed("thermode", 1, 0.0, 40.0, 8.0, 32.0, True, 8.0, offset=2.0)
    b = Programmed("thermode", 2, 10.0, 40.0, 8.0, 32.0, True, 8.0, offset=12.0)
    c = Programmed("thermode", 3, 20.0, 25.0, 7.0, 30.0, True, 7.0, offset=22.0)
    x, y = profile_curve([c, a, b], 30.0)  # sorted by onset
    assert int(np.isnan(x).sum()) == 1  # only before c (another baseline)
    assert x[np.isnan(x).argmax() + 1] == 20.0 and x[-1] == 30.0 and y[-1] == 30.0
    ramp = Programmed("algometer", 1, 3.0, 800.0, 50.0, 4.0, returns=False, offset=9.0)
    assert corners(*profile_curve([ramp], 20.0)) == approx([(3.0, 4.0), (9.0, 304.0)])


def test_decimation_keeps_few_points_stably_and_the_newest() -> None:
    t = np.arange(0.0, 60.0, 0.001)
    keep = decimate(t, MAX_POINTS, 60.0)
    assert MAX_POINTS - 2 <= len(keep) <= MAX_POINTS + 1 and keep[-1] == len(t) - 1
    later = decimate(t[7:], MAX_POINTS, 60.0)  # one frame on: the same samples kept
    assert np.isin(t[7:][later][1:-1], t[keep]).all()
    assert decimate(t[:100], MAX_POINTS, 60.0) == slice(None)


# -- a simulated run drawn live ---------------------------------------------------------------

def test_a_simulated_pulse_run_is_drawn_against_its_programmed_profile(qtbot: Any,
                                                                        tmp_path: Path) -> None:
    live = Live(EventFeed(), LiveBuffers(seconds=120.0), LiveHeartRate())
    live.session = ProtocolSession(parse_protocol(PULSES), SimulatedClock(10.0),
                                   tmp_path / "pulses.h5", quiet_participant(), seed=3,
                                   progress=lambda line: None,
                                   subscribers=[live.feed, live.buffers, live.heart])
    plots = LivePlots(window_s=60.0)
    qtbot.addWidget(plots)
    plots.resize(1000, 700)
    plots.show()
    plots.attach(live)
    assert plots.visible_plots() == [] and plots.placeholder.isVisible()
    worker = threading.Thread(target=live.session.run, daemon=True)
    worker.start()
    qtbot.waitUntil(lambda: drawn(plots.zone_curves[1]) > 10
                    and drawn(plots.profile_curve) >= 3, timeout=60000)
    assert "thermode" in plots.visible_plots()
    assert {"pressure", "heart"}.isdisjoint(plots.visible_plots())  # no cuff, no ECG
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=120000)
    assert live.session.status == "success"
    plots.refresh()  # the run has stopped: time stands still from here on

    assert plots.visible_plots() == ["thermode", "vas"]
    assert plots.widgets["pressure"].isHidden() and plots.widgets["heart"].isHidden()
    assert not plots.placeholder.isVisible()
    x, y = plots.profile_curve.getData()
    t = x + plots.now
    onsets = live.feed.of_kind("stimulus_onset")
    offsets = live.feed.of_kind("stimulus_offset")
    assert len(onsets) == len(offsets) == 3
    for onset, offset in zip(onsets, offsets, strict=True):
        p = onset.payload
        peak = onset.timestamp + abs(p["target"] - 32.0) / p["rate_c_s"]
        assert has_corner(t, y, onset.timestamp, 32.0)  # the trial's baseline_c
        assert has_corner(t, y, peak, p["target"])  # reached at onset + |target - b| / rate
        assert has_corner(t, y, offset.timestamp, p["target"])  # held until the offset
        assert has_corner(t, y, offset.timestamp + (p["target"] - 32.0) / 5.0, 32.0)
        halfway = np.interp(onset.timestamp + (peak - onset.timestamp) / 2, t, y)
        assert halfway == pytest.approx((p["target"] + 32.0) / 2)
    zx, zy = plots.zone_curves[1].getData()
    assert len(zx) <= MAX_POINTS + 1 and zx[-1] <= 0.0
    first = onsets[0]
    hold = (zx + plots.now > first.timestamp + 2.5) & (zx + plots.now < offsets[0].timestamp)
    assert zy[hold].mean() == pytest.approx(first.payload["target"], abs=0.5)
    ratings = [e.payload["value"] for e in live.feed.of_kind("response")
               if e.payload["action"] == "vas"]
    _, values = plots.rating_points.getData()
    assert len(ratings) == 3 and list(values) == ratings
    assert drawn(plots.vas_curve) == 0  # no cuff: ratings only
    Path("/tmp").mkdir(exist_ok=True)
    plots.grab().save("/tmp/live_plots.png")
    plots.detach()
    assert plots.visible_plots() == [] and drawn(plots.profile_curve) == 0


# -- pressure and heart rate on made-up streams -----------------------------------------------

def made_up(*streams: StreamSpec) -> tuple[Recording, Live, float]:
    """A started recording of ``streams`` with the live subscribers; its start time."""
    recording = Recording(SimulatedClock())
    live = Live(EventFeed(), LiveBuffers(seconds=60.0), LiveHeartRate())
    for subscriber in (live.feed, live.buffers, live.heart):
        recording.subscribe(subscriber)
    for spec in streams:
        recording.add_stream(spec)
    recording.start(SessionInfo("SIM001", "t"))
    return recording, live, recording.clock.now()


def test_without_a_baseline_in_the_events_the_zones_at_the_onset_stand_for_it(
        qtbot: Any) -> None:
    recording, live, t0 = made_up(StreamSpec("thermode", THERMODE_CHANNELS, 100.0, "made up"))
    times = t0 + np.arange(0.0, 5.0, 0.01)
    recording.push("thermode", times, np.full((times.size, 6), 31.5))
    recording.event("stimulus_onset", {"device": "thermode", "trial": 1, "target": 40.0,
                                       "unit": "degC", "rate_c_s": 5.0}, t0 + 2.0)
    plots = LivePlots(window_s=30.0)
    qtbot.addWidget(plots)
    plots.attach(live, now=lambda: t0 + 5.0)
    plots.refresh(force=True)
    x, y = plots.profile_curve.getData()
    assert corners(x + t0 + 5.0, y) == approx([(t0 + 2.0, 31.5), (t0 + 3.7, 40.0),
                                               (t0 + 5.0, 40.0)])
    recording.event("trial", {"trial": 1, "baseline_c": 32.0, "hold_s": 1.0,
                              "return_rate_c_s": 4.0}, t0 + 5.0)
    plots.refresh(force=True)
    x, y = plots.profile_curve.getData()
    assert corners(x + t0 + 5.0, y) == approx([(t0 + 2.0, 32.0), (t0 + 3.6, 40.0),
                                               (t0 + 4.6, 40.0), (t0 + 6.6, 32.0)])
    assert plots.visible_plots() == ["thermode"]


def test_algometer_pressure_is_drawn_against_the_target_ramp_from_its_onset(qtbot: Any) -> None:
    recording, live, t0 = made_up(StreamSpec("pressure", (Channel("pressure", "kPa"),
                                                          Channel("force", "N")), 50.0, "x"))
    times = t0 + np.arange(0.0, 10.0, 0.02)
    kpa = np.clip(45.0 * (times - t0 - 2.0), 0.0, None)
    kpa[times > t0 + 8.0] = 0.0
    recording.push("pressure", times, np.column_stack([kpa, kpa * 0.01]))
    onset = t0 + 2.2  # the examiner's ramp began (9 kPa then)
    recording.event("stimulus_onset", {"device": "algometer", "trial": 1, "target": 1000.0,
                                       "unit": "kPa", "rate_kpa_s": 50.0}, onset)
    recording.event("stimulus_offset", {"device": "algometer", "trial": 1, "reason": "button",
                                        "value": 270.0, "unit": "kPa"}, t0 + 8.0)
    plots = LivePlots(window_s=30.0)
    qtbot.addWidget(plots)
    plots.attach(live, now=lambda: t0 + 10.0)
    plots.refresh(force=True)
    assert plots.visible_plots() == ["pressure"]
    x, y = plots.ramp_curve.getData()
    p0 = kpa[np.searchsorted(times, onset, side="right") - 1]
    assert corners(x + t0 + 10.0, y) == approx([(onset, p0),
                                                       (t0 + 8.0, p0 + 50.0 * 5.8)])
    assert drawn(plots.algometer_curve) == len(times) and drawn(plots.outlet_curves[0][0]) == 0


def test_the_screenshot_sample_shows_every_plot_with_the_cuff_vas_scaled(qtbot: Any) -> None:
    plots = sample_for_screenshot()
    qtbot.addWidget(plots)
    plots.show()
    plots.refresh()
    assert plots.visible_plots() == ["thermode", "pressure", "vas", "heart"]
    assert drawn(plots.outlet_curves[0][0]) == 0 and drawn(plots.outlet_curves[1][0]) > 0
    cuff_t, cuff = plots.live.buffers.buffers["cuff"].snapshot()
    _, vas = plots.vas_curve.getData()
    assert np.nanmax(vas) == pytest.approx(10.0 * np.nanmax(cuff[:, 4]), rel=0.01)
    assert drawn(plots.hr_average_curve) > 30 and drawn(plots.profile_curve) > 10
    _, ratings = plots.rating_points.getData()
    assert list(ratings) == [55.0, 68.0]
    plots.grab().save("/tmp/live_plots_sample.png")
