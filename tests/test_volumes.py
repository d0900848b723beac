"""VolumeCounter: pure counting logic, with examples and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.volumes import MIN_INTERVALS, Volume, VolumeCounter


def feed(counter: VolumeCounter, times: list[float]) -> list[Volume]:
    out: list[Volume] = []
    for t in times:
        out += counter.add(t)
    return out


# ---------------------------------------------------------------------- examples


def test_regular_triggers_are_numbered_from_one() -> None:
    counter = VolumeCounter(tr_s=2.0)
    volumes = feed(counter, [10.0, 12.0, 14.0, 16.0])
    assert [(v.index, v.timestamp, v.inferred, v.dummy) for v in volumes] == [
        (1, 10.0, False, False), (2, 12.0, False, False),
        (3, 14.0, False, False), (4, 16.0, False, False)]
    assert counter.last_warnings == []
    assert (counter.volumes, counter.received, counter.missed, counter.extra) == (4, 4, 0, 0)


def test_missed_triggers_are_filled_in_evenly_and_reported() -> None:
    counter = VolumeCounter(tr_s=2.0)
    feed(counter, [0.0, 2.0])
    filled = counter.add(8.1)  # volumes 3 and 4 missed
    assert [(v.index, v.inferred) for v in filled] == [(3, True), (4, True), (5, False)]
    assert [v.timestamp for v in filled] == pytest.approx([2.0 + 6.1 / 3, 2.0 + 12.2 / 3, 8.1])
    assert counter.missed == 2 and counter.received == 3
    assert len(counter.last_warnings) == 1
    assert "missed 2 trigger(s): volumes 3-4 inferred" in counter.last_warnings[0]


def test_extra_trigger_is_not_counted_and_does_not_move_the_reference() -> None:
    counter = VolumeCounter(tr_s=2.0)
    feed(counter, [0.0, 2.0])
    assert counter.add(2.01) == []  # a bounce
    assert counter.extra == 1
    assert "extra trigger 0.010 s after volume 2" in counter.last_warnings[0]
    after = counter.add(4.0)  # 2.0 s after the last *counted* trigger: one volume
    assert [(v.index, v.inferred) for v in after] == [(3, False)]
    assert counter.last_warnings == []


def test_simultaneous_triggers_while_learning_count_once() -> None:
    counter = VolumeCounter()
    counter.add(1.0)
    assert counter.add(1.0) == [] and counter.extra == 1


def test_irregular_interval_is_counted_and_reported() -> None:
    counter = VolumeCounter(tr_s=2.0, tolerance=0.2)
    counter.add(0.0)
    volumes = counter.add(2.6)  # 1.3 TR: neither one nor two volumes within 0.2 TR
    assert [v.index for v in volumes] == [2]
    assert counter.irregular == 1
    assert "irregular interval 2.600 s" in counter.last_warnings[0]


def test_gap_longer_than_max_missed_is_not_filled() -> None:
    counter = VolumeCounter(tr_s=1.0, max_missed=3)
    feed(counter, [0.0, 1.0])
    volumes = counter.add(61.0)  # a paused scan, not 59 lost triggers
    assert [(v.index, v.inferred) for v in volumes] == [(3, False)]
    assert counter.gaps == 1 and counter.missed == 0
    assert "not filled in" in counter.last_warnings[0]
    assert [v.index for v in counter.add(64.0)] == [4, 5, 6]  # 3 TRs: within the cap


def test_dummies_and_first_counted_volume_time_may_be_inferred() -> None:
    counter = VolumeCounter(tr_s=1.0, dummies=2)
    volumes = feed(counter, [0.0, 1.0, 3.0, 4.0])  # volume 3 (the first counted) missed
    assert [(v.index, v.dummy, v.inferred) for v in volumes] == [
        (1, True, False), (2, True, False), (3, False, True), (4, False, False),
        (5, False, False)]
    assert counter.first_counted_volume_time == pytest.approx(2.0)
    assert counter.counted_volumes == 3


def test_tr_is_estimated_after_a_few_intervals_and_tracks_the_median() -> None:
    counter = VolumeCounter()
    feed(counter, [0.0, 0.8, 1.6])
    assert counter.tr_s is None  # two intervals: not trusted yet
    counter.add(2.4)
    assert counter.tr_s == pytest.approx(0.8)
    volumes = counter.add(4.0)  # two TRs: one missed, now detectable
    assert [(v.index, v.inferred) for v in volumes] == [(5, True), (6, False)]
    assert counter.tr_s == pytest.approx(0.8)  # 1.6 s / 2 volumes


def test_irregular_learning_is_reported_once() -> None:
    counter = VolumeCounter()
    feed(counter, [0.0, 2.0, 6.0])  # a miss while learning cannot be told apart
    counter.add(8.0)
    assert any("while learning the TR" in w for w in counter.last_warnings)
    counter.add(10.0)
    assert counter.last_warnings == []


def test_configured_tr_that_disagrees_with_the_intervals_is_reported_once() -> None:
    counter = VolumeCounter(tr_s=1.0)
    feed(counter, [0.0, 1.2, 2.4])
    counter.add(3.6)
    assert any("differs from the configured TR 1.000 s" in w for w in counter.last_warnings)
    counter.add(4.8)
    assert counter.last_warnings == []


def test_summary_and_reset() -> None:
    counter = VolumeCounter(tr_s=2.0, dummies=1)
    feed(counter, [0.0, 2.0, 2.1, 6.0])
    summary = counter.summary()
    assert {k: summary[k] for k in ("volumes", "counted_volumes", "dummies", "received",
                                    "missed", "extra", "tr_s", "tr_source")} == {
        "volumes": 4, "counted_volumes": 3, "dummies": 1, "received": 3, "missed": 1,
        "extra": 1, "tr_s": 2.0, "tr_source": "configured"}
    assert summary["first_counted_volume_time"] == 2.0 and summary["last_volume_time"] == 6.0
    counter.reset()
    assert counter.summary()["volumes"] == 0
    assert counter.add(100.0) == [Volume(1, 100.0, False, True)]


@pytest.mark.parametrize("kwargs", [{"tr_s": 0.0}, {"tr_s": float("nan")}, {"tolerance": 0.5},
                                    {"tolerance": 0.0}, {"dummies": -1}, {"max_missed": -1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VolumeCounter(**kwargs)


# ---------------------------------------------------------------------- properties


@st.composite
def scans(draw: st.DrawFn, max_jitter: float, learn: int = 1, max_run: int = 60) -> tuple:
    """(tr, true times of volumes 1..n, delivered indices); the first ``learn`` delivered."""
    tr = draw(st.floats(0.3, 3.0))
    n = draw(st.integers(learn + 1, 50))
    jitter = draw(st.lists(st.floats(-max_jitter, max_jitter), min_size=n, max_size=n))
    times = [5.0 + i * tr + jitter[i] * tr for i in range(n)]
    dropped = draw(st.sets(st.integers(learn + 1, n)))
    run = 0
    for i in range(learn + 1, n + 1):  # cap runs of consecutive drops
        run = run + 1 if i in dropped else 0
        if run > max_run:
            dropped.discard(i)
            run = 0
    delivered = [i for i in range(1, n + 1) if i not in dropped]
    return tr, times, delivered


def check_counts(counter: VolumeCounter, tr: float, times: list[float],
                 delivered: list[int]) -> None:
    volumes = feed(counter, [times[i - 1] for i in delivered])
    last = delivered[-1]
    assert [v.index for v in volumes] == list(range(1, last + 1))
    assert {v.index for v in volumes if v.inferred} == set(range(1, last + 1)) - set(delivered)
    for v in volumes:
        if v.inferred:
            assert abs(v.timestamp - times[v.index - 1]) <= counter.tolerance * tr
        else:
            assert v.timestamp == times[v.index - 1]
    assert counter.received == len(delivered)
    assert counter.missed == last - len(delivered)
    assert counter.extra == 0


@given(scans(max_jitter=0.1))
def test_with_a_configured_tr_any_dropped_pulses_are_inferred(scan: tuple) -> None:
    tr, times, delivered = scan
    check_counts(VolumeCounter(tr_s=tr), tr, times, delivered)


@given(scans(max_jitter=0.005, learn=MIN_INTERVALS + 1, max_run=8))
def test_with_an_estimated_tr_dropped_pulses_after_learning_are_inferred(scan: tuple) -> None:
    tr, times, delivered = scan
    counter = VolumeCounter()
    check_counts(counter, tr, times, delivered)
    assert counter.tr_s == pytest.approx(tr, rel=0.02)


@given(scans(max_jitter=0.02), st.data())
def test_extra_triggers_are_never_counted(scan: tuple, data: st.DataObject) -> None:
    tr, times, delivered = scan
    extras = data.draw(st.dictionaries(st.sampled_from(delivered), st.floats(0.0, 0.7)))
    stream = sorted([times[i - 1] for i in delivered]
                    + [times[i - 1] + u * tr for i, u in extras.items()])
    with_extras, plain = VolumeCounter(tr_s=tr), VolumeCounter(tr_s=tr)
    assert feed(with_extras, stream) == feed(plain, [times[i - 1] for i in delivered])
    assert with_extras.extra == len(extras)


@given(scans(max_jitter=0.1), st.integers(0, 10))
def test_dummies_are_the_first_volumes_whatever_was_dropped(scan: tuple, dummies: int) -> None:
    tr, times, delivered = scan
    counter = VolumeCounter(tr_s=tr, dummies=dummies)
    volumes = feed(counter, [times[i - 1] for i in delivered])
    assert [v.dummy for v in volumes] == [v.index <= dummies for v in volumes]
    if len(volumes) > dummies:
        expected = volumes[dummies].timestamp
        assert counter.first_counted_volume_time == expected
        assert abs(expected - times[dummies]) <= counter.tolerance * tr
    else:
        assert counter.first_counted_volume_time is None
