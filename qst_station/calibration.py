"""Temperatures from an earlier heat calibration, for later runs (e.g. in the scanner)."""

from __future__ import annotations

from pathlib import Path

from qst_station import session


class CalibrationError(ValueError):
    """The session holds no usable calibration."""


def calibrated_temperatures(path: str | Path) -> dict[str, float]:
    """``{"T30": 45.5, "T50": 46.0, ...}`` from the ``result`` events of a heat-calibration
    session (the latest value of each); CalibrationError if there are none."""
    results = session.open(path).results()
    found = {name: float(r["value"]) for name, r in results.items()
             if name.startswith("T") and name[1:].replace(".", "", 1).isdigit()
             and r.get("unit") == "degC" and r.get("value") is not None}
    if not found:
        raise CalibrationError(f"{path}: no calibrated temperatures (run heat-calibration "
                               "first)")
    return dict(sorted(found.items(), key=lambda item: float(item[0][1:])))
