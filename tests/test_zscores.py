"""DFNS z-scores against hand-computed cases, the loss/gain coding and the quality flag.

Reference rows here are built in the test (made-up numbers, like the synthetic demo table);
nothing in this file is a real DFNS reference value.
"""

from __future__ import annotations

import math

import pytest

from protocols import dfns
from protocols.base import Measure
from protocols.reference import ReferenceLookupError, ReferenceRow, ReferenceTable, demo_table
from protocols.zscores import MANY_ABNORMAL_FLAG, Profile, ZScore, profile, z_score

SOURCE = "test rows (made up)"


def row(measure: str, mean: float, sd: float, site: str = "hand", sex: str = "any",
        age: tuple[float, float] = (18, 80)) -> ReferenceRow:
    transform = dfns.CONVENTIONS[measure].transform
    return ReferenceRow(site, sex, age[0], age[1], measure, mean, sd, transform, SOURCE, "t:1")


# measure, value, reference mean, SD, expected z -- the hand computation of each:
HAND = [
    # log10(1.5 °C) = 0.17609; (0.17609 - 0.2) / 0.25 = -0.09563; inverted -> +0.0956
    ("CDT", 1.5, 0.2, 0.25, 0.0956350),
    # log10(4 °C) = 0.60206; (0.60206 - 0.3) / 0.2 = +1.5103; inverted -> -1.5103 (loss side)
    ("WDT", 4.0, 0.3, 0.2, -1.5103000),
    # log10(10 °C) = 1; (1 - 0.4) / 0.2 = +3.0; inverted -> -3.0 (abnormal loss)
    ("TSL", 10.0, 0.4, 0.2, -3.0),
    # no transform: (20 °C - 10) / 8 = +1.25; as is (warmer cold pain = more sensitive)
    ("CPT", 20.0, 10.0, 8.0, 1.25),
    # no transform: (40 °C - 44) / 3 = -1.3333; inverted -> +1.3333 (cooler heat pain = gain)
    ("HPT", 40.0, 44.0, 3.0, 1.3333333),
    # log10(0.25 mN) = -0.60206; (-0.60206 - 0.5) / 0.3 = -3.6735; inverted -> +3.6735
    ("MDT", 0.25, 0.5, 0.3, 3.6735333),
    # log10(128 mN) = 2.10721; (2.10721 - 1.6) / 0.3 = +1.6907; inverted -> -1.6907
    ("MPT", 128.0, 1.6, 0.3, -1.6906999),
    # log10(9.9 + 0.1) = 1; (1 - 0.3) / 0.4 = +1.75; as is
    ("MPS", 9.9, 0.3, 0.4, 1.75),
    # log10(0 + 0.1) = -1; (-1 - 0.3) / 0.4 = -3.25; as is (no pinprick pain = loss)
    ("MPS", 0.0, 0.3, 0.4, -3.25),
    # log10(2) = 0.30103; (0.30103 - 0.3) / 0.2 = +0.00515; as is
    ("WUR", 2.0, 0.3, 0.2, 0.0051500),
    # no transform: (6/8 - 7.5) / 0.5 = -3.0; as is (feels less vibration = loss)
    ("VDT", 6.0, 7.5, 0.5, -3.0),
    # log10(200 kPa) = 2.30103; (2.30103 - 2.6) / 0.15 = -1.99313; inverted -> +1.9931
    ("PPT", 200.0, 2.6, 0.15, 1.9931334),
]


@pytest.mark.parametrize(("measure", "value", "mean", "sd", "expected"), HAND)
def test_hand_computed_z(measure: str, value: float, mean: float, sd: float,
                         expected: float) -> None:
    score = z_score(measure, value, row(measure, mean, sd))
    assert score.z == pytest.approx(expected, abs=1e-6)
    assert score.abnormal is (abs(expected) > 1.96)


