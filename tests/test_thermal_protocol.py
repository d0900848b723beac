"""The DFNS thermal method-of-limits state machines against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from protocols.base import CUTOFF, PARADOXICAL, STOPPED, THERMAL_RAMP, Answer, ProtocolError
from protocols.thermal import RampProcedure, RampTest, dfns_thermal


def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def answer(procedure, temps, kinds=None) -> None:  # noqa: ANN001
    for i, t in enumerate(temps):
        procedure.record(Answer((kinds or [STOPPED] * len(temps))[i], t))


def test_cdt_is_the_mean_difference_from_baseline_log_transformed() -> None:
    p = RampProcedure(RampTest("CDT"), rng())
    first = p.next_stimulus()
    assert first.kind == THERMAL_RAMP and first.params["limit_c"] == 0.0
    assert first.params["direction"] == "cold" and first.isi_s == 0.0
    assert p.next_stimulus() == first  # same until answered
    answer(p, [31.0, 30.5, 30.9])
    assert p.done and p.next_stimulus() is None
    (m,) = p.result()
    # |31.0-32| + |30.5-32| + |30.9-32| = 1.0 + 1.5 + 1.1 = 3.6 -> mean 1.2
    assert (m.name, m.unit, m.transform) == ("CDT", "degC", "log10")
    assert m.value == pytest.approx(1.2) and m.trials == pytest.approx((1.0, 1.5, 1.1))


def test_hpt_mean_temperature_with_a_cutoff_flag() -> None:
    p = RampProcedure(RampTest("HPT", return_rate_c_s=5.0), rng())
    assert p.next_stimulus().params == {"baseline_c": 32.0, "limit_c": 50.0, "rate_c_s": 1.0,
                                        "return_rate_c_s": 5.0, "direction": "warm"}
    answer(p, [44.0, 45.5, 50.0], [STOPPED, STOPPED, CUTOFF])
    (m,) = p.result()
    # (44.0 + 45.5 + 50.0) / 3 = 46.5
    assert m.value == pytest.approx(46.5) and m.transform == "none"
    assert m.flags == ("cutoff-reached", "outlier")  # 50.0 is 4.5 °C from the median 45.5


def test_tsl_alternates_and_counts_paradoxical_heat() -> None:
    p = RampProcedure(RampTest("TSL"), rng())
    seen = []
    temps = [33.0, 30.0, 33.4, 31.0, 33.2, 30.6]
    kinds = [STOPPED, STOPPED, STOPPED, PARADOXICAL, STOPPED, STOPPED]
    for t, k in zip(temps, kinds, strict=True):
        s = p.next_stimulus()
        seen.append((s.params["direction"], s.repetition, s.isi_s > 0))
        p.record(Answer(k, t))
    assert [d for d, _, _ in seen] == ["warm", "cold"] * 3
    assert [r for _, r, _ in seen] == [1, 1, 2, 2, 3, 3]
    assert [pause for _, _, pause in seen] == [False, False, True, False, True, False]
    tsl, phs = p.result()
    # pairs: 33.0-30.0 = 3.0, 33.4-31.0 = 2.4, 33.2-30.6 = 2.6 -> mean 8.0/3
    assert tsl.value == pytest.approx(8.0 / 3) and tsl.transform == "log10"
    assert (phs.name, phs.value, phs.unit) == ("PHS", 1.0, "count")


def test_wrong_answers_are_refused_with_one_line() -> None:
    p = RampProcedure(RampTest("WDT"), rng())
    with pytest.raises(ProtocolError, match="answered with .*not 'paradoxical'"):
        p.record(Answer(PARADOXICAL, 33.0))
    with pytest.raises(ProtocolError, match="needs the temperature"):
        p.record(Answer(STOPPED, None))
    with pytest.raises(ProtocolError, match="not a thermal method-of-limits test"):
        RampProcedure(RampTest("PPT"), rng())
    answer(p, [33.0, 33.0, 33.0])
    with pytest.raises(ProtocolError, match="all ramps are answered"):
        p.record(Answer(STOPPED, 33.0))


def test_dfns_battery_order_isi_and_return_rates() -> None:
    battery = dfns_thermal(np.random.default_rng(3), site="hand dorsum")
    order, isis = [], []
    while (s := battery.next_stimulus()) is not None:
        order.append((s.test, s.params["return_rate_c_s"]))
        isis.append(s.isi_s)
        limit = s.params["limit_c"]
        battery.record(Answer(CUTOFF if limit in (0.0, 50.0) and s.test in ("CPT",) else
                              STOPPED, 31.0 if s.params["direction"] == "cold" else 33.0))
    assert [t for t, _ in order] == ["CDT"] * 3 + ["WDT"] * 3 + ["TSL"] * 6 + ["CPT"] * 3 + [
        "HPT"] * 3
    assert {r for t, r in order if t in ("CPT", "HPT")} == {5.0}
    assert {r for t, r in order if t in ("CDT", "WDT", "TSL")} == {1.0}
    assert all(4.0 <= i <= 6.0 for i in isis if i > 0)
    names = [m.name for m in battery.result()]
    assert names == ["CDT", "WDT", "TSL", "PHS", "CPT", "HPT"]
    assert all(m.site == "hand dorsum" for m in battery.result())
    again = dfns_thermal(np.random.default_rng(3))
    assert again.next_stimulus().isi_s == 0.0  # the seed decides the ISIs: reproducible


def test_a_repetition_far_from_the_others_is_flagged() -> None:
    hpt = RampProcedure(RampTest("HPT", return_rate_c_s=5.0), rng())
    answer(hpt, [44.0, 44.5, 48.0])  # 48.0 is 3.5 °C from the median 44.5
    assert hpt.result()[0].flags == ("outlier",)
    calm = RampProcedure(RampTest("HPT", return_rate_c_s=5.0), rng())
    answer(calm, [44.0, 44.5, 46.0])  # 1.5 °C: fine
    assert calm.result()[0].flags == ()
    cdt = RampProcedure(RampTest("CDT"), rng())
    answer(cdt, [31.0, 30.8, 29.0])  # differences 1.0, 1.2, 3.0: 3.0 / 1.2 = 2.5 > 2
    assert cdt.result()[0].flags == ("outlier",)
