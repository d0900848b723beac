"""Scanner triggers from a serial trigger box: one character per volume (``5``, ``t``, ...).

A reader thread blocks in the serial read (event-driven, no polling sleeps) and stamps
each trigger character with ``clock.now()`` as soon as the read returns. A
:class:`~drivers.volumes.VolumeCounter` numbers the volumes, filling in missed triggers
(``inferred=True``) and dropping extra ones; both are reported as ``warning`` status.
Other bytes are reported and ignored. A lost port is reported once as ``lost``;
:meth:`SerialTriggerSource.reconnect` opens it again and counting carries on.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.interfaces import TriggerStats
from drivers.notifier import call_each
from drivers.serial_input import InputPortTransport, LineLog, SerialInput, listen, one_byte
from drivers.transport import Transport
from drivers.volumes import MIN_INTERVALS, Volume, VolumeCounter
from qst_station.clock import Clock, LslClock

VolumeCallback = Callable[[Volume], None]
StatusCallback = Callable[[str, str], None]


TriggerBoxTransport = InputPortTransport  # the name used before the split


class SerialTriggerSource(SerialInput):
    """Scanner volumes from a trigger box on ``port``; implements :class:`TriggerSource`."""

    kind = "trigger box"

    def __init__(
        self,
        port: str,
        character: bytes | str = b"5",
        baudrate: int = 57600,
        clock: Clock | None = None,
        counter: VolumeCounter | None = None,
        transport_factory: Callable[[str], Transport] | None = None,
        read_timeout_s: float = 0.1,
    ) -> None:
        super().__init__(port, baudrate, clock, transport_factory, "trigger", read_timeout_s)
        self.character = one_byte(character)
        self.counter = counter or VolumeCounter()

    def _describe(self) -> str:
        return f"character {self.character!r}"

    @property
    def stats(self) -> TriggerStats:
        with self._count_lock:
            c = self.counter
            return TriggerStats(c.volumes, c.received, c.missed, c.extra, self.ignored, c.tr_s)

    def summary(self) -> dict[str, object]:
        with self._count_lock:
            return {**self.counter.summary(), "ignored": self.ignored}

    def reset_count(self) -> None:
        """A new run: the next trigger is volume 1."""
        with self._count_lock:
            self.counter.reset()

    def _dispatch(self, now: float, data: bytes) -> None:
        volumes: list[Volume] = []
        warnings: list[str] = []
        other = b""
        with self._count_lock:
            for i in range(len(data)):
                byte = data[i : i + 1]
                if byte == self.character:
                    volumes += self.counter.add(now)
                    warnings += self.counter.last_warnings
                else:
                    other += byte
            self.ignored += len(other)
        for volume in volumes:
            call_each(self._callbacks, volume)
        for message in warnings:
            self._notify("warning", f"{self.port}: {message}")
        if other:
            self._report_bytes(other, f"the trigger {self.character!r}")


# ---------------------------------------------------------------------- probe


def probe_lines(
    port: str,
    character: bytes | str = b"5",
    baudrate: int = 57600,
    count: int = 10,
    timeout_s: float = 30.0,
    echo: Callable[[str], None] | None = None,
    transport_factory: Callable[[str], Transport] | None = None,
) -> list[str]:
    """Listen on ``port`` for ``count`` triggers (or ``timeout_s``); describe them line by line.

    ``echo`` receives each line as it happens. Raises :class:`PortLost` if the port
    cannot be opened.
    """
    out = LineLog(echo)
    counter = VolumeCounter()
    source = SerialTriggerSource(port, character, baudrate, LslClock(), counter,
                                 transport_factory)
    first: float | None = None
    previous: float | None = None

    def on_volume(volume: Volume) -> int:
        nonlocal first, previous
        first = volume.timestamp if first is None else first
        what = "missed, inferred at" if volume.inferred else "at"
        gap = "" if previous is None else f"  (+{volume.timestamp - previous:.3f} s)"
        previous = volume.timestamp
        out(f"volume {volume.index:>4}  {what} {volume.timestamp - first:.3f} s{gap}")
        return 0 if volume.inferred else 1

    listen(source, count, timeout_s, on_volume, out)
    s = source.stats
    if s.received == 0:
        out(f"no trigger {source.character!r} within {timeout_s:g} s "
            f"({s.ignored} other byte(s))")
    else:
        needs = f"unknown (needs {MIN_INTERVALS + 1} triggers)"
        tr = f"{s.tr_s:.3f} s" if s.tr_s is not None else needs
        span = (counter.last_volume_time or 0.0) - (first or 0.0)
        out(f"{s.received} trigger(s) in {span:.3f} s: TR {tr}, {s.missed} missed, "
            f"{s.extra} extra, {s.ignored} other byte(s)")
    return out.lines
