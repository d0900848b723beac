"""Scanner triggers from an LSL marker stream (e.g. published by the scanner PC).

Each marker (optionally only those equal to ``match``) counts as a trigger at its LSL
timestamp plus the stream's clock offset (``time_correction()``, refreshed every 5 s), i.e.
on the program clock, which is LSL's. Volumes are counted like the serial box's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from drivers.errors import DeviceError, DeviceSilent
from drivers.interfaces import TriggerStats
from drivers.notifier import Notifier, call_each
from drivers.volumes import Volume, VolumeCounter
from qst_station.lsl_setup import pylsl_module

CORRECTION_EVERY_S = 5.0


class LslTriggerSource:
    """Volumes from the LSL marker stream named ``stream_name``; a ``TriggerSource``."""

    def __init__(self, stream_name: str, match: str | None = None,
                 counter: VolumeCounter | None = None, resolve_timeout_s: float = 5.0) -> None:
        self.stream_name = stream_name
        self.match = match
        self.counter = counter or VolumeCounter()
        self.resolve_timeout_s = resolve_timeout_s
        self.ignored = 0
        self.offset_s = 0.0
        self._pylsl = pylsl_module()
        self._inlet = None
        self._callbacks: list[Callable[[Volume], None]] = []
        self._notifier = Notifier("lsl-triggers")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return self._inlet is not None

    @property
    def stats(self) -> TriggerStats:
        with self._lock:
            c = self.counter
            return TriggerStats(c.volumes, c.received, c.missed, c.extra, self.ignored, c.tr_s)

    def subscribe(self, callback: Callable[[Volume], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    def connect(self) -> None:
        """Find the stream, open it and start reading."""
        if self.connected:
            raise DeviceError(f"LSL stream {self.stream_name!r}: already connected")
        found = self._pylsl.resolve_byprop("name", self.stream_name, 1, self.resolve_timeout_s)
        if not found:
            raise DeviceSilent(f"no LSL stream named {self.stream_name!r} within "
                               f"{self.resolve_timeout_s:g} s")
        inlet = self._pylsl.StreamInlet(found[0], max_buflen=60)
        inlet.open_stream(timeout=self.resolve_timeout_s)
        self.offset_s = inlet.time_correction(timeout=self.resolve_timeout_s)
        self._inlet = inlet
        self._stop.clear()
        self._thread = threading.Thread(target=self._read_loop, name="lsl-triggers",
                                        daemon=True)
        self._thread.start()
        self._notifier.post("connected", f"LSL marker stream {self.stream_name!r} "
                                         f"(clock offset {self.offset_s * 1000:.3f} ms)")

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            inlet.close_stream()
            self._notifier.post("disconnected", f"LSL stream {self.stream_name!r} closed")

    def _read_loop(self) -> None:
        inlet = self._inlet
        next_correction = time.monotonic() + CORRECTION_EVERY_S
        while inlet is not None and not self._stop.is_set():
            try:
                sample, stamp = inlet.pull_sample(timeout=0.1)
                if time.monotonic() > next_correction:
                    self.offset_s = inlet.time_correction(timeout=0.5)
                    next_correction = time.monotonic() + CORRECTION_EVERY_S
            except Exception as exc:  # noqa: BLE001 - pylsl's errors: report, keep reading
                self._notifier.post("warning", f"LSL stream {self.stream_name!r}: {exc}")
                continue
            if sample is None:
                continue
            marker = str(sample[0])
            if self.match is not None and marker != self.match:
                self.ignored += 1
                continue
            with self._lock:
                volumes = self.counter.add(stamp + self.offset_s)
                warnings = list(self.counter.last_warnings)
            for warning in warnings:
                self._notifier.post("warning", f"LSL stream {self.stream_name!r}: {warning}")
            for volume in volumes:
                call_each(self._callbacks, volume)


class LslScannerOutlet:
    """Publishes one marker per volume on an LSL stream, for simulated scanners."""

    def __init__(self, stream_name: str = "qst-scanner", marker: str = "5") -> None:
        pylsl = pylsl_module()
        info = pylsl.StreamInfo(stream_name, "Markers", 1, 0, "string",
                                f"qst-station-sim-{stream_name}")
        self.marker = marker
        self._outlet = pylsl.StreamOutlet(info)

    def push(self, timestamp: float) -> None:
        self._outlet.push_sample([self.marker], timestamp)

    def wait_for_consumers(self, timeout_s: float) -> bool:
        return bool(self._outlet.wait_for_consumers(timeout_s))
