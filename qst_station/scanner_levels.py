"""Calibrated levels for scanner runs: the participant's newest heat calibration in a folder."""

from __future__ import annotations

from pathlib import Path

import h5py

from protocols.files import ProtocolFile
from protocols.paradigm_file import VAS_LEVEL, ParadigmFile
from qst_station.calibration import CalibrationError, calibrated_temperatures


class CalibrationMissing(ValueError):
    """A scanner run needs calibrated levels that no session provides."""


def needed_levels(protocol: ProtocolFile) -> list[str]:
    """The ``VASnn`` levels ``protocol`` uses that its own ``[levels]`` do not give."""
    if not isinstance(protocol, ParadigmFile):
        return []
    return sorted({t.level for t in protocol.trials if t.level and VAS_LEVEL.match(t.level)
                   and t.level not in protocol.levels})


def newest_calibration(participant: str, folder: str | Path) -> Path | None:
    """The newest session file of ``participant`` in ``folder`` with calibrated temperatures."""
    candidates = []
    for path in Path(folder).glob(f"sub-{participant}_*heat-calibration*.h5"):
        try:
            with h5py.File(path, "r", locking=False) as handle:
                if handle.attrs.get("participant") != participant:
                    continue
        except OSError:
            continue
        candidates.append(path)
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            calibrated_temperatures(path)
        except (CalibrationError, OSError, KeyError, ValueError):
            continue
        return path
    return None


def calibrate_for(protocol: ProtocolFile, participant: str, folder: str | Path
                  ) -> ProtocolFile:
    """``protocol`` with its VAS levels from the participant's newest calibration in
    ``folder``; unchanged if it needs none; CalibrationMissing naming what to run."""
    needed = needed_levels(protocol)
    if not needed:
        return protocol
    found = newest_calibration(participant, folder)
    if found is None:
        raise CalibrationMissing(f"{protocol.name} needs {', '.join(needed)} from a heat "
                                 f"calibration of {participant}: run heat-calibration first")
    assert isinstance(protocol, ParadigmFile)
    return protocol.with_calibration(calibrated_temperatures(found))
