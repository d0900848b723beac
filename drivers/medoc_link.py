"""The Medoc MMS socket: one request, one response, with reconnects where they are safe.

:meth:`MedocLink.transact` sends one request and returns the matching response. Before each
request it checks whether MMS closed the connection after the previous response (public
clients open a new connection per command, so MMS may close after each answer) and then
reconnects quietly; bytes nobody asked for are reported and dropped. After a timeout or a
malformed response the connection is dropped, so a late answer can never be taken for the
next one. No safety logic lives here; the caller holds a lock (one command at a time).
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import time
from collections.abc import Callable

from drivers import medoc_wire as wire
from drivers.errors import DeviceFault, DeviceSilent, PortLost, WireError

NotifyCallback = Callable[[str, str], None]


class ConnectionDropped(DeviceFault):
    """MMS closed the connection before answering; the command may or may not have run."""

    def __init__(self, message: str, before_any_byte: bool = False) -> None:
        super().__init__(message)
        self.before_any_byte = before_any_byte


class MedocLink:
    """Owns the TCP socket to MMS. Not thread-safe: the driver serialises calls."""

    def __init__(self, host: str, port: int, notify: NotifyCallback,
                 reply_timeout_s: float = 1.0, connect_timeout_s: float = 2.0) -> None:
        self.host, self.port = host, port
        self.where = f"MMS {host}:{port}"
        self.reply_timeout_s = reply_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.garbage_bytes = 0
        self.closes_after_answer = False  # seen MMS close the connection after an answer
        self._answered = False
        self._notify = notify
        self._sock: socket.socket | None = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def open(self) -> None:
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), self.connect_timeout_s)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise PortLost(f"{self.where}: cannot connect: {reason}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------------ transactions

    def transact(self, command: int, parameter: int | None = None) -> wire.Status:
        """Send one request and return its response (any return code; the caller judges).

        Raises PortLost if MMS cannot be reached, DeviceSilent if no whole answer comes
        within ``reply_timeout_s``, ConnectionDropped if MMS closes the connection before
        answering, DeviceFault on bytes that are not a response.
        """
        reused = self._sock is not None and not self._closed_by_peer()
        if not reused:
            self.open()
        try:
            return self._exchange(command, parameter)
        except ConnectionDropped as exc:
            # MMS may close after each answer (see the module doc). If that close raced our
            # request on the old connection, MMS never read it: send it once more, afresh.
            if not (reused and self.closes_after_answer and exc.before_any_byte):
                raise
        self.open()
        return self._exchange(command, parameter)

    def _exchange(self, command: int, parameter: int | None) -> wire.Status:
        raw = wire.encode_request(command, parameter, timestamp=int(time.time()) & wire.U32_MAX)
        sock = self._sock
        assert sock is not None
        self._answered = False
        try:
            sock.sendall(raw)
            return self._await(sock, command)
        except OSError as exc:
            raise ConnectionDropped(
                f"{self.where}: connection failed while sending {wire.command_name(command)} "
                f"({exc.strerror or exc})", before_any_byte=True) from exc
        finally:
            if self._sock is sock and not self._answered:
                self.close()  # whatever is in flight must not be read as the next answer

    def _closed_by_peer(self) -> bool:
        """True if MMS closed the connection; reports and drops unexpected waiting bytes."""
        sock = self._sock
        assert sock is not None
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:
                    return False
                data = sock.recv(65536)
            except OSError:
                self.close()
                return True
            if not data:
                self.close()
                self.closes_after_answer = True
                return True
            self._garbage(data)

    def _await(self, sock: socket.socket, command: int) -> wire.Status:
        received = 0
        decoder = wire.ResponseDecoder()
        deadline = time.monotonic() + self.reply_timeout_s
        name = wire.command_name(command)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceSilent(f"{self.where}: no answer to {name} within "
                                   f"{self.reply_timeout_s:g} s")
            try:
                readable, _, _ = select.select([sock], [], [], left)
                data = sock.recv(65536) if readable else None
            except OSError as exc:
                if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
                    raise ConnectionDropped(f"{self.where}: {name}: {exc}") from exc
                data = b""  # reset by MMS: as a close
            if data is None:
                continue
            if not data:
                raise ConnectionDropped(f"{self.where}: connection closed before MMS answered "
                                        f"{name}; it may or may not have been carried out",
                                        before_any_byte=received == 0)
            received += len(data)
            try:
                statuses = decoder.feed(data)
            except WireError as exc:
                self.garbage_bytes += len(data)
                raise DeviceFault(f"{self.where}: unexpected bytes from MMS ({exc})") from None
            for i, status in enumerate(statuses):
                if status.command == command:
                    if i + 1 < len(statuses) or decoder.pending:  # more than one answer
                        self._garbage(b"", f"{len(statuses) - i - 1} extra answers and "
                                      f"{decoder.pending} bytes after the answer to {name}")
                        self.close()
                    self._answered = True
                    return status
                self._notify("warning", f"{self.where}: dropped a stale answer to "
                             f"{wire.command_name(status.command)} while waiting for {name}")

    def _garbage(self, data: bytes, what: str = "") -> None:
        self.garbage_bytes += len(data)
        shown = what or data[:32].hex() + ("..." if len(data) > 32 else "")
        self._notify("warning", f"{self.where}: unexpected bytes from MMS dropped: {shown}")
