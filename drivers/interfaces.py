"""Device-kind interfaces: what protocols may ask of a device, whoever made it.

A protocol talks to a :class:`ThermalStimulator` (or a trigger source, a response source,
...), never to a vendor's driver. Capabilities are explicit, so a protocol refuses a
device that cannot do what it needs with a clear message before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from drivers.errors import DeviceError
from drivers.volumes import Volume

StatusCallback = Callable[[str, str], None]
VolumeCallback = Callable[[Volume], None]


class CapabilityError(DeviceError):
    """The attached device cannot do what a protocol needs."""


@dataclass(frozen=True)
class ThermalCapabilities:
    """What a thermal stimulator can do, as configured (limits included)."""

    device: str
    zones: int
    min_celsius: float
    max_celsius: float
    max_rise_rate: float  # °C/s
    max_return_rate: float  # °C/s
    ramp_and_hold: bool = True  # arbitrary target/rates/duration per stimulus
    programs: bool = False  # only stimuli predefined in the vendor's software (by code)
    follow: bool = False  # hold a setpoint the program keeps updating
    profiles: bool = False
    trigger_input: bool = False  # can start a preloaded stimulus from a hardware trigger
    extras: tuple[str, ...] = field(default=())
    # the driver's check of one whole stimulus (dose envelope included), if it has one:
    # check_stimulus(baseline, target, rise, ret, hold_s) raises with the reason
    check_stimulus: Callable[[float, float, float, float, float], None] | None = field(
        default=None, compare=False, repr=False)

    def require_stimulus(self, baseline: float, target: float, rise: float, ret: float,
                         hold_s: float, what: str) -> None:
        """Refuse a ramp-and-hold stimulus the driver would refuse (its dose included)."""
        self.require(min_celsius=min(baseline, target), max_celsius=max(baseline, target),
                     rise_rate=rise, return_rate=ret, ramp_and_hold=True, what=what)
        if self.check_stimulus is not None:
            try:
                self.check_stimulus(baseline, target, rise, ret, hold_s)
            except DeviceError as error:
                raise CapabilityError(f"{self.device} cannot do what {what} needs: "
                                      f"{error}") from None

    def require(
        self,
        *,
        min_celsius: float | None = None,
        max_celsius: float | None = None,
        rise_rate: float | None = None,
        return_rate: float | None = None,
        zones: int | None = None,
        ramp_and_hold: bool = False,
        follow: bool = False,
        trigger_input: bool = False,
        what: str = "this protocol",
    ) -> None:
        """Raise CapabilityError naming the first need this device does not meet."""
        problems = []
        if min_celsius is not None and min_celsius < self.min_celsius:
            problems.append(f"{min_celsius:g} °C (device minimum {self.min_celsius:g} °C)")
        if max_celsius is not None and max_celsius > self.max_celsius:
            problems.append(f"{max_celsius:g} °C (device maximum {self.max_celsius:g} °C)")
        if rise_rate is not None and rise_rate > self.max_rise_rate:
            problems.append(f"{rise_rate:g} °C/s rise (device maximum {self.max_rise_rate:g})")
        if return_rate is not None and return_rate > self.max_return_rate:
            problems.append(
                f"{return_rate:g} °C/s return (device maximum {self.max_return_rate:g})")
        if zones is not None and zones > self.zones:
            problems.append(f"{zones} zones (device has {self.zones})")
        for need, has, name in (
            (ramp_and_hold, self.ramp_and_hold, "stimuli defined by the program"),
            (follow, self.follow, "follow mode"),
            (trigger_input, self.trigger_input, "a hardware trigger input"),
        ):
            if need and not has:
                problems.append(name)
        if problems:
            raise CapabilityError(f"{self.device} cannot do what {what} needs: "
                                  + "; ".join(problems))


@runtime_checkable
class ThermalStimulator(Protocol):
    """A thermode as protocols see it. Temperatures in °C, rates in °C/s, times in s."""

    @property
    def capabilities(self) -> ThermalCapabilities: ...

    @property
    def connected(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    def connect(self) -> object: ...

    def disconnect(self) -> None: ...

    def set_baseline(self, celsius: float) -> None: ...

    def prepare_ramp_and_hold(self, target: float, rise: float, ret: float, hold_s: float,
                              zones: tuple[int, ...] = ()) -> None:
        """Program one stimulus (all zones if ``zones`` is empty) without starting it."""
        ...

    def start(self) -> None: ...

    def abort(self) -> None: ...

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]:
        """Temperature samples (with ``timestamp`` and ``all``) as they arrive."""
        ...

    def on_status(self, callback: StatusCallback) -> Callable[[], None]: ...


@runtime_checkable
class PressureReader(Protocol):
    """A pressure measurement (e.g. a handheld algometer): samples in kPa as they arrive."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> object: ...

    def disconnect(self) -> None: ...

    def tare(self) -> float: ...

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]:
        """Samples with ``timestamp``, ``kpa`` and ``all``."""
        ...

    def on_status(self, callback: StatusCallback) -> Callable[[], None]: ...


@dataclass(frozen=True)
class TriggerStats:
    count: int  # volumes, inferred and dummies included
    received: int  # trigger characters counted as volumes
    missed: int  # volumes filled in
    extra: int  # trigger characters not counted (too early)
    ignored: int  # other bytes
    tr_s: float | None  # configured TR, else the current estimate


@runtime_checkable
class TriggerSource(Protocol):
    """Scanner volumes as protocols see them, whatever delivers the triggers."""

    @property
    def connected(self) -> bool: ...

    @property
    def stats(self) -> TriggerStats: ...

    def connect(self) -> object: ...

    def disconnect(self) -> None: ...

    def subscribe(self, callback: VolumeCallback) -> Callable[[], None]:
        """Every :class:`Volume` (inferred ones included) as it is counted."""
        ...

    def on_status(self, callback: StatusCallback) -> Callable[[], None]: ...


@runtime_checkable
class PressureStimulator(Protocol):
    """A computer-controlled pressure stimulator (e.g. a two-outlet cuff)."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> object: ...

    def disconnect(self) -> None: ...

    def program(self, outlet: int, segments: Sequence[object], repeat: int = 1) -> object:
        """Load a waveform program (Step/Inc/Dec segments) on one outlet."""
        ...

    def start(self, force: bool = False) -> object: ...

    def stop(self) -> object: ...

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]: ...

    def on_status(self, callback: StatusCallback) -> Callable[[], None]: ...


@runtime_checkable
class ResponseSource(Protocol):
    """Participant responses (button presses, yes/no, VAS), each stamped at arrival."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> object: ...

    def disconnect(self) -> None: ...

    def subscribe(self, callback: Callable[..., None]) -> Callable[[], None]:
        """:class:`drivers.responses.Response` objects as they arrive."""
        ...

    def on_status(self, callback: StatusCallback) -> Callable[[], None]: ...
