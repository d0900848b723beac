"""Byte transports under the drivers: a serial port (pyserial) with character spacing.

A transport only moves bytes. ``read`` returns what has arrived (``b""`` after
``poll_s`` of silence) and raises :class:`PortLost` when the port goes away.

On POSIX ports the hot paths go straight to the file descriptor pyserial opened: ``read``
is one ``select`` and one ``os.read`` of whatever has arrived, and a character is one
``os.write`` (pyserial's own calls add objects and a second system call to each, which
costs tens of microseconds on a cold CPU). Elsewhere pyserial's calls are used.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
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
        self.poll_s = poll_s
        self._last_write = 0.0
        self._write_lock = threading.Lock()
        fd = getattr(self._serial, "fd", None)  # POSIX pyserial: the open descriptor
        abort = getattr(self._serial, "pipe_abort_read_r", None)  # cancel_read() wakes it
        self._direct = isinstance(fd, int) and isinstance(abort, int)

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
                self._write_char(data[i : i + 1])
                self._last_write = time.perf_counter()
        except (serial.SerialException, OSError, TypeError) as exc:
            raise PortLost(f"{self.port}: write failed: {exc}") from exc

    def _write_char(self, char: bytes) -> None:
        if self._direct:
            if not self._serial.is_open:
                raise serial.SerialException("port closed")
            try:
                if os.write(self._serial.fd, char) == len(char):
                    return
            except BlockingIOError:  # output buffer full: pyserial waits for room
                pass
        self._serial.write(char)

    def read(self) -> bytes:
        try:
            if self._direct:
                return self._read_direct()
            data = self._serial.read(1)
            if data and self._serial.in_waiting:
                data += self._serial.read(self._serial.in_waiting)
            return data
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            raise PortLost(f"{self.port}: read failed: {exc}") from exc

    def _read_direct(self) -> bytes:
        """pyserial's ``read`` (abort pipe included), reduced to two system calls."""
        port = self._serial
        if not port.is_open:
            raise serial.SerialException("port closed")
        fd, abort = port.fd, port.pipe_abort_read_r
        ready, _, _ = select.select([fd, abort], [], [], self.poll_s)
        if abort in ready:  # cancel_read(): closing
            with contextlib.suppress(OSError):
                os.read(abort, 1000)
            return b""
        if not ready:
            return b""
        try:
            data = os.read(fd, 4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return b""
            raise
        if not data:  # readable but empty: the device is gone (pyserial says the same)
            raise serial.SerialException("device reports readiness to read but returned no "
                                         "data (device disconnected or multiple access on port?)")
        return data

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
