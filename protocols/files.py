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

import importlib
import re
import tomllib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ProtocolFileError(ValueError):
    """A protocol file that cannot be used; the message is one line naming file:line."""


class Strict(BaseModel):
    """Base of every protocol-file table: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)





class ProtocolHeader(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    title: str
    kind: str
    device: str = "thermode"
    site: str = ""
    description: str = ""


class ProtocolFile(Strict):
    """A validated protocol file; each ``kind`` subclasses it (see :func:`register`)."""

    protocol: ProtocolHeader
    source: str = Field("", exclude=True)
    roles: ClassVar[tuple[str, ...]] = ()  # devices a run needs, e.g. ("thermode", "buttons")

    @property
    def name(self) -> str:
        return self.protocol.name

    def steps(self) -> list[str]:
        """What a run measures, in order (for listings)."""
        return [self.protocol.kind]

    def check_devices(self, capabilities: Mapping[str, Any]) -> None:
        """Refuse (naming the step) any stimulus beyond the devices' configured limits or
        abilities, before anything starts. ``capabilities`` maps a role to its device's."""
        raise NotImplementedError

    def procedure(self, rng: np.random.Generator, site: str | None = None) -> Any:
        """A fresh state machine for one run (``site`` overrides the file's)."""
        raise NotImplementedError


PROTOCOL_KINDS: dict[str, type[ProtocolFile]] = {}
# modules that define protocol kinds (imported when the first file is parsed)
KIND_MODULES = ("protocols.thermal_file", "protocols.rating_file", "protocols.pressure_file",
                "protocols.mechanical_file", "protocols.adaptive_file",
                "protocols.paradigm_file")


def register(kind: str) -> Callable[[type[ProtocolFile]], type[ProtocolFile]]:
    """Class decorator: files with ``kind = "<kind>"`` are validated by this class."""
    def add(cls: type[ProtocolFile]) -> type[ProtocolFile]:
        PROTOCOL_KINDS[kind] = cls
        return cls

    return add


def _kinds() -> dict[str, type[ProtocolFile]]:
    for module in KIND_MODULES:
        importlib.import_module(module)
    return PROTOCOL_KINDS


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
    header = data.get("protocol")
    kind = header.get("kind") if isinstance(header, dict) else None
    kinds = _kinds()
    if kind not in kinds:
        raise ProtocolFileError(f"{name}:{_line(text, ('protocol', 'kind'))} protocol.kind: "
                                f"must be one of {', '.join(sorted(kinds))} (got {kind!r})")
    try:
        return kinds[kind].model_validate({**data, "source": name})
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
    if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
        return f"{loc[0]}[{loc[1] + 1}]" + "".join(f".{p}" for p in loc[2:])
    return ".".join(str(p) for p in loc) or "file"


def _line(text: str, loc: tuple[object, ...]) -> str:
    """``LINE:`` of ``loc``: an array of tables (``tests``/``pairs``, index, key) or a table
    (``protocol``, ``pulse``, ... , key); ``""`` if it cannot be found."""
    lines = text.splitlines()
    if not loc or not isinstance(loc[0], str):
        return ""
    if len(loc) >= 2 and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if line.strip() == f"[[{loc[0]}]]"]
        if loc[1] >= len(headers):
            return ""
        start = headers[loc[1]]
        end = next((h for h in headers if h > start), len(lines))
        return _key_line(lines, start, end, loc[2] if len(loc) > 2 else None)
    start = next((i for i, line in enumerate(lines) if line.strip() == f"[{loc[0]}]"), -1)
    if start < 0:
        return ""
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].lstrip().startswith("[")), len(lines))
    return _key_line(lines, start, end, loc[1] if len(loc) > 1 else None)


def _key_line(lines: list[str], start: int, end: int, key: object) -> str:
    if isinstance(key, str):
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start, end):
            if pattern.match(lines[i]):
                return f"{i + 1}:"
    return f"{start + 1}:"


def _data():  # noqa: ANN202 - importlib Traversable
    return resources.files("protocols").joinpath("data")
