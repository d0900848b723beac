"""Byte transports under the drivers: a serial port (pyserial) with character spacing.

A transport only moves bytes. ``read`` returns what has arrived (``b""`` after
``poll_s`` of silence) and raises :class:`PortLost` when the port goes away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol

import serial

from drivers.errors import PortLost

log = logging.getLogger(__name__)


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def read(self) -> bytes: ...

    def close(self) -> None: ...


class SerialTransport:
    """A serial port: 8N1, no flow control, at least ``char_delay_s`` between characters."""

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        char_delay_s: float = 0.001,
        poll_s: float = 0.02,
    ) -> None:
        try:
            self._serial = serial.Serial(
                port,
                baudrate=baudrate,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                timeout=poll_s,
                write_timeout=1.0,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            errno = getattr(exc, "errno", None)
            reason = os.strerror(errno) if isinstance(errno, int) else str(exc)
            raise PortLost(f"cannot open {port}: {reason}") from exc
        self.port = port
        self.char_delay_s = char_delay_s
        self._last_write = 0.0
        self._write_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Write byte by byte, keeping the spacing across consecutive writes too.

        Thread-safe: one command's characters are never interleaved with another's.
        """
        with self._write_lock:
            self._write_spaced(data)

    def _write_spaced(self, data: bytes) -> None:
        try:
            for i in range(len(data)):
                wait = self._last_write + self.char_delay_s - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)  # sleeps at least this long
                self._serial.write(data[i : i + 1])
                self._last_write = time.perf_counter()
        except (serial.SerialException, OSError) as exc:
            raise PortLost(f"{self.port}: write failed: {exc}") from exc

    def read(self) -> bytes:
        try:
            data = self._serial.read(1)
            if data and self._serial.in_waiting:
                data += self._serial.read(self._serial.in_waiting)
            return data
        except (serial.SerialException, OSError, TypeError) as exc:
            raise PortLost(f"{self.port}: read failed: {exc}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the port may already be gone
            self._serial.cancel_read()
        with contextlib.suppress(serial.SerialException, OSError):
            self._serial.close()



def pump(transport: Transport, stop: threading.Event, on_data: Callable[[bytes], None],
         on_lost: Callable[[Exception], None], name: str) -> None:
    """The body of a reader thread: read until ``stop``; hand each chunk to ``on_data``.

    ``on_data`` should take the arrival time first thing. A lost port is reported once
    through ``on_lost`` (unless stopping); a bug downstream is logged, never fatal.
    """
    while not stop.is_set():
        try:
            data = transport.read()  # blocks until bytes arrive (or the poll timeout)
        except PortLost as exc:
            if not stop.is_set():
                on_lost(exc)
            return
        if not data:
            continue
        try:
            on_data(data)
        except Exception:  # noqa: BLE001 - the reader must outlive any bug downstream
            log.exception("%s reader", name)
