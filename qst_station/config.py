"""Station configuration: a TOML file naming each device, its port and its limits.

Validated with pydantic; every problem becomes one :class:`ConfigError` line naming the
file, the field (and its line where it can be found) and what is wrong. With no file the
station is the embedded default: a simulated TCS II.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.thermal_safety import DEFAULT_ENVELOPE, HARD_MAX_C, ThermalLimits
from qst_station.device_config import (
    AlgometerConfig,
    ButtonBoxConfig,
    CuffConfig,
    LslTriggerConfig,
    MedocConfig,
    TriggerBoxConfig,
)

SIMULATED = "sim"
ENV_VAR = "QST_STATION_CONFIG"


class ConfigError(ValueError):
    """A station configuration problem, as one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThermalLimitsConfig(_Strict):
    min_celsius: float = Field(0.0, ge=0.0, le=HARD_MAX_C)
    max_celsius: float = Field(50.0, ge=0.0, le=HARD_MAX_C)
    max_rate: float = Field(300.0, ge=0.1, le=300.0)
    follow_heartbeat_s: float = Field(2.0, gt=0.0, le=60.0)
    dose_envelope: list[tuple[float, float]] = Field(
        default_factory=lambda: [tuple(p) for p in DEFAULT_ENVELOPE]
    )

    def to_limits(self) -> ThermalLimits:
        try:
            return ThermalLimits(
                self.min_celsius,
                self.max_celsius,
                self.max_rate,
                tuple(self.dose_envelope),
                self.follow_heartbeat_s,
            )
        except ValueError as exc:
            raise ConfigError(f"limits: {exc}") from None


class TcsConfig(_Strict):
    driver: Literal["tcs2"] = "tcs2"
    port: str = SIMULATED
    baseline: float = Field(32.0, ge=20.0, le=45.0)
    char_delay_ms: float = Field(1.0, ge=1.0, le=20.0)
    verify_settings: bool = True  # read P back before each start after a change
    limits: ThermalLimitsConfig = Field(default_factory=ThermalLimitsConfig)

    @field_validator("port")
    @classmethod
    def _port_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("port must name a serial device (e.g. /dev/ttyACM0) or 'sim'")
        return value

    @property
    def simulated(self) -> bool:
        return self.port == SIMULATED


class LslInletConfig(_Strict):
    """An LSL stream to record into the session: by ``stream`` name, or ``prop`` = ``value``."""

    driver: Literal["lsl-inlet"]
    stream: str | None = Field(None, min_length=1)  # the LSL stream's name
    prop: str | None = Field(None, min_length=1)  # or an LSL property, e.g. "type"
    value: str | None = Field(None, min_length=1)  # ... and its value, e.g. "ECG"
    resolve_timeout_s: float = Field(5.0, gt=0.0, le=60.0)
    lost_after_s: float = Field(2.0, gt=0.0, le=60.0)  # a regular stream silent this long

    @model_validator(mode="after")
    def _one_choice(self) -> LslInletConfig:
        if (self.prop is None) != (self.value is None):
            raise ValueError("prop and value go together (e.g. prop = \"type\", value = \"ECG\")")
        if (self.stream is None) == (self.prop is None):
            raise ValueError("name the stream: either stream, or prop and value")
        return self


class StationInfo(_Strict):
    name: str = "qst-station"
    site: str = ""
    # refuse participant codes that look like names or birth dates (qst_station/privacy.py)
    refuse_identifying_codes: bool = False


def _driver_of(value: object) -> str:
    if isinstance(value, dict):
        return str(value.get("driver", "tcs2"))
    return str(getattr(value, "driver", "tcs2"))


DRIVERS = ("tcs2", "medoc", "wagner-fdix", "ocp1-cuff", "trigger-box", "lsl-markers",
           "button-box", "lsl-inlet")
DeviceConfig = Annotated[
    Annotated[TcsConfig, Tag("tcs2")]
    | Annotated[MedocConfig, Tag("medoc")]
    | Annotated[AlgometerConfig, Tag("wagner-fdix")]
    | Annotated[CuffConfig, Tag("ocp1-cuff")]
    | Annotated[TriggerBoxConfig, Tag("trigger-box")]
    | Annotated[LslTriggerConfig, Tag("lsl-markers")]
    | Annotated[ButtonBoxConfig, Tag("button-box")]
    | Annotated[LslInletConfig, Tag("lsl-inlet")],
    Discriminator(_driver_of, custom_error_type="unknown_driver",
                  custom_error_message=f"driver must be one of {', '.join(DRIVERS)}"),
]


class StationConfig(_Strict):
    station: StationInfo = Field(default_factory=StationInfo)
    devices: dict[str, DeviceConfig] = Field(default_factory=lambda: {"thermode": TcsConfig()})
    source: str = Field("embedded default (simulated devices)", exclude=True)

    def thermode(self) -> tuple[str, TcsConfig]:
        """The first TCS II."""
        for name, device in self.devices.items():
            if isinstance(device, TcsConfig):
                return name, device
        raise ConfigError("the station configuration names no TCS II thermode")


def default_config() -> StationConfig:
    return StationConfig()


def load_config(path: str | os.PathLike[str] | None = None) -> StationConfig:
    """Load ``path``, else ``$QST_STATION_CONFIG``, else the simulated default."""
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        return default_config()
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read station configuration: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return parse_config(text, str(file))


def parse_config(text: str, name: str = "<config>") -> StationConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from None
    try:
        config = StationConfig.model_validate({**data, "source": name})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _without_tags(err["loc"], err["type"])
        field = ".".join(str(p) for p in loc)
        where = _line_of(text, loc)
        value = err.get("input")
        if err["type"] == "unknown_driver" and isinstance(value, dict):
            value = value.get("driver")
        got = "" if value is None or isinstance(value, dict) else f" (got {value!r})"
        raise ConfigError(f"{name}:{where} {field}: {err['msg']}{got}") from None
    for device_name, device in config.devices.items():
        if not isinstance(device, TcsConfig):
            continue
        try:
            device.limits.to_limits()
        except ConfigError as exc:
            loc = ("devices", device_name, "limits")
            raise ConfigError(f"{name}:{_line_of(text, loc)} devices.{device_name}.{exc}") from None
    return config


def _without_tags(loc: tuple[object, ...], kind: str) -> tuple[object, ...]:
    """The error location as the file spells it: no union tag; a bad tag is ``driver``."""
    parts = tuple(p for i, p in enumerate(loc)
                  if not (i == 2 and loc[0] == "devices" and p in DRIVERS))
    return (*parts, "driver") if kind == "unknown_driver" else parts


def _line_of(text: str, loc: tuple[object, ...]) -> str:
    """``"LINE:"`` of the key at ``loc`` (following [table] headers), or ``""``."""
    want = [k for k in loc if isinstance(k, str)]
    table: list[str] = []
    exact: list[int] = []
    enclosing: list[tuple[int, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^[ \t]*\[\[?([^\]]+)\]\]?", line)
        if header:
            table = _key_parts(header.group(1))
            if table and want[: len(table)] == table:
                enclosing.append((len(table), number))
            continue
        assignment = re.match(r"^[ \t]*([A-Za-z0-9_\-.\"' ]+?)[ \t]*=", line)
        if not assignment:
            continue
        path = table + _key_parts(assignment.group(1))
        if path == want:
            exact.append(number)
        elif want[: len(path)] == path:
            enclosing.append((len(path), number))
    if len(exact) == 1:
        return f"{exact[0]}:"
    if not exact and enclosing:
        return f"{max(enclosing)[1]}:"
    return ""


def _key_parts(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".") if part.strip()]