def test_every_measure_has_the_reference_transform_and_sign() -> None:
    expected = {  # measure: (domain, transform, sign) from the DFNS table in qst-science.md
        "CDT": ("thermal", "log10", -1), "WDT": ("thermal", "log10", -1),
        "TSL": ("thermal", "log10", -1), "PHS": ("thermal", "none", 0),
        "CPT": ("thermal", "none", 1), "HPT": ("thermal", "none", -1),
        "MDT": ("mechanical", "log10", -1), "MPT": ("mechanical", "log10", -1),
        "MPS": ("mechanical", "log10", 1), "DMA": ("mechanical", "none", 0),
        "WUR": ("mechanical", "log10", 1), "VDT": ("mechanical", "none", 1),
        "PPT": ("pressure", "log10", -1),
    }
    assert tuple(expected) == dfns.TEST_ORDER
    for name, (domain, transform, sign) in expected.items():
        c = dfns.convention(name)
        assert (c.domain, c.transform, c.sign) == (domain, transform, sign), name
        assert c.z_scored is (sign != 0)
        assert c.log_offset == (0.1 if name == "MPS" else 0.0)
    units = {"degC": "CDT WDT TSL CPT HPT", "count": "PHS", "mN": "MDT MPT", "ratio": "WUR",
             "NRS 0-100": "MPS DMA", "/8": "VDT", "kPa": "PPT"}
    assert {m: dfns.CONVENTIONS[m].unit for m in dfns.TEST_ORDER} == {
        m: unit for unit, names in units.items() for m in names.split()}
    assert dfns.normalized_unit("°C") == "degC"
    assert set(dfns.PROFILE_ORDER) == dfns.Z_SCORED
    with pytest.raises(KeyError, match="not a DFNS measure"):
        dfns.convention("XYZ")


@pytest.mark.parametrize("measure", sorted(dfns.Z_SCORED))
def test_sign_means_positive_is_gain(measure: str) -> None:
    """One SD 'more sensitive' than the mean (lower threshold, higher rating) gives z = +1."""
    c = dfns.CONVENTIONS[measure]
    ref = row(measure, 0.5 if c.transform == "log10" else 10.0, 0.25)
    scaled = ref.mean + c.sign * ref.sd  # on the reference scale, one SD towards gain
    value = 10 ** scaled - c.log_offset if c.transform == "log10" else scaled
    assert z_score(measure, value, ref).z == pytest.approx(1.0)


@pytest.mark.parametrize(("measure", "value"),
                         [("CDT", 0.0), ("WDT", -1.0), ("PPT", 0.0), ("WUR", 0.0),
                          ("MPS", -0.1)])
def test_log_of_non_positive_is_an_error(measure: str, value: float) -> None:
    ref = row(measure, 0.2, 0.25)
    with pytest.raises(ValueError, match=f"^{measure}: log10 needs .* > 0") as err:
        z_score(measure, value, ref)
    assert "\n" not in str(err.value)


def test_z_score_refuses_mismatches() -> None:
    with pytest.raises(ValueError, match="not z-scored"):
        z_score("PHS", 1, row("CDT", 0.2, 0.25))
    with pytest.raises(ValueError, match="is for WDT, not CDT"):
        z_score("CDT", 1.5, row("WDT", 0.2, 0.25))


def test_abnormal_is_strictly_beyond_1_96() -> None:
    ref = row("CPT", 0.0, 1.0)  # no transform, sign as is: z = value
    assert not z_score("CPT", 1.96, ref).abnormal
    assert z_score("CPT", 1.9601, ref).direction == "gain"
    assert z_score("CPT", -1.9601, ref).direction == "loss"
    assert z_score("CPT", -1.96, ref).direction == "normal"


def scores(**z: float) -> dict[str, ZScore]:
    """Z-scores with given values (CPT-like rows so the value is z, before its sign)."""
    return {m: ZScore(m, v, v, v, row(m, 0.0, 1.0)) for m, v in z.items()}


