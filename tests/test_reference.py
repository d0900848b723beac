"""Reference tables: the CSV format, one-line file:line errors, lookup and the demo table."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.dfns import PROFILE_ORDER
from protocols.reference import (
    DEMO_TABLE,
    ReferenceLookupError,
    ReferenceTableError,
    demo_table,
    load_reference_table,
    parse_reference_csv,
)

HEADER = "site,sex,age_min,age_max,measure,mean,sd,transform,source\n"
GOOD = HEADER + """\
hand,female,20,40,CDT,0.1,0.25,log10,Lab X 2024 (made up)
hand,male,20,40,CDT,0.2,0.25,log10,Lab X 2024 (made up)
hand,any,40,60,CDT,0.3,0.3,log10,Lab X 2024 (made up)
hand,female,40,60,CDT,0.25,0.3,log10,Lab X 2024 (made up)
"lower back",any,20,60,HPT,43.0,3.0,none,"Lab X, 2024 (made up)"
"""


def test_parse_and_lookup() -> None:
    table = parse_reference_csv(GOOD, "ref.csv")
    assert len(table.rows) == 5
    row = table.lookup("hand", "male", 25, "CDT")
    assert (row.mean, row.sd, row.transform, row.origin) == (0.2, 0.25, "log10", "ref.csv:3")
    assert table.lookup(" Lower  Back ", "female", 59.9, "HPT").source == "Lab X, 2024 (made up)"


def test_age_band_is_half_open() -> None:
    table = parse_reference_csv(GOOD, "ref.csv")
    assert table.lookup("hand", "female", 20, "CDT").origin == "ref.csv:2"
    assert table.lookup("hand", "female", 40, "CDT").origin == "ref.csv:5"  # 40 is in 40-60
    with pytest.raises(ReferenceLookupError):
        table.lookup("hand", "female", 60, "CDT")


def test_sex_specific_row_wins_over_any() -> None:
    table = parse_reference_csv(GOOD, "ref.csv")
    assert table.lookup("hand", "female", 45, "CDT").origin == "ref.csv:5"
    assert table.lookup("hand", "male", 45, "CDT").origin == "ref.csv:4"  # falls back to any


@pytest.mark.parametrize(("site", "sex", "age", "measure", "message"), [
    ("hand", "female", 65, "CDT", "no reference row for CDT at site 'hand', sex female, age 65 "
     "in ref.csv (rows for CDT there: female 20-40, male 20-40, any 40-60, female 40-60)"),
    ("foot", "male", 30, "CDT", "no reference row for CDT at site 'foot', sex male, age 30 "
     "in ref.csv (sites with CDT: hand)"),
    ("hand", "male", 30, "PPT", "no reference row for PPT at site 'hand', sex male, age 30 "
     "in ref.csv (the table has no PPT rows)"),
])
def test_lookup_misses_say_what_exists(site: str, sex: str, age: float, measure: str,
                                       message: str) -> None:
    table = parse_reference_csv(GOOD, "ref.csv")
    with pytest.raises(ReferenceLookupError) as err:
        table.lookup(site, sex, age, measure)
    assert str(err.value) == message


def test_lookup_checks_its_arguments() -> None:
    table = parse_reference_csv(GOOD, "ref.csv")
    with pytest.raises(ValueError, match="sex must be one of female, male, any"):
        table.lookup("hand", "f", 30, "CDT")
    with pytest.raises(ValueError, match="age must be"):
        table.lookup("hand", "female", -1, "CDT")


LINE2 = "hand,female,20,40,CDT,0.1,0.25,log10,Lab X\n"


@pytest.mark.parametrize(("text", "message"), [
    ("", "ref.csv:1: empty file: expected the header "
         "site,sex,age_min,age_max,measure,mean,sd,transform,source"),
    ("site,sex,age_min,age_max,measure,mean,transform,source\n",
     "ref.csv:1: missing column: sd (header must name "
     "site,sex,age_min,age_max,measure,mean,sd,transform,source)"),
    ("site,sex,sex,age_min,age_max,measure,mean,sd,transform,source\n",
     "ref.csv:1: duplicated column: sex"),
    (HEADER + "hand,female,20,40,CDT,0.1,0.25,log10\n",
     "ref.csv:2: expected 9 fields as in the header, got 8"),
    (HEADER + " ,female,20,40,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:2: site: must not be empty (got '')"),
    (HEADER + LINE2 + "hand,woman,20,40,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:3: sex: must be one of female, male, any (got 'woman')"),
    (HEADER + "hand,female,twenty,40,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:2: age_min: not a number (got 'twenty')"),
    (HEADER + "hand,female,-5,40,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:2: age_min: must be >= 0 (got '-5')"),
    (HEADER + "hand,female,40,40,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:2: age_max: must be greater than age_min (40) (got '40')"),
    (HEADER + "hand,female,20,40,XYZ,0.1,0.25,log10,Lab X\n",
     "ref.csv:2: measure: not a DFNS measure (one of CDT, WDT, TSL, PHS, CPT, HPT, MDT, MPT, "
     "MPS, DMA, WUR, VDT, PPT) (got 'XYZ')"),
    (HEADER + "hand,female,20,40,PHS,0.1,0.25,none,Lab X\n",
     "ref.csv:2: measure: PHS is not z-scored in DFNS (got 'PHS')"),
    (HEADER + "hand,female,20,40,CDT,,0.25,log10,Lab X\n",
     "ref.csv:2: mean: not a number (got '')"),
    (HEADER + "hand,female,20,40,CDT,nan,0.25,log10,Lab X\n",
     "ref.csv:2: mean: must be finite (got 'nan')"),
    (HEADER + "hand,female,20,40,CDT,0.1,0,log10,Lab X\n",
     "ref.csv:2: sd: must be > 0 (got '0')"),
    (HEADER + "hand,female,20,40,CDT,1.2,0.25,none,Lab X\n",
     "ref.csv:2: transform: CDT uses log10 in DFNS (mean and sd must be on that scale) "
     "(got 'none')"),
    (HEADER + "hand,female,20,40,HPT,1.6,0.05,log10,Lab X\n",
     "ref.csv:2: transform: HPT uses none in DFNS (mean and sd must be on that scale) "
     "(got 'log10')"),
    (HEADER + "hand,female,20,40,CDT,0.1,0.25,log10,\n",
     "ref.csv:2: source: must cite where the numbers come from (got '')"),
    (HEADER, "ref.csv: no reference rows"),
    (HEADER + LINE2 + "\n" + "hand,female,30,50,CDT,0.1,0.25,log10,Lab X\n",
     "ref.csv:4: age_min: band 30-50 overlaps 20-40 of ref.csv:2 (hand, female, CDT)"),
])
def test_validation_errors_are_one_line_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ReferenceTableError) as err:
        parse_reference_csv(text, "ref.csv")
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_extra_columns_case_bom_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ref.csv"
    path.write_text("\ufeffSource,Site,Sex,Age_Min,Age_Max,Measure,Mean,SD,Transform,n\n\n"
                    "Lab X,hand,Female,20,40,cdt,0.1,0.25,LOG10,31\n", encoding="utf-8")
    row = load_reference_table(path).lookup("hand", "female", 30, "CDT")
    assert (row.sex, row.measure, row.transform, row.origin) == (
        "female", "CDT", "log10", f"{path}:3")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ReferenceTableError, match=r"missing\.csv: cannot read reference table"):
        load_reference_table(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + "hand,female,20,40,CDT,0.1,0.25,log10,M\xfcller\n"
                      .encode("latin-1"))
    with pytest.raises(ReferenceTableError, match=r"latin\.csv: not UTF-8 text"):
        load_reference_table(latin)


def test_demo_table_is_synthetic_and_complete() -> None:
    assert "SYNTHETIC" in DEMO_TABLE
    table = demo_table()
    assert all(r.source == "SYNTHETIC DEMO DATA - not for clinical use" for r in table.rows)
    for site in ("hand dorsum", "foot dorsum"):
        for sex in ("female", "male"):
            for age in (18, 39, 40, 59, 60, 79):
                for measure in PROFILE_ORDER:
                    table.lookup(site, sex, age, measure)
    for measure in PROFILE_ORDER:
        table.lookup("lower back", "female", 50, measure)
    path = Path(__file__).parents[1] / "protocols" / "data" / DEMO_TABLE
    assert len(load_reference_table(path).rows) == len(table.rows)
