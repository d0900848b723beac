"""PPT feedback logic: rate estimate, capture at a timestamp, trials and quality flags."""

from __future__ import annotations

import numpy as np
import pytest

from qst_station.ppt_feedback import (
    Pace,
    PptSettings,
    PptTracker,
    classify,
    estimate_rate,
    index_at,
)

T0 = 50_000.0  # LSL-like clock values: large offsets must not cost precision


def ramp(rate: float, seconds: float, hz: float = 10.0, start: float = T0,
         rest_s: float = 0.5) -> list[tuple[float, float]]:
    """Rest at 0 kPa for ``rest_s``, then a ramp from 0 at ``rate`` for ``seconds``."""
    n_rest, n_ramp = round(rest_s * hz), round(seconds * hz)
    rest = [(start + i / hz, 0.0) for i in range(n_rest)]
    begin = start + n_rest / hz
    return rest + [(begin + i / hz, rate * i / hz) for i in range(n_ramp + 1)]


def feed(tracker: PptTracker, samples: list[tuple[float, float]]) -> None:
    for t, kpa in samples:
        tracker.add(t, kpa)


# ---------------------------------------------------------------- rate estimate


def test_rate_of_an_exact_ramp() -> None:
    t = T0 + np.arange(30) / 10.0
    assert estimate_rate(t, 50.0 * (t - T0), window_s=0.4) == pytest.approx(50.0, abs=1e-6)


def test_rate_on_a_noisy_ramp_at_100_hz() -> None:
    rng = np.random.default_rng(3)
    t = T0 + np.arange(300) / 100.0
    kpa = 50.0 * (t - T0) + rng.normal(0.0, 0.5, t.size)
    assert estimate_rate(t, kpa, window_s=0.4) == pytest.approx(50.0, rel=0.05)


def test_rate_uses_only_the_newest_window() -> None:
    t = T0 + np.arange(40) / 10.0
    kpa = np.where(t - T0 < 2.0, 30.0 * (t - T0), 60.0 + 80.0 * (t - T0 - 2.0))
    assert estimate_rate(t, kpa, window_s=0.5) == pytest.approx(80.0, abs=1e-6)


def test_rate_needs_enough_distinct_samples() -> None:
    assert estimate_rate([], [], window_s=0.4) is None
    assert estimate_rate([T0, T0 + 0.1], [0.0, 5.0], window_s=0.4) is None
    assert estimate_rate([T0] * 4, [0.0, 1.0, 2.0, 3.0], window_s=0.4) is None
    assert estimate_rate([T0, T0 + 0.1, T0 + 0.2], [0.0, 1.0, 2.0], window_s=0.4) \
        == pytest.approx(10.0)


@pytest.mark.parametrize(("rate", "pace"), [
    (50.0, Pace.ON_TARGET), (60.0, Pace.ON_TARGET), (40.0, Pace.ON_TARGET),
    (60.5, Pace.TOO_FAST), (39.5, Pace.TOO_SLOW), (None, Pace.UNKNOWN),
])
def test_classify_at_20_percent(rate: float | None, pace: Pace) -> None:
    assert classify(rate, 50.0, 0.2) is pace


# ---------------------------------------------------------------- sample at a time


def test_index_at_picks_the_latest_sample_at_or_before() -> None:
    times = [1.0, 2.0, 2.0, 3.0]
    assert index_at(times, 0.5) is None
    assert index_at(times, 1.0) == 0
    assert index_at(times, 1.99) == 0
    assert index_at(times, 2.0) == 2
    assert index_at(times, 9.0) == 3


# ---------------------------------------------------------------- trials


def test_trial_starts_above_onset_from_the_last_rest_sample() -> None:
    tracker = PptTracker()
    feed(tracker, ramp(50.0, 2.0))
    trial = tracker.trial
    assert trial is not None and trial.started and trial.open
    assert trial.number == 1
    assert (trial.t0, trial.p0) == (T0 + 0.5, 0.0)  # 0 kPa, just before 5 kPa at +0.1 s
    assert trial.elapsed_s == pytest.approx(2.0)
    assert trial.target(2.0) == pytest.approx(100.0)
    assert tracker.current_rate() == pytest.approx(50.0)
    assert tracker.pace() is Pace.ON_TARGET


def test_no_trial_while_at_rest_and_pace_follows_the_target() -> None:
    tracker = PptTracker()
    feed(tracker, [(T0 + i / 10, 3.0) for i in range(10)])
    assert tracker.trial is None and tracker.pace() is Pace.UNKNOWN
    feed(tracker, ramp(80.0, 2.0, start=T0 + 1.0, rest_s=0.1))
    assert tracker.pace() is Pace.TOO_FAST
    tracker.set_target_rate(80.0)
    assert tracker.pace() is Pace.ON_TARGET


