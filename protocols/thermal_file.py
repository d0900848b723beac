"""The ``thermal-limits`` protocol kind: method-of-limits ramps on a thermode (DFNS thermal)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols.files import ProtocolFile, Strict, register
from protocols.thermal import RampProcedure, RampTest, Sequence


class RampTestEntry(Strict):
    test: Literal["CDT", "WDT", "TSL", "CPT", "HPT"]
    baseline_c: float = Field(32.0, ge=20.0, le=45.0)
    rate_c_s: float = Field(1.0, gt=0.0, le=300.0)
    cold_limit_c: float = Field(0.0, ge=-10.0, le=32.0)
    warm_limit_c: float = Field(50.0, ge=32.0, le=60.0)
    return_rate_c_s: float = Field(1.0, gt=0.0, le=300.0)
    repetitions: int = Field(3, ge=1, le=10)
    isi_s: tuple[float, float] = (4.0, 6.0)
    site: str = ""  # this test's site (default: the protocol's)
    instruction: str = ""
    participant_instruction: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> RampTestEntry:
        low, high = self.isi_s
        if not 0.0 <= low <= high <= 600.0:
            raise ValueError(f"isi_s must be [min, max] seconds with 0 <= min <= max <= 600, "
                             f"got {list(self.isi_s)}")
        if not self.cold_limit_c < self.baseline_c < self.warm_limit_c:
            raise ValueError("the baseline must lie between cold_limit_c and warm_limit_c")
        return self

    def ramp_test(self, site: str) -> RampTest:
        """The test, at its own ``site`` if it names one, else at ``site``."""
        fields = self.model_dump()
        return RampTest(site=fields.pop("site") or site, **fields)


@register("thermal-limits")
class ThermalLimitsFile(ProtocolFile):
    tests: list[RampTestEntry] = Field(min_length=1)
    roles = ("thermode", "buttons")

    def steps(self) -> list[str]:
        return [t.test for t in self.tests]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        self.check_device(capabilities["thermode"])

    def check_device(self, capabilities: Any) -> None:
        """Refuse (CapabilityError naming the step) any ramp the thermode would refuse: to
        its cut-off without a press, the return and the dose included."""
        for number, entry in enumerate(self.tests, start=1):
            what = f"{self.name} step {number} ({entry.test})"
            for direction in sorted(set(entry.ramp_test("").directions())):
                limit = entry.cold_limit_c if direction == "cold" else entry.warm_limit_c
                capabilities.require_stimulus(entry.baseline_c, limit, entry.rate_c_s,
                                              entry.return_rate_c_s, 0.0, what=what)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Sequence:
        where = self.protocol.site if site is None else site
        return Sequence([RampProcedure(t.ramp_test(where), rng) for t in self.tests])
