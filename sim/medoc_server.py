"""A simulated Medoc MMS served over TCP on 127.0.0.1: :class:`MedocDevice` behind a socket.

Listens on the loopback address only. Each connection gets its own request decoder (both
length byte orders accepted); answers go back on the connection that asked. Fault injection:
:meth:`drop_clients`, :meth:`unplug`/:meth:`plug_in` (connections refused meanwhile),
:meth:`stall`, :meth:`inject`; ``close_after_response`` closes every connection after its
answer, as public clients expect of MMS (they connect once per command).
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
from collections.abc import Callable

from drivers import medoc_wire as wire
from drivers.errors import WireError
from qst_station.clock import Clock, LslClock, make_clock
from sim.medoc_device import MedocDevice, Program

LOOPBACK = ("127.0.0.1", "localhost")


class SimulatedMedoc:
    """Start with :meth:`start` (or ``with``); connect a driver to ``127.0.0.1:port``."""

    def __init__(
        self,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        thermode: str = "ATS",
        seed: int = 0,
        pretest_s: float = 1.5,
        programs: dict[int, Program] | None = None,
        close_after_response: bool = False,
        tick_real_s: float = 0.005,
    ) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the simulator listens on 127.0.0.1 only, not {host!r}")
        self.clock = clock or LslClock()
        self.device = MedocDevice(thermode, seed, pretest_s=pretest_s)
        if programs is not None:
            self.device.programs = dict(programs)
        self.port = port
        self.close_after_response = close_after_response
        self.tick_real_s = tick_real_s
        self.connections = 0  # accepted so far
        self.broken_requests = 0  # connections closed for undecodable bytes
        self._lock = threading.RLock()  # device and sockets
        self._listener: socket.socket | None = None
        self._clients: dict[socket.socket, wire.RequestDecoder] = {}
        self._stall_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self) -> SimulatedMedoc:
        with self._lock:
            self._listen()
            self.device.step(self.clock.now())
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="medoc-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_all(listener=True)

    def __enter__(self) -> SimulatedMedoc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", self.port))
        except OSError as exc:
            listener.close()
            raise OSError(exc.errno, f"cannot listen on 127.0.0.1:{self.port}: "
                          f"{exc.strerror}") from None
        listener.listen(8)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _close_all(self, listener: bool) -> None:
        for sock in list(self._clients):
            self._drop(sock)
        if listener and self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None

    def _drop(self, sock: socket.socket) -> None:
        self._clients.pop(sock, None)
        with contextlib.suppress(OSError):
            sock.close()

    # -------------------------------------------------------------- faults

    def drop_clients(self) -> None:
        """MMS closes every open connection (new ones are accepted)."""
        with self._lock:
            self._close_all(listener=False)

    def unplug(self) -> None:
        """The network goes: connections close and new ones are refused."""
        with self._lock:
            self._close_all(listener=True)

    def plug_in(self) -> None:
        """Listen again, on the same port."""
        with self._lock:
            if self._listener is None:
                self._listen()

    def stall(self, seconds: float) -> None:
        """MMS hangs for ``seconds`` of real time: requests are lost, nothing is answered."""
        self._stall_until = time.monotonic() + seconds

    def inject(self, data: bytes) -> None:
        """Send raw bytes (e.g. garbage) on every open connection."""
        with self._lock:
            for sock in list(self._clients):
                try:
                    sock.sendall(data)
                except OSError:
                    self._drop(sock)

    # -------------------------------------------------------------- the outside world

    def press_yes(self, hold_s: float = 0.3) -> None:
        with self._lock:
            self.device.press_yes(self.clock.now(), hold_s)

    def press_no(self, hold_s: float = 0.3) -> None:
        with self._lock:
            self.device.press_no(self.clock.now(), hold_s)

    def set_covas(self, value: int) -> None:
        with self._lock:
            self.device.set_covas(value)

    def fault(self, kind: str, message: str = "", safe_mode: bool = False) -> None:
        with self._lock:
            self.device.step(self.clock.now())
            self.device.fault(kind, message, safe_mode)

    def fail_next(self, code: int, message: str = "") -> None:
        with self._lock:
            self.device.fail_next(code, message)

    def set_safe_mode(self, on: bool) -> None:
        with self._lock:
            if on:
                self.device.safe_mode = True
            else:
                self.device.self_test()

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            self.device.step(self.clock.now())
            return self.device.snapshot()

    # -------------------------------------------------------------- the pump

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                watched = list(self._clients)
                if self._listener is not None:
                    watched.append(self._listener)
            try:
                ready, _, _ = select.select(watched, [], [], self.tick_real_s) if watched else (
                    [], [], [])
            except (OSError, ValueError):  # a socket closed under us: look again
                ready = []
            if not watched:
                time.sleep(self.tick_real_s)
            with self._lock:
                for sock in ready:
                    self._service(sock)
                self.device.step(self.clock.now())

    def _service(self, sock: socket.socket) -> None:
        if sock is self._listener:
            with contextlib.suppress(OSError):
                client, _ = sock.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._clients[client] = wire.RequestDecoder()
                self.connections += 1
            return
        decoder = self._clients.get(sock)
        if decoder is None:
            return  # closed meanwhile
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        if time.monotonic() < self._stall_until:
            return  # hung: the request is lost
        try:
            requests = decoder.feed(data)
        except WireError:
            self.broken_requests += 1
            self._drop(sock)
            return
        for request in requests:
            answer = self.device.handle(request, self.clock.now())
            if answer is None:
                continue
            try:
                sock.sendall(answer)
            except OSError:
                self._drop(sock)
                return
            if self.close_after_response:
                self._drop(sock)
                return


def serve_forever(port: int = wire.DEFAULT_PORT, speed: float = 1.0, thermode: str = "ATS",
                  seed: int = 0, print_line: Callable[[str], None] = print,
                  stop: threading.Event | None = None) -> None:
    """Serve a simulated MMS on 127.0.0.1:``port`` until Ctrl-C/SIGTERM (or ``stop`` is set)."""
    simulator = SimulatedMedoc(make_clock(speed), port=port, thermode=thermode, seed=seed)
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
    with simulator:
        print_line(f"simulated Medoc MMS ({simulator.device.spec.name} thermode) on "
                   f"127.0.0.1:{simulator.port} (speed {speed:g}x); Ctrl-C to stop")
        for code, program in sorted(simulator.device.programs.items()):
            print_line(f"  program {code:3d}: {program.name}")
        while not stop.wait(0.2):
            pass
    print_line("simulator stopped")