def test_capture_takes_the_sample_at_or_before_the_response() -> None:
    tracker = PptTracker()
    samples = ramp(50.0, 4.0)
    feed(tracker, samples)
    t_sample, kpa = samples[30]  # 2.5 s into the ramp: 125 kPa
    capture = tracker.capture(t_sample + 0.07, source="buttonbox")
    assert capture is not None
    assert (capture.sample_time, capture.kpa) == (t_sample, kpa)
    assert capture.response_time == t_sample + 0.07
    assert capture.elapsed_s == pytest.approx(2.5)
    assert capture.mean_rate_kpa_s == pytest.approx(50.0)
    assert capture.source == "buttonbox" and capture.trial == 1
    assert not capture.flagged and capture.pace is Pace.ON_TARGET
    assert tracker.captures == [capture]
    assert tracker.capture(t_sample + 0.5) is None  # one threshold per application
    assert tracker.pace() is Pace.UNKNOWN


def test_capture_exactly_at_a_sample_time() -> None:
    tracker = PptTracker()
    samples = ramp(50.0, 3.0)
    feed(tracker, samples)
    capture = tracker.capture(samples[20][0])
    assert capture is not None and capture.kpa == samples[20][1]


@pytest.mark.parametrize(("rate", "pace"), [(75.0, Pace.TOO_FAST), (30.0, Pace.TOO_SLOW),
                                            (58.0, Pace.ON_TARGET)])
def test_mean_rate_flags(rate: float, pace: Pace) -> None:
    tracker = PptTracker()
    feed(tracker, ramp(rate, 4.0))
    capture = tracker.capture(T0 + 4.0)
    assert capture is not None
    assert capture.mean_rate_kpa_s == pytest.approx(rate)
    assert capture.pace is pace and capture.flagged is (pace is not Pace.ON_TARGET)
    assert capture.target_kpa_s == 50.0


def test_mean_rate_is_the_whole_application_not_the_last_window() -> None:
    tracker = PptTracker()
    fast = ramp(100.0, 2.0)  # 0 -> 200 kPa in 2 s, then 20 kPa/s for 2 s
    end = fast[-1][0]
    feed(tracker, fast + [(end + i / 10, 200.0 + 2.0 * i) for i in range(1, 21)])
    assert tracker.pace() is Pace.TOO_SLOW
    capture = tracker.capture(end + 2.0)
    assert capture is not None and capture.kpa == pytest.approx(240.0)
    assert capture.mean_rate_kpa_s == pytest.approx(60.0) and capture.pace is Pace.ON_TARGET


def test_nothing_to_capture_before_onset_or_after_release() -> None:
    tracker = PptTracker()
    assert tracker.capture(T0) is None  # no trial
    samples = ramp(50.0, 3.0)
    feed(tracker, samples)
    assert tracker.capture(T0 + 0.55) is None  # before the pressure passed 5 kPa
    released = samples[-1][0] + 0.1
    tracker.add(released, 0.0)
    assert tracker.trial is not None and not tracker.trial.open
    assert tracker.capture(released + 0.2) is None  # after the release
    capture = tracker.capture(released - 0.05)  # pressed just before, handled after
    assert capture is not None and capture.kpa == samples[-1][1]


def test_each_application_is_a_new_trial_with_hysteresis() -> None:
    tracker = PptTracker()
    feed(tracker, ramp(50.0, 2.0))
    first_end = tracker.trial.times[-1] if tracker.trial else 0.0
    # the pressure falls to 4 kPa (below onset, above release) and rises again: same trial
    feed(tracker, [(first_end + 0.1, 4.0), (first_end + 0.2, 8.0)])
    assert tracker.trial is not None and tracker.trial.number == 1 and tracker.trial.open
    feed(tracker, ramp(50.0, 2.0, start=first_end + 0.3))
    assert tracker.trial is not None and tracker.trial.number == 2
    assert tracker.trial.t0 == pytest.approx(first_end + 0.8, abs=1e-6)  # ramp at 0 kPa


def test_new_trial_at_rest_waits_for_the_rise() -> None:
    tracker = PptTracker()
    feed(tracker, [(T0 + i / 10, 1.0) for i in range(5)])
    trial = tracker.new_trial()
    assert not trial.started and trial.t0 == T0 + 0.4
    feed(tracker, ramp(50.0, 1.0, start=T0 + 0.5, rest_s=0.3))
    assert tracker.trial is trial and trial.started
    assert (trial.t0, trial.p0) == (pytest.approx(T0 + 0.8, abs=1e-6), 0.0)


def test_new_trial_while_pressing_starts_at_once() -> None:
    tracker = PptTracker()
    feed(tracker, ramp(50.0, 2.0))
    trial = tracker.new_trial()
    assert trial.number == 2 and trial.started
    assert trial.p0 == pytest.approx(100.0) and tracker.captures == []


def test_a_held_probe_closes_the_trial_and_waits_for_release() -> None:
    tracker = PptTracker(PptSettings(max_trial_s=2.0))
    feed(tracker, ramp(50.0, 3.0))
    assert tracker.trial is not None and not tracker.trial.open
    end = tracker.trial.times[-1]
    feed(tracker, [(end + 0.1, 160.0), (end + 0.2, 1.0), (end + 0.3, 10.0)])
    assert tracker.trial.number == 2


@pytest.mark.parametrize("kwargs", [{"rate_kpa_s": 0}, {"tolerance": 1.5},
                                    {"onset_kpa": 2.0, "release_kpa": 3.0}, {"window_s": 0}])
def test_settings_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PptSettings(**kwargs)