@pytest.mark.parametrize(("z", "counts", "code", "thermal", "mechanical"), [
    ({"CDT": 0.5, "MDT": -1.0}, {}, "L0G0", "N", "N"),
    ({"CDT": -2.5}, {}, "L1G0", "L", "N"),
    ({"MDT": -2.0, "VDT": -3.1}, {}, "L2G0", "N", "L"),
    ({"WDT": -2.2, "MPT": -2.2}, {}, "L3G0", "L", "L"),
    ({"HPT": 2.5}, {}, "L0G1", "G", "N"),
    ({"PPT": 2.1}, {}, "L0G2", "N", "G"),  # pressure counts with mechanical
    ({"CDT": -3.0, "HPT": 2.4}, {}, "L1G1", "LG", "N"),  # loss and gain in one domain
    ({"CDT": -3.0, "MPT": 2.4, "CPT": 2.0}, {}, "L1G3", "LG", "G"),
    ({"MDT": -2.5}, {"DMA": 3.0, "PHS": 2.0}, "L2G2", "N", "LG"),  # DMA > 0 is a gain
    ({"MDT": 1.0}, {"DMA": 0.0, "PHS": 3.0}, "L0G0", "N", "N"),  # PHS is not coded
])
def test_loss_gain_coding(z: dict[str, float], counts: dict[str, float], code: str,
                          thermal: str, mechanical: str) -> None:
    p = Profile(scores(**z), counts)
    assert p.code == code
    assert p.domains["thermal"].letters == thermal
    assert p.domains["mechanical"].letters == mechanical


def test_loss_gain_lists_the_measures() -> None:
    domains = Profile(scores(CDT=-3.0, HPT=2.5, PPT=2.1, MDT=-2.0), {"DMA": 1.0}).domains
    assert domains["thermal"].loss == ("CDT",) and domains["thermal"].gain == ("HPT",)
    assert domains["mechanical"].loss == ("MDT",)
    assert domains["mechanical"].gain == ("PPT", "DMA")


def test_quality_flag_at_four_abnormal_values() -> None:
    three = Profile(scores(CDT=-2.0, WDT=-2.0, HPT=2.0, MDT=1.9, PPT=-1.96))
    assert three.abnormal == ("CDT", "WDT", "HPT")
    assert three.flags == ()
    four = Profile(scores(CDT=-2.0, WDT=-2.0, HPT=2.0, MDT=1.97))
    assert four.flags == (MANY_ABNORMAL_FLAG,)


def test_profile_from_measures_with_the_demo_table() -> None:
    table = demo_table()
    measures = [
        Measure("CDT", 1.5, "°C", "log10", flags=("outlier",)),
        Measure("HPT", 40.0, "degC"),  # the session file's spelling of °C
        Measure("PPT", 200.0, "kPa", "log10", site="Hand Dorsum"),
        Measure("PHS", 1, "count"),
        Measure("DMA", 0.0, "NRS 0-100"),
        Measure("TSP", 12.0, "NRS 0-100"),  # not a DFNS z-score: skipped
    ]
    p = profile(measures, table, site="hand dorsum", sex="female", age=30)
    assert list(p.zscores) == ["CDT", "HPT", "PPT"]
    assert dict(p.counts) == {"PHS": 1.0, "DMA": 0.0}
    cdt = p.zscores["CDT"]
    ref = table.lookup("hand dorsum", "female", 30, "CDT")
    assert cdt.reference == ref
    assert cdt.z == pytest.approx(-(math.log10(1.5) - ref.mean) / ref.sd)
    assert cdt.flags == ("outlier",)
    assert "SYNTHETIC" in cdt.reference.source


@pytest.mark.parametrize(("measure", "match"), [
    (Measure("CDT", 1.5, "°C", "none"), "transform 'none': DFNS uses 'log10'"),
    (Measure("PPT", 4.0, "kg/cm²", "log10"), "PPT in 'kg/cm²': the reference is in 'kPa'"),
    (Measure("CDT", 1.5, "°C", "log10", site="foot"), "one profile per test area"),
])
def test_profile_refuses_inconsistent_measures(measure: Measure, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        profile([measure], demo_table(), site="hand dorsum", sex="male", age=50)


def test_profile_refuses_duplicates_and_missing_rows() -> None:
    cdt = Measure("CDT", 1.5, "°C", "log10")
    with pytest.raises(ValueError, match="CDT occurs twice"):
        profile([cdt, cdt], demo_table(), site="hand dorsum", sex="male", age=50)
    table = ReferenceTable([row("CDT", 0.2, 0.25)], "t.csv")
    with pytest.raises(ReferenceLookupError, match="no reference row for CDT at site 'face'"):
        profile([cdt], table, site="face", sex="male", age=50)
