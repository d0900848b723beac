"""The TCS II byte link: one transport, a reader thread, stream lines apart from replies.

The reader thread splits incoming bytes into frames (:class:`FrameSplitter`), hands stream
lines to ``on_stream(arrival_time, body)`` and queues replies for the command waiting on
them. :meth:`TcsLink.transact` writes one command and returns its reply. A lost port is
reported once through ``on_lost``. No safety logic lives here: the driver checks every
command before it reaches :meth:`transact`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from drivers import tcs_wire as wire
from drivers.errors import DeviceFault, DeviceSilent, NotConnected, PortLost
from drivers.transport import Transport, pump
from qst_station.clock import Clock

StreamCallback = Callable[[float, bytes], None]
NotifyCallback = Callable[[str, str], None]
LostCallback = Callable[[Exception], None]


class TcsLink:
    """Owns the transport while open; thread-safe for one command at a time (caller locks)."""

    def __init__(
        self,
        port: str,
        clock: Clock,
        on_stream: StreamCallback,
        notify: NotifyCallback,
        on_lost: LostCallback,
        reply_timeout_s: float = 0.5,
        quiet_s: float = 0.15,
    ) -> None:
        self.port = port
        self.clock = clock
        self.reply_timeout_s = reply_timeout_s
        self.quiet_s = quiet_s
        self.last_rx = 0.0  # real (monotonic) time of the last byte: silence is a wire matter
        self.garbage_bytes = 0
        self._on_stream, self._notify, self._on_lost = on_stream, notify, on_lost
        self._transport: Transport | None = None
        self._splitter = wire.FrameSplitter()
        self._split_lock = threading.Lock()
        self._replies: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def is_open(self) -> bool:
        return self._transport is not None

    @property
    def fine(self) -> bool:
        return self._splitter.fine

    @fine.setter
    def fine(self, value: bool) -> None:
        self._splitter.fine = value

    def open(self, transport: Transport) -> None:
        self._transport = transport
        self._splitter = wire.FrameSplitter()
        self._stop.clear()
        self.last_rx = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name="tcs-reader", daemon=True)
        self._reader.start()

    def close(self) -> None:
        self._stop.set()
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=1.0)
        self._reader = None

    # ------------------------------------------------------------------ commands

    def transact(self, raw: bytes, reply: str | None) -> bytes | list[bytes] | None:
        """Write ``raw``; return its reply (``"lines"``: every line until the device is quiet)."""
        transport = self._transport
        if transport is None:
            raise NotConnected(f"{self.port}: not connected")
        with self._split_lock:
            self._splitter.expect = reply
            self._splitter.mark_stale()  # a frame cut off earlier is not this command's reply
            while not self._replies.empty():
                self._replies.get_nowait()
        try:
            transport.write(raw)
            if reply is None:
                return None
            if reply == "lines":
                return self._collect_lines(raw)
            return self._await_reply(raw, reply)
        except PortLost as exc:
            self._lost(exc)
            raise
        finally:
            with self._split_lock:
                self._splitter.expect = None

    def write_urgent(self, raw: bytes) -> None:
        """Write now, without waiting for a reply another command may be waiting for."""
        transport = self._transport
        if transport is None:
            raise NotConnected(f"{self.port}: not connected")
        try:
            transport.write(raw)
        except PortLost as exc:
            self._lost(exc)
            raise

    def _flush(self) -> list[bytes]:
        with self._split_lock:
            return [body for kind, body in self._splitter.flush() if kind == "reply"]

    def _await_reply(self, raw: bytes, reply: str) -> bytes:
        """The first frame that is a whole ``reply``; others are reported and skipped."""
        deadline = time.monotonic() + self.reply_timeout_s
        others: list[bytes] = []
        while True:
            try:
                body = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                others += self._flush()
                if others and wire.reply_complete(reply, others[-1], self.fine):
                    return others[-1]
                if others:
                    raise DeviceFault(
                        f"{self.port}: unexpected reply to {raw.decode()!r}: {others[0]!r}"
                    ) from None
                raise DeviceSilent(
                    f"{self.port}: no reply to {raw.decode()!r} within {self.reply_timeout_s} s"
                ) from None
            if wire.reply_complete(reply, body, self.fine):
                for other in others:
                    self._garbage(other)
                return body
            others.append(body)

    def _collect_lines(self, raw: bytes) -> list[bytes]:
        lines: list[bytes] = []
        while True:
            try:
                timeout = self.quiet_s if lines else self.reply_timeout_s
                lines.append(self._replies.get(timeout=timeout))
            except queue.Empty:
                lines += self._flush()
                if not lines:
                    raise DeviceSilent(f"{self.port}: no reply to {raw.decode()!r}") from None
                return lines

    # ------------------------------------------------------------------ reader

    def _read_loop(self) -> None:
        if self._transport is not None:
            pump(self._transport, self._stop, self._dispatch, self._lost, "TCS")

    def _dispatch(self, data: bytes) -> None:
        now = self.clock.now()
        self.last_rx = time.monotonic()
        with self._split_lock:
            frames = self._splitter.feed(data)
            expecting = self._splitter.expect is not None
        for kind, body in frames:
            if kind == "stream":
                self._on_stream(now, body)
            elif kind == "reply" and expecting:
                self._replies.put(body)
            else:
                self._garbage(body)

    def _garbage(self, body: bytes) -> None:
        self.garbage_bytes += len(body)
        self._notify("warning", f"{self.port}: unexpected bytes from device: {body!r}")

    def _lost(self, exc: Exception) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        self._stop.set()
        transport.close()
        self._on_lost(exc)
