"""Handheld digital algometer (Wagner FDIX continuous output / FDX queries) over serial.

Readings stream at the configured rate and are timestamped on the program clock when they
arrive, converted exactly to kPa under the probe (1 cm² by default) and to newtons. The
gauge forgets ``CB`` when it is power-cycled, so a monitor re-arms the stream when it stops.
Zeroing is done in software (:meth:`tare`); no tare command is documented for the FDIX.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers import algometer_wire as wire
from drivers.errors import DeviceError, DeviceSilent, NotConnected, PortLost
from drivers.notifier import Notifier, call_each
from drivers.transport import SerialTransport, Transport, pump
from qst_station.clock import Clock, LslClock


@dataclass(frozen=True)
class PressureSample:
    """Pressure under the probe (kPa, tare applied) and force (N), at arrival time."""

    timestamp: float
    kpa: float
    newtons: float

    @property
    def all(self) -> tuple[float, ...]:
        return (self.kpa,)


class AlgometerDriver:
    """A force gauge used as a pressure algometer."""

    def __init__(
        self,
        port: str,
        clock: Clock | None = None,
        probe_area_cm2: float = 1.0,
        rate_hz: float = 10,
        baudrate: int = 9600,
        first_reading_timeout_s: float = 2.0,
        transport_factory: Callable[[str], Transport] | None = None,
    ) -> None:
        if not probe_area_cm2 > 0:
            raise ValueError(f"probe area must be positive, got {probe_area_cm2} cm²")
        wire.encode_rate(rate_hz)  # refuses rates the gauge does not have
        self.port = port
        self.clock = clock or LslClock()
        self.probe_area_cm2 = probe_area_cm2
        self.rate_hz = rate_hz
        self.rearm_after_s = max(1.0, 3.0 / rate_hz)
        self.first_reading_timeout_s = first_reading_timeout_s
        self._factory = transport_factory or (
            lambda p: SerialTransport(p, baudrate=baudrate, char_delay_s=0.0))
        self._transport: Transport | None = None
        self._notifier = Notifier("algometer")
        self._callbacks: list[Callable[[PressureSample], None]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_rx = 0.0
        self._zero_kpa = 0.0
        self.latest: PressureSample | None = None
        self.rearms = 0
        self.bad_lines = 0

    @property
    def connected(self) -> bool:
        return self._transport is not None

    def subscribe(self, callback: Callable[[PressureSample], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def on_status(self, callback: Callable[[str, str], None]) -> Callable[[], None]:
        return self._notifier.subscribe(callback)

    def connect(self) -> None:
        """Open the port, set the rate, stream every reading; wait for the first one."""
        if self.connected:
            raise DeviceError(f"{self.port}: already connected")
        self._transport = self._factory(self.port)
        self._stop.clear()
        self.latest = None
        self._last_rx = time.monotonic()
        self._threads = [threading.Thread(target=self._read_loop, daemon=True,
                                          name="algometer-reader"),
                         threading.Thread(target=self._monitor_loop, daemon=True,
                                          name="algometer-monitor")]
        for thread in self._threads:
            thread.start()
        try:
            for raw in (wire.encode("CE"), wire.encode_rate(self.rate_hz), wire.encode("CA"),
                        wire.encode("CB")):
                self._write(raw)
            end = time.monotonic() + self.first_reading_timeout_s
            while self.latest is None and time.monotonic() < end:
                time.sleep(0.01)
            if self.latest is None:
                raise DeviceSilent(f"{self.port}: no reading from the gauge within "
                                   f"{self.first_reading_timeout_s} s")
        except BaseException:
            self._close()
            raise
        self._notifier.post("connected", f"force gauge on {self.port}")

    def disconnect(self) -> None:
        if not self.connected:
            return
        self._stop.set()  # the monitor must not re-arm (CB) after the CE below
        for thread in self._threads:
            if thread.name == "algometer-monitor":
                thread.join(timeout=1.0)
        with contextlib.suppress(DeviceError):
            self._write(wire.encode("CE"))
        self._close()
        self._notifier.post("disconnected", f"{self.port} closed")

    def reconnect(self) -> None:
        self._close()
        self.connect()

    def tare(self) -> float:
        """Take the current reading as zero; returns the offset in kPa."""
        if self.latest is None:
            raise DeviceSilent(f"{self.port}: no reading to zero on")
        self._zero_kpa += self.latest.kpa
        return self._zero_kpa

    def _write(self, raw: bytes) -> None:
        transport = self._transport
        if transport is None:
            raise NotConnected(f"{self.port}: not connected")
        try:
            transport.write(raw)
        except PortLost as exc:
            self._lost(exc)
            raise

    def _close(self) -> None:
        self._stop.set()
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)
        self._threads = []

    def _lost(self, exc: Exception) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        self._stop.set()
        transport.close()
        self._notifier.post("lost", f"{self.port}: connection lost ({exc}); reconnect")

    def _read_loop(self) -> None:
        splitter = wire.LineSplitter()

        def on_data(data: bytes) -> None:
            now = self.clock.now()
            for line in splitter.feed(data):
                self._handle(now, line)

        if self._transport is not None:
            pump(self._transport, self._stop, on_data, self._lost, "algometer")

    def _handle(self, now: float, line: bytes) -> None:
        try:
            reading = wire.decode_reading(line)
        except DeviceError as exc:
            self.bad_lines += 1
            self._notifier.post("warning", f"{self.port}: {exc}")
            return
        self._last_rx = time.monotonic()
        kpa = reading.kpa(self.probe_area_cm2) - self._zero_kpa
        sample = PressureSample(now, kpa, reading.newtons)
        self.latest = sample
        call_each(self._callbacks, sample)

    def _monitor_loop(self) -> None:
        while not self._stop.wait(0.05):
            if time.monotonic() - self._last_rx > self.rearm_after_s and self.latest is not None:
                self._last_rx = time.monotonic()
                self.rearms += 1
                with contextlib.suppress(DeviceError):
                    self._write(wire.encode("CB"))
                self._notifier.post("warning", f"{self.port}: readings stopped; stream re-armed")
