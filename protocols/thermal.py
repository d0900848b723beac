"""DFNS thermal testing by the method of limits: CDT, WDT, TSL with PHS, CPT, HPT.

Each ramp starts at the baseline (32 °C) and runs at 1 °C/s towards a cut-off (0 or 50 °C)
until the participant presses the button; the device then returns to the baseline (1 °C/s
after detection tests, 5 °C/s after pain tests). The value includes the reaction time, as
in the DFNS standard (Rolke et al. 2006):

* CDT, WDT: mean absolute difference from the baseline of 3 ramps (°C), log10 for z.
* TSL: alternating warm and cold ramps (3 pairs, "recalled"); mean warm-minus-cold
  difference (°C), log10 for z. PHS: number of cold ramps of TSL felt as warm or hot (0-3).
* CPT, HPT: arithmetic mean temperature of 3 ramps (°C), no transform.

A ramp that reaches its cut-off without a press counts as the cut-off value and is flagged.
The inter-stimulus interval is drawn uniformly from ``isi_s`` with the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.base import (
    CUTOFF,
    PARADOXICAL,
    STOPPED,
    THERMAL_RAMP,
    Answer,
    InOrder,
    Measure,
    ProtocolError,
    Stimulus,
    isi_schedule,
    outlier_flags,
)

DETECTION = frozenset({"CDT", "WDT", "TSL"})


@dataclass(frozen=True)
class RampTest:
    """One method-of-limits test as a protocol file defines it."""

    test: str  # CDT, WDT, TSL, CPT or HPT
    baseline_c: float = 32.0
    rate_c_s: float = 1.0
    cold_limit_c: float = 0.0
    warm_limit_c: float = 50.0
    return_rate_c_s: float = 1.0
    repetitions: int = 3  # ramps (TSL: warm/cold pairs)
    isi_s: tuple[float, float] = (4.0, 6.0)
    site: str = ""
    instruction: str = ""
    participant_instruction: str = ""

    def directions(self) -> list[str]:
        """The direction of each ramp in order."""
        if self.test == "TSL":
            return ["warm", "cold"] * self.repetitions
        if self.test in ("CDT", "CPT"):
            return ["cold"] * self.repetitions
        if self.test in ("WDT", "HPT"):
            return ["warm"] * self.repetitions
        raise ProtocolError(f"{self.test!r} is not a thermal method-of-limits test "
                            "(CDT, WDT, TSL, CPT, HPT)")


class RampProcedure:
    """The ramps of one :class:`RampTest`, their answers and the DFNS value."""

    def __init__(self, spec: RampTest, rng: np.random.Generator) -> None:
        self.spec = spec
        self._directions = spec.directions()
        self._isi = isi_schedule(len(self._directions), spec.isi_s, rng)
        if spec.test == "TSL":  # "no pause at baseline" between the ramps of a pair
            self._isi = [isi if i % 2 == 0 else 0.0 for i, isi in enumerate(self._isi)]
        self.answers: list[Answer] = []

    @property
    def done(self) -> bool:
        return len(self.answers) == len(self._directions)

    def next_stimulus(self) -> Stimulus | None:
        if self.done:
            return None
        i = len(self.answers)
        direction, s = self._directions[i], self.spec
        limit = s.cold_limit_c if direction == "cold" else s.warm_limit_c
        repetition = i // 2 + 1 if s.test == "TSL" else i + 1
        return Stimulus(
            s.test, THERMAL_RAMP,
            {"baseline_c": s.baseline_c, "limit_c": limit, "rate_c_s": s.rate_c_s,
             "return_rate_c_s": s.return_rate_c_s, "direction": direction},
            repetition=repetition, isi_s=self._isi[i], site=s.site,
            instruction=s.instruction or f"{s.test} {repetition}/{s.repetitions}: "
                                         f"{direction} ramp to at most {limit:g} °C",
            participant_instruction=s.participant_instruction)

    def record(self, answer: Answer) -> None:
        stimulus = self.next_stimulus()
        if stimulus is None:
            raise ProtocolError(f"{self.spec.test}: all ramps are answered")
        allowed = {STOPPED, CUTOFF}
        if self.spec.test == "TSL" and stimulus.params["direction"] == "cold":
            allowed.add(PARADOXICAL)
        if answer.kind not in allowed:
            raise ProtocolError(f"{self.spec.test}: a ramp is answered with "
                                f"{sorted(allowed)}, not {answer.kind!r}")
        if answer.value is None or not np.isfinite(answer.value):
            raise ProtocolError(f"{self.spec.test}: the answer needs the temperature reached")
        self.answers.append(answer)

    def result(self) -> list[Measure]:
        s = self.spec
        temps = [float(a.value) for a in self.answers if a.value is not None]
        if not temps:
            return []
        flags = ("cutoff-reached",) if any(a.kind == CUTOFF for a in self.answers) else ()
        if s.test in ("CPT", "HPT"):
            return [Measure(s.test, float(np.mean(temps)), "degC", "none", tuple(temps),
                            flags + outlier_flags(temps, log_scale=False), s.site)]
        if s.test in ("CDT", "WDT"):
            diffs = tuple(abs(t - s.baseline_c) for t in temps)
            return [Measure(s.test, float(np.mean(diffs)), "degC", "log10", diffs,
                            flags + outlier_flags(diffs, log_scale=True), s.site)]
        return self._tsl(temps, flags)

    def _tsl(self, temps: list[float], flags: tuple[str, ...]) -> list[Measure]:
        s = self.spec
        pairs = [(temps[i], temps[i + 1]) for i in range(0, len(temps) - 1, 2)]
        limens = tuple(warm - cold for warm, cold in pairs)
        cold_answers = self.answers[1::2]
        phs = sum(a.kind == PARADOXICAL for a in cold_answers)
        out = [Measure("PHS", float(phs), "count", "none",
                       tuple(float(a.kind == PARADOXICAL) for a in cold_answers), (), s.site)]
        if limens:
            out.insert(0, Measure("TSL", float(np.mean(limens)), "degC", "log10", limens,
                                  flags, s.site, {"phs_count": phs}))
        return out


Sequence = InOrder  # the thermal battery is its tests in order


def dfns_thermal(rng: np.random.Generator, site: str = "", baseline_c: float = 32.0
                 ) -> Sequence:
    """The DFNS thermal battery with its standard parameters."""
    tests = [RampTest("CDT", baseline_c, site=site), RampTest("WDT", baseline_c, site=site),
             RampTest("TSL", baseline_c, site=site),
             RampTest("CPT", baseline_c, return_rate_c_s=5.0, site=site),
             RampTest("HPT", baseline_c, return_rate_c_s=5.0, site=site)]
    return Sequence([RampProcedure(t, rng) for t in tests])
