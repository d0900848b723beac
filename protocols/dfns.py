"""DFNS per-measure conventions as data: domain, unit, transform and z-score sign.

From the DFNS standardized QST battery (Rolke et al. 2006). Items the project's science notes
mark "recalled" (standard practice that could not be re-read in a published source) are
configurable defaults, named as recalled where they are used:

* the z-score sign convention itself (positive = gain of function),
* MPS: 0.1 is added to the rating before log10 (:data:`MPS_LOG_OFFSET`),
* TSL: 3 pairs of ramps; WUR: a 256 mN pinprick (protocol details, not used here),
* :data:`PROFILE_ORDER`, the left-to-right order of DFNS profile figures.

Verified: log10 transform for all measures except PHS, CPT, HPT and VDT; |z| > 1.96 is outside
the 95 % range of healthy subjects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

THERMAL, MECHANICAL, PRESSURE = "thermal", "mechanical", "pressure"
LOG10, NONE = "log10", "none"
INVERTED, AS_IS = -1, 1  # multiply the standardized difference by this: + = gain of function

ABNORMAL_Z = 1.96  # |z| above this is outside the 95 % range of healthy subjects (verified)
MPS_LOG_OFFSET = 0.1  # added to the MPS rating before log10 (recalled)


@dataclass(frozen=True)
class Convention:
    """How one DFNS measure is valued and z-scored."""

    measure: str  # DFNS abbreviation
    title: str
    domain: str  # THERMAL, MECHANICAL or PRESSURE
    unit: str  # unit of Measure.value
    transform: str  # LOG10 or NONE, applied before the z-score
    sign: int  # INVERTED or AS_IS; 0 when not z-scored
    z_scored: bool = True
    log_offset: float = 0.0  # added to the value before log10 (MPS only, recalled)

    def transformed(self, value: float) -> float:
        """The value on the scale of the reference mean and SD (raises on log10 of <= 0)."""
        if self.transform == NONE:
            return float(value)
        shifted = float(value) + self.log_offset
        if not shifted > 0.0:
            plus = f" + {self.log_offset:g}" if self.log_offset else ""
            raise ValueError(f"{self.measure}: log10 needs {self.measure}{plus} > 0 "
                             f"(got {value!r} {self.unit}): cannot take log10")
        return math.log10(shifted)


_C = "degC"  # as in the session file; "°C" is accepted as the same unit
UNIT_ALIASES = {"°C": "degC"}
CONVENTIONS: dict[str, Convention] = {c.measure: c for c in (
    Convention("CDT", "cold detection threshold (difference from baseline)", THERMAL, _C,
               LOG10, INVERTED),
    Convention("WDT", "warm detection threshold (difference from baseline)", THERMAL, _C,
               LOG10, INVERTED),
    Convention("TSL", "thermal sensory limen (warm-cold difference)", THERMAL, _C,
               LOG10, INVERTED),
    Convention("PHS", "paradoxical heat sensations (count 0-3)", THERMAL, "count",
               NONE, 0, z_scored=False),
    Convention("CPT", "cold pain threshold", THERMAL, _C, NONE, AS_IS),
    Convention("HPT", "heat pain threshold", THERMAL, _C, NONE, INVERTED),
    Convention("MDT", "mechanical detection threshold (von Frey)", MECHANICAL, "mN",
               LOG10, INVERTED),
    Convention("MPT", "mechanical pain threshold (pinprick)", MECHANICAL, "mN",
               LOG10, INVERTED),
    Convention("MPS", "mechanical pain sensitivity (pinprick ratings)", MECHANICAL, "NRS 0-100",
               LOG10, AS_IS, log_offset=MPS_LOG_OFFSET),
    Convention("DMA", "dynamic mechanical allodynia (light-touch ratings)", MECHANICAL,
               "NRS 0-100", NONE, 0, z_scored=False),
    Convention("WUR", "wind-up ratio (train / single pinprick rating)", MECHANICAL, "ratio",
               LOG10, AS_IS),
    Convention("VDT", "vibration detection threshold (64 Hz tuning fork)", MECHANICAL, "/8",
               NONE, AS_IS),
    Convention("PPT", "pressure pain threshold (algometer, 1 cm² probe)", PRESSURE, "kPa",
               LOG10, INVERTED),
)}

# Test order of the battery (as listed in the DFNS protocol)
TEST_ORDER: tuple[str, ...] = tuple(CONVENTIONS)
# Left-to-right order of the z-scored measures in DFNS profile figures (recalled layout)
PROFILE_ORDER: tuple[str, ...] = (
    "CDT", "WDT", "TSL", "CPT", "HPT", "PPT", "MPT", "MPS", "WUR", "MDT", "VDT",
)
Z_SCORED: frozenset[str] = frozenset(m for m, c in CONVENTIONS.items() if c.z_scored)


def normalized_unit(unit: str) -> str:
    """The unit as spelled in :data:`CONVENTIONS` (``°C`` -> ``degC``)."""
    return UNIT_ALIASES.get(unit.strip(), unit.strip())


def convention(measure: str) -> Convention:
    """The convention of a DFNS measure (KeyError naming the known ones otherwise)."""
    try:
        return CONVENTIONS[measure]
    except KeyError:
        raise KeyError(f"{measure!r} is not a DFNS measure "
                       f"(known: {', '.join(TEST_ORDER)})") from None
