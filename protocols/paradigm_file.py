"""Protocol kind ``fmri-run``: a scanner run's paradigm file (TOML, trials inline or in TSV).

    [protocol]
    name = "fmri-heat"
    title = "..."
    kind = "fmri-run"
    device = "thermode"          # or "cuff"

    [scanner]
    tr_s = 2.0
    dummy_volumes = 4
    volumes = 150

    [stimulus]                   # defaults for every trial
    plateau_s = 4.0

    [levels]                     # optional: what a named level is (°C or kPa)
    VAS50 = 46.0

    [[trials]]
    onset_s = 12.0               # or onset_volume = 6 (from the first counted volume)
    level = "VAS50"              # or target_c = 46.0 / pressure_kpa = 40.0

or ``trials_file = "run1.tsv"`` (tab-separated, columns as the trial keys, next to this file).
``VASnn`` levels come from a heat calibration (``T30``/``T50``/``T70``) given at run time or
from ``[levels]``; see docs/fmri-runs.md.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, model_validator

from protocols.base import ProtocolError
from protocols.files import ProtocolFile, ProtocolFileError, Strict, register
from protocols.paradigm import ParadigmRun, Scanner, TrialPlan, schedule

VAS_LEVEL = re.compile(r"^VAS(\d{1,2})$")


class ScannerEntry(Strict):
    tr_s: float = Field(gt=0.1, le=20.0)
    dummy_volumes: int = Field(0, ge=0, le=50)
    volumes: int = Field(ge=1, le=10000)
    start: str = Field("software", pattern=r"^(software|device-trigger)$")


class StimulusEntry(Strict):
    """Defaults for every trial (heat in °C and °C/s, pressure in kPa and kPa/s)."""

    baseline_c: float = Field(32.0, ge=20.0, le=40.0)
    rise_c_s: float = Field(10.0, gt=0.0, le=300.0)
    return_c_s: float = Field(10.0, gt=0.0, le=300.0)
    rise_kpa_s: float = Field(10.0, gt=0.0, le=100.0)
    return_kpa_s: float = Field(20.0, gt=0.0, le=100.0)
    outlet: int = Field(1, ge=1, le=2)
    plateau_s: float = Field(4.0, ge=0.0, le=600.0)
    cue_s: float = Field(0.0, ge=0.0, le=10.0)
    rating: bool = True
    rating_delay_s: float = Field(1.0, ge=0.0, le=30.0)
    rating_timeout_s: float = Field(6.0, gt=0.0, le=60.0)
    jitter_s: float = Field(0.0, ge=0.0, le=30.0)


class TrialEntry(Strict):
    onset_s: float | None = Field(None, ge=0.0)
    onset_volume: int | None = Field(None, ge=0)
    level: str | None = None
    target_c: float | None = Field(None, ge=0.0, le=60.0)
    pressure_kpa: float | None = Field(None, gt=0.0, le=100.0)
    plateau_s: float | None = Field(None, ge=0.0, le=600.0)
    cue_s: float | None = Field(None, ge=0.0, le=10.0)
    rating: bool | None = None

    @model_validator(mode="after")
    def _one_each(self) -> TrialEntry:
        if (self.onset_s is None) == (self.onset_volume is None):
            raise ValueError("give exactly one of onset_s and onset_volume")
        given = [k for k in ("level", "target_c", "pressure_kpa") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of level, target_c and pressure_kpa")
        return self


@register("fmri-run")
class ParadigmFile(ProtocolFile):
    scanner: ScannerEntry
    stimulus: StimulusEntry = Field(default_factory=StimulusEntry)
    levels: dict[str, float] = Field(default_factory=dict)
    trials: list[TrialEntry] = Field(default_factory=list)
    trials_file: str = ""
    instruction: str = ""
    participant_instruction: str = ""

    @model_validator(mode="before")
    @classmethod
    def _trials_from_tsv(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("trials_file"):
            if data.get("trials"):
                raise ValueError("give the trials inline or in trials_file, not both")
            data = {**data, "trials": _read_tsv(str(data["trials_file"]),
                                                str(data.get("source", "")))}
        return data

    @model_validator(mode="after")
    def _fits(self) -> ParadigmFile:
        if not self.trials:
            raise ValueError("a scanner run needs at least one trial")
        if self.protocol.device not in ("thermode", "cuff"):
            raise ValueError(f"protocol.device must be thermode or cuff, got "
                             f"{self.protocol.device!r}")
        heat = self.protocol.device == "thermode"
        for i, trial in enumerate(self.trials, start=1):
            if heat and trial.pressure_kpa is not None:
                raise ValueError(f"trials[{i}]: pressure_kpa on a thermode run")
            if not heat and trial.target_c is not None:
                raise ValueError(f"trials[{i}]: target_c on a cuff run")
            if trial.level is not None and heat and not VAS_LEVEL.match(trial.level) \
                    and trial.level not in self.levels:
                raise ValueError(f"trials[{i}]: level {trial.level!r} is neither VASnn nor in "
                                 "[levels]")
            if trial.level is not None and not heat and trial.level not in self.levels:
                raise ValueError(f"trials[{i}]: level {trial.level!r} is not in [levels] (kPa)")
        return self

    @property
    def roles(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.protocol.device, "rating", "scanner")

    def steps(self) -> list[str]:
        names = sorted({t.level or (f"{t.target_c:g} °C" if t.target_c is not None
                                    else f"{t.pressure_kpa:g} kPa") for t in self.trials})
        return [f"{len(self.trials)} trials ({', '.join(names)}) over "
                f"{self.scanner.volumes} volumes"]

    def with_calibration(self, temperatures: Mapping[str, float]) -> ParadigmFile:
        """A copy whose ``VASnn`` levels take ``{"T50": 46.0, ...}`` (a heat calibration);
        the file's own ``[levels]`` entries win."""
        found = {f"VAS{name[1:]}": float(v) for name, v in temperatures.items()
                 if name.startswith("T")}
        return self.model_copy(update={"levels": {**found, **self.levels}})

    def plans(self) -> list[TrialPlan]:
        """The trials with their targets resolved; ProtocolError naming an unknown level."""
        return [self._plan(i, t) for i, t in enumerate(self.trials, start=1)]

    def _plan(self, number: int, trial: TrialEntry) -> TrialPlan:
        s, heat = self.stimulus, self.protocol.device == "thermode"
        onset = (trial.onset_s if trial.onset_s is not None
                 else trial.onset_volume * self.scanner.tr_s)
        if trial.level is not None:
            if trial.level not in self.levels:
                raise ProtocolError(
                    f"{self.name}: trial {number} asks for {trial.level}, which has no "
                    "temperature: give a heat calibration (run heat-calibration, then "
                    "--calibration CAL.h5) or a [levels] table")
            target, label = self.levels[trial.level], trial.level
        elif heat:
            target, label = float(trial.target_c), f"{trial.target_c:g}C"
        else:
            target, label = float(trial.pressure_kpa), f"{trial.pressure_kpa:g}kPa"
        return TrialPlan(
            onset_s=float(onset), modality="heat" if heat else "pressure", level=label,
            target=target, baseline=s.baseline_c if heat else 0.0,
            rise=s.rise_c_s if heat else s.rise_kpa_s, ret=s.return_c_s if heat else s.return_kpa_s,
            plateau_s=s.plateau_s if trial.plateau_s is None else trial.plateau_s,
            cue_s=s.cue_s if trial.cue_s is None else trial.cue_s,
            rating=s.rating if trial.rating is None else trial.rating,
            rating_delay_s=s.rating_delay_s, rating_timeout_s=s.rating_timeout_s,
            outlet=s.outlet)

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        for number, plan in enumerate(self.plans(), start=1):
            what = f"{self.name} trial {number} ({plan.level})"
            if plan.modality == "heat":
                capabilities["thermode"].require_stimulus(plan.baseline, plan.target, plan.rise,
                                                          plan.ret, plan.plateau_s, what=what)
            else:
                capabilities["cuff"].require(max_kpa=plan.target, outlet=plan.outlet, what=what)

    def scanner_settings(self) -> Scanner:
        c = self.scanner
        return Scanner(c.tr_s, c.dummy_volumes, c.volumes, c.start)

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> ParadigmRun:
        trials = schedule(self.scanner_settings(), self.plans(), rng, self.stimulus.jitter_s)
        return ParadigmRun(self.scanner_settings(), trials,
                           self.protocol.site if site is None else site, self.instruction,
                           self.participant_instruction)


def _read_tsv(name: str, source: str) -> list[dict[str, Any]]:
    """Rows of a trials TSV as trial dicts (empty cells left out); errors name file:line."""
    if source.endswith(" (built in)"):
        where = resources.files("protocols").joinpath("data", name)
        label = f"{name} (built in)"
    else:
        where = (Path(source).parent if source else Path(".")) / name
        label = str(where)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolFileError(f"{label}: cannot read the trials file: "
                                f"{exc.strerror or exc}") from None
    rows = list(csv.DictReader(io.StringIO(text), delimiter="\t"))
    out = []
    for line, row in enumerate(rows, start=2):
        entry = {k.strip(): _cell(v) for k, v in row.items() if k and v not in (None, "", "n/a")}
        try:
            out.append(TrialEntry.model_validate(entry).model_dump(exclude_none=True))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            message = err["msg"].removeprefix("Value error, ")
            raise ProtocolFileError(f"{label}:{line}: {field}: {message}") from None
    return out


def _cell(text: str) -> Any:
    value = text.strip()
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value
