"""Protocol files: built-ins load, bad fields are named with their line, devices are checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drivers.interfaces import CapabilityError, ThermalCapabilities
from protocols.files import ProtocolFileError, builtin_names, load_protocol, parse_protocol

BUILTIN = Path(__file__).resolve().parent.parent / "protocols" / "data" / "dfns-thermal.toml"
TCS = ThermalCapabilities("TCS II", 5, 0.0, 50.0, 300.0, 300.0)


def test_builtin_dfns_thermal_loads_and_yields_the_battery() -> None:
    assert "dfns-thermal" in builtin_names()
    protocol = load_protocol("dfns-thermal")
    assert [t.test for t in protocol.tests] == ["CDT", "WDT", "TSL", "CPT", "HPT"]
    first = protocol.procedure(np.random.default_rng(0)).next_stimulus()
    assert first.site == "hand dorsum" and "cold" in first.participant_instruction
    assert load_protocol(BUILTIN).name == "dfns-thermal"
    protocol.check_device(TCS)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('test = "CPT"\nreturn_rate_c_s = 5.0', 'test = "CPT"\nreturn_rate_c_s = -5.0',
     ":34: tests[4] (CPT).return_rate_c_s: Input should be greater than 0 (got -5.0)"),
    ('test = "HPT"', 'test = "HPX"', ":39: tests[5] (HPX).test: Input should be 'CDT', 'WDT'"),
    ('test = "TSL"\n', 'test = "TSL"\nrepetition = 2\n',
     ":27: tests[3] (TSL).repetition: Extra inputs are not permitted"),
    ('isi_s = [2.0, 4.0]', 'isi_s = [5.0, 4.0]',
     ":25: tests[3] (TSL): isi_s must be [min, max] seconds"),
    ('kind = "thermal-limits"', 'kind = "magic"',
     ":8: protocol.kind: must be one of "),
])
def test_bad_fields_are_one_line_with_file_and_line(old: str, new: str, message: str) -> None:
    text = BUILTIN.read_text()
    assert old in text
    with pytest.raises(ProtocolFileError) as caught:
        parse_protocol(text.replace(old, new, 1), "my.toml")
    assert str(caught.value).startswith("my.toml" + message), str(caught.value)
    if "kind" in message:
        assert "thermal-limits" in str(caught.value)
        assert str(caught.value).endswith("(got 'magic')")
    assert "\n" not in str(caught.value)


def test_unknown_names_and_files() -> None:
    with pytest.raises(ProtocolFileError, match="no protocol named 'dfns-termal' .*built in"):
        load_protocol("dfns-termal")
    with pytest.raises(ProtocolFileError, match="cannot read protocol file"):
        load_protocol("/nonexistent/p.toml")
    with pytest.raises(ProtocolFileError, match="not valid TOML"):
        parse_protocol("[protocol", "x.toml")


def test_a_device_that_cannot_do_a_step_is_refused_before_anything_starts() -> None:
    protocol = load_protocol("dfns-thermal")
    medoc_ats = ThermalCapabilities("Medoc ATS", 1, 0.0, 55.0, 8.0, 8.0, ramp_and_hold=False,
                                    programs=True)
    with pytest.raises(CapabilityError, match=r"dfns-thermal step 1 \(CDT\) needs: stimuli "
                                              "defined by the program"):
        protocol.check_device(medoc_ats)
    warm_only = ThermalCapabilities("probe", 1, 20.0, 50.0, 10.0, 10.0)
    with pytest.raises(CapabilityError, match=r"step 1 \(CDT\) needs: 0 °C \(device minimum"):
        protocol.check_device(warm_only)


def test_every_table_gets_its_line_and_tests_refuse_foreign_fields() -> None:
    text = (Path(__file__).resolve().parent.parent / "protocols" / "data" /
            "heat-calibration.toml").read_text()
    with pytest.raises(ProtocolFileError, match=r"^x.toml:21: pulse.hold_s: Input should be "
                                                r"greater than or equal to 0 \(got -1.0\)$"):
        parse_protocol(text.replace("hold_s = 8.0", "hold_s = -1.0"), "x.toml")
    mech = (Path(__file__).resolve().parent.parent / "protocols" / "data" /
            "dfns-mechanical.toml").read_text()
    bad = mech.replace('test = "MDT"\nstart_force_mN = 16.0',
                       'test = "MDT"\nstart_force_mN = 16.0\nforce_mN = 128.0')
    with pytest.raises(ProtocolFileError, match=r"^m.toml:11: tests\[1\] \(MDT\): force_mN not "
                                                r"used by MDT$"):
        parse_protocol(bad, "m.toml")
