"""Connect devices to a :class:`~qst_station.recording.Recording`.

Each function declares the device's stream (if it has one), subscribes to the driver and
returns the unsubscribe call. Samples and events keep the timestamps the drivers gave them
(the program clock at arrival), so nothing is re-stamped on the way to the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qst_station.recording import Channel, Recording, StreamSpec

THERMODE_CHANNELS = (Channel("neutral", "degC"),
                     *(Channel(f"zone{i}", "degC") for i in range(1, 6)))


def record_thermode(recording: Recording, driver: Any, source: str, name: str = "thermode",
                    rate_hz: float = 100.0, publish: bool = True) -> Callable[[], None]:
    """Neutral + zone temperatures of a thermode whose samples have ``.all`` and ``.timestamp``."""
    recording.add_stream(StreamSpec(name, THERMODE_CHANNELS, rate_hz, source, publish=publish,
                                    lsl_type="Temperature"))
    return driver.subscribe(lambda s: recording.push(name, [s.timestamp], [s.all]))


def record_pressure(recording: Recording, reader: Any, source: str, name: str = "pressure",
                    rate_hz: float = 10.0, publish: bool = True) -> Callable[[], None]:
    """Algometer pressure (kPa) and force (N)."""
    channels = (Channel("pressure", "kPa"), Channel("force", "N"))
    recording.add_stream(StreamSpec(name, channels, rate_hz, source, publish=publish,
                                    lsl_type="Pressure"))
    return reader.subscribe(lambda s: recording.push(name, [s.timestamp], [(s.kpa, s.newtons)]))


def record_triggers(recording: Recording, source: Any, name: str = "scanner"
                    ) -> Callable[[], None]:
    """Each counted volume as a ``trigger`` event (inferred volumes marked)."""
    def on_volume(volume: Any) -> None:
        recording.event("trigger", {"volume": volume.index, "inferred": volume.inferred,
                                    "dummy": volume.dummy, "source": name}, volume.timestamp)

    return source.subscribe(on_volume)


def record_responses(recording: Recording, source: Any) -> Callable[[], None]:
    """Each participant response as a ``response`` event."""
    def on_response(response: Any) -> None:
        recording.event("response", {"source": response.source, "action": response.kind,
                                     "value": response.value}, response.timestamp)

    return source.subscribe(on_response)


def record_status(recording: Recording, device: Any, name: str) -> Callable[[], None]:
    """A device's status reports (connected, lost, errors) as ``device`` events."""
    return device.on_status(lambda kind, message: recording.event(
        "device", {"device": name, "state": kind, "message": message}))
