"""Record what happens at a thermode operated by hand (the TCS II window's Record button).

One run of the recording model: the thermode's temperatures, every stimulus started and
STOP pressed, device status, into a session file under ``out_dir``, out to LSL (markers and
the temperature stream) and into :class:`~qst_station.live_buffer.LiveBuffers` for the plot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qst_station.clock import Clock
from qst_station.live_buffer import LiveBuffers
from qst_station.lsl_outlets import LslPublisher
from qst_station.recorders import record_status, record_thermode
from qst_station.recording import Recording, SessionInfo
from qst_station.session_writer import SessionWriter


class ManualSession:
    def __init__(self, driver: Any, clock: Clock, source: str, out_dir: str | Path = "sessions",
                 publish: bool = True, refuse_identifying_codes: bool = False) -> None:
        self.driver, self.clock, self.source = driver, clock, source
        self.out_dir = Path(out_dir)
        self.publish = publish
        self.refuse_identifying_codes = refuse_identifying_codes
        self.recording: Recording | None = None
        self.writer: SessionWriter | None = None
        self.live: LiveBuffers | None = None
        self.path: Path | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def active(self) -> bool:
        return self.recording is not None and self.recording.state == "recording"

    def start(self, participant: str, visit: str) -> Path:
        """Start recording into a new file; ValueError/RuntimeError say why it cannot."""
        if self.active:
            raise RuntimeError("already recording")
        if not participant.strip() or not visit.strip():
            raise ValueError("enter a participant code and a visit first")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.out_dir / f"sub-{participant}_ses-{visit}_tcs_{stamp}.h5"
        recording = Recording(self.clock, self.refuse_identifying_codes)
        writer, live = SessionWriter(path), LiveBuffers()
        for subscriber in (writer, live, *([LslPublisher()] if self.publish else [])):
            recording.subscribe(subscriber)
        self._unsubscribe = [record_thermode(recording, self.driver, self.source),
                             record_status(recording, self.driver, "thermode")]
        try:
            recording.start(SessionInfo(participant.strip(), visit.strip(),
                                        protocol="manual TCS II", operator="console"))
        except Exception:
            self._release()
            raise
        self.recording, self.writer, self.live, self.path = recording, writer, live, path
        return path

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        if self.active:
            assert self.recording is not None
            self.recording.event(kind, payload)

    def stop(self, status: str = "success", reason: str = "") -> Path | None:
        """Stop recording (if it is); returns the file written."""
        if not self.active:
            return None
        assert self.recording is not None and self.writer is not None
        self.recording.stop(status, reason)
        self._release()
        self.writer.wait(10.0)
        return self.path

    def _release(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
