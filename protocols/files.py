"""Protocol files: TOML validated against a schema, one-line errors naming the field and line.

Built-in files live in ``protocols/data/*.toml``; ``qst-station protocols`` lists them. A
file has a ``[protocol]`` table and one ``[[tests]]`` table per test, in order:

    [protocol]
    name = "dfns-thermal"
    title = "DFNS thermal testing"
    kind = "thermal-limits"
    device = "thermode"

    [[tests]]
    test = "CDT"
    rate_c_s = 1.0
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.interfaces import ThermalCapabilities
from protocols.thermal import RampProcedure, RampTest, Sequence


class ProtocolFileError(ValueError):
    """A protocol file that cannot be used; the message is one line naming file:line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RampTestEntry(_Strict):
    test: Literal["CDT", "WDT", "TSL", "CPT", "HPT"]
    baseline_c: float = Field(32.0, ge=20.0, le=45.0)
    rate_c_s: float = Field(1.0, gt=0.0, le=300.0)
    cold_limit_c: float = Field(0.0, ge=-10.0, le=32.0)
    warm_limit_c: float = Field(50.0, ge=32.0, le=60.0)
    return_rate_c_s: float = Field(1.0, gt=0.0, le=300.0)
    repetitions: int = Field(3, ge=1, le=10)
    isi_s: tuple[float, float] = (4.0, 6.0)
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
        return RampTest(site=site, **self.model_dump())


class ProtocolHeader(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    title: str
    kind: Literal["thermal-limits"]
    device: str = "thermode"
    site: str = ""
    description: str = ""


class ProtocolFile(_Strict):
    protocol: ProtocolHeader
    tests: list[RampTestEntry] = Field(min_length=1)
    source: str = Field("", exclude=True)

    @property
    def name(self) -> str:
        return self.protocol.name

    def check_device(self, capabilities: ThermalCapabilities) -> None:
        """Refuse (CapabilityError naming the step) if any stimulus of the protocol is beyond
        the device's configured limits or abilities; checked before anything starts."""
        for number, entry in enumerate(self.tests, start=1):
            directions = set(entry.ramp_test("").directions())
            capabilities.require(
                min_celsius=entry.cold_limit_c if "cold" in directions else None,
                max_celsius=entry.warm_limit_c if "warm" in directions else None,
                rise_rate=entry.rate_c_s, return_rate=entry.return_rate_c_s,
                ramp_and_hold=True, what=f"{self.name} step {number} ({entry.test})")

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Sequence:
        """A fresh state machine for one run (``site`` overrides the file's)."""
        where = self.protocol.site if site is None else site
        return Sequence([RampProcedure(t.ramp_test(where), rng) for t in self.tests])


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in _data().iterdir()
                  if p.name.endswith(".toml"))


def load_protocol(name_or_path: str | Path) -> ProtocolFile:
    """A built-in protocol by name, or a protocol file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ProtocolFileError(f"{path}: cannot read protocol file: {exc.strerror}") from None
        return parse_protocol(text, str(path))
    if str(name_or_path) not in builtin_names():
        raise ProtocolFileError(f"no protocol named {str(name_or_path)!r} (built in: "
                                f"{', '.join(builtin_names())}; or give a .toml file)")
    text = _data().joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
    return parse_protocol(text, f"{name_or_path} (built in)")


def parse_protocol(text: str, name: str = "<protocol>") -> ProtocolFile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolFileError(f"{name}: not valid TOML: {exc}") from None
    try:
        return ProtocolFile.model_validate({**data, "source": name})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = _field_name(loc, data)
        value = err.get("input")
        got = "" if value is None or isinstance(value, dict) else f" (got {value!r})"
        message = err["msg"].removeprefix("Value error, ")
        raise ProtocolFileError(f"{name}:{_line(text, loc)} {field}: {message}{got}") from None


def _field_name(loc: tuple[object, ...], data: dict) -> str:
    """``tests[4] (CPT).return_rate_c_s`` for a test entry, dotted otherwise."""
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        tests = data.get("tests")
        entry = tests[loc[1]] if isinstance(tests, list) and loc[1] < len(tests) else {}
        name = f" ({entry['test']})" if isinstance(entry, dict) and "test" in entry else ""
        rest = "".join(f".{p}" for p in loc[2:])
        return f"tests[{loc[1] + 1}]{name}{rest}"
    return ".".join(str(p) for p in loc) or "file"


def _line(text: str, loc: tuple[object, ...]) -> str:
    """``LINE:`` of ``loc`` (``tests``, index, key / ``protocol``, key), or ``""``."""
    lines = text.splitlines()
    if len(loc) >= 2 and loc[0] == "tests" and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip() == "[[tests]]"]
        if loc[1] >= len(headers):
            return ""
        start = headers[loc[1]]
        end = next((h for h in headers if h > start), len(lines))
        return _key_line(lines, start, end, loc[2] if len(loc) > 2 else None)
    if loc and loc[0] == "protocol":
        start = next((i for i, line in enumerate(lines) if line.strip() == "[protocol]"), -1)
        if start >= 0:
            end = next((i for i in range(start + 1, len(lines))
                        if lines[i].lstrip().startswith("[")), len(lines))
            return _key_line(lines, start, end, loc[1] if len(loc) > 1 else None)
    return ""


def _key_line(lines: list[str], start: int, end: int, key: object) -> str:
    if isinstance(key, str):
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.match(lines[i]):
                return f"{i + 1}:"
    return f"{start + 1}:"


def _data():  # noqa: ANN202 - importlib Traversable
    return resources.files("protocols").joinpath("data")
