"""The ``dfns-mechanical`` protocol kind: examiner-guided MDT, MPT, MPS/DMA, WUR, VDT."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols.files import ProtocolFile, Strict, register
from protocols.mechanical import (
    MdtProcedure,
    MpsDmaProcedure,
    MptProcedure,
    PinprickTsp,
    VdtProcedure,
    WurProcedure,
)
from protocols.thermal import Sequence


class MechanicalTest(Strict):
    test: Literal["MDT", "MPT", "MPS", "WUR", "VDT"]
    start_force_mN: float | None = Field(None, gt=0.0, le=512.0)  # MDT, MPT
    series_pairs: int = Field(5, ge=1, le=10)  # MDT, MPT
    repeats: int = Field(5, ge=1, le=10)  # MPS: each stimulus this often
    force_mN: float = Field(256.0, gt=0.0, le=512.0)  # WUR
    pairs: int = Field(5, ge=1, le=10)  # WUR
    repetitions: int = Field(3, ge=1, le=10)  # VDT
    site: str = ""  # this test's site (default: the protocol's)

    @model_validator(mode="after")
    def _only_its_own(self) -> MechanicalTest:
        own = {"MDT": {"start_force_mN", "series_pairs"}, "MPT": {"start_force_mN",
               "series_pairs"}, "MPS": {"repeats"}, "WUR": {"force_mN", "pairs"},
               "VDT": {"repetitions"}}[self.test]
        foreign = sorted(self.model_fields_set - own - {"test", "site"})
        if foreign:
            raise ValueError(f"{', '.join(foreign)} not used by {self.test}")
        return self

    def build(self, rng: np.random.Generator, site: str) -> Any:
        start = {} if self.start_force_mN is None else {"start_force_mN": self.start_force_mN}
        match self.test:
            case "MDT":
                return MdtProcedure(series_pairs=self.series_pairs, site=site, **start)
            case "MPT":
                return MptProcedure(series_pairs=self.series_pairs, site=site, **start)
            case "MPS":
                return MpsDmaProcedure(rng, repeats=self.repeats, site=site)
            case "WUR":
                return WurProcedure(force_mN=self.force_mN, pairs=self.pairs, site=site)
        return VdtProcedure(repetitions=self.repetitions, site=site)


@register("dfns-mechanical")
class MechanicalFile(ProtocolFile):
    tests: list[MechanicalTest] = Field(min_length=1)
    roles = ("examiner",)

    def steps(self) -> list[str]:
        return [name for t in self.tests for name in (["MPS", "DMA"] if t.test == "MPS"
                                                       else [t.test])]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        """Applied by hand: nothing for a device to refuse."""

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Sequence:
        where = self.protocol.site if site is None else site
        return Sequence([t.build(rng, t.site or where) for t in self.tests])


class PinprickTrain(Strict):
    force_mN: float = Field(256.0, gt=0.0, le=512.0)
    pulses: int = Field(10, ge=2, le=30)
    rate_hz: float = Field(1.0, gt=0.0, le=5.0)
    pairs: int = Field(3, ge=1, le=10)


@register("tsp-pinprick")
class PinprickTspFile(ProtocolFile):
    train: PinprickTrain = Field(default_factory=PinprickTrain)
    roles = ("examiner",)

    def steps(self) -> list[str]:
        return ["TSP"]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        """Applied by hand: nothing for a device to refuse."""

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> PinprickTsp:
        t = self.train
        return PinprickTsp(force_mN=t.force_mN, pairs=t.pairs, train_length=t.pulses,
                           train_rate_hz=t.rate_hz,
                           site=self.protocol.site if site is None else site)
