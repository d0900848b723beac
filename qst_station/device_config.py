"""Station-configuration entries for the devices other than the TCS II.

Every entry names its ``driver``; ``port = "sim"`` (or ``host = "sim"`` for Medoc) selects the
built-in simulator. Validated with pydantic like the rest of the station file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SIMULATED = "sim"


class _Device(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def simulated(self) -> bool:
        return getattr(self, "port", None) == SIMULATED or getattr(self, "host", None) == SIMULATED


class MedocConfig(_Device):
    driver: Literal["medoc"]
    host: str = SIMULATED  # the Medoc Main Station's address, or "sim"
    port: int = Field(20121, ge=1, le=65535)
    thermode: Literal["ATS", "CHEPS"] = "ATS"
    allowed_programs: list[int] | None = None  # program codes this station may select
    min_celsius: float = Field(0.0, ge=0.0, le=60.0)
    max_celsius: float = Field(50.0, ge=0.0, le=60.0)

    @property
    def simulated(self) -> bool:
        return self.host == SIMULATED

    @field_validator("allowed_programs")
    @classmethod
    def _codes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(not 0 <= code <= 255 for code in value):
            raise ValueError("program codes are 0-255")
        return value


class AlgometerConfig(_Device):
    driver: Literal["wagner-fdix"]
    port: str = SIMULATED
    baudrate: int = Field(9600, gt=0)
    rate_hz: Literal[1, 2, 5, 10, 20, 25, 50, 100] = 10
    probe_area_cm2: float = Field(1.0, gt=0.0, le=10.0)


class CuffConfig(_Device):
    driver: Literal["ocp1-cuff"]
    port: str = SIMULATED
    max_kpa: float = Field(100.0, gt=0.0, le=100.0)
    stop_mode: Literal["vas", "button"] = "vas"


class TriggerBoxConfig(_Device):
    driver: Literal["trigger-box"]
    port: str = SIMULATED
    character: str = Field("5", min_length=1, max_length=1)
    baudrate: int = Field(57600, gt=0)
    tr_s: float | None = Field(None, gt=0.0, le=60.0)
    dummies: int = Field(0, ge=0)


class LslTriggerConfig(_Device):
    driver: Literal["lsl-markers"]
    stream: str = Field(min_length=1)
    match: str | None = None
    tr_s: float | None = Field(None, gt=0.0, le=60.0)


class ButtonBoxConfig(_Device):
    driver: Literal["button-box"]
    port: str = SIMULATED
    baudrate: int = Field(115200, gt=0)
    press_map: dict[str, int] = Field(default_factory=lambda: {"1": 1, "2": 2, "3": 3, "4": 4})

    @field_validator("press_map")
    @classmethod
    def _one_character_keys(cls, value: dict[str, int]) -> dict[str, int]:
        if any(len(key) != 1 for key in value):
            raise ValueError("press_map keys are single characters")
        return value


OTHER_DEVICES = (MedocConfig, AlgometerConfig, CuffConfig, TriggerBoxConfig, LslTriggerConfig,
                 ButtonBoxConfig)
