"""The review's findings: failures are told, data are not lost in races, resume is checked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from qst_station import session
from qst_station.clock import LslClock
from qst_station.recording import Channel, Recording, SessionInfo, StreamSpec, Subscriber
from qst_station.session_writer import SessionFileError, SessionWriter

ECG = StreamSpec("ecg", (Channel("ECG", "mV"),), 500.0, "test")


def started(path: Path, *extra: Subscriber, resume: bool = False,
            spec: StreamSpec = ECG) -> tuple[Recording, SessionWriter]:
    recording = Recording(LslClock())
    recording.add_stream(spec)
    writer = SessionWriter(path, resume=resume, flush_interval_s=0.05)
    recording.subscribe(writer)
    for subscriber in extra:
        recording.subscribe(subscriber)
    recording.start(SessionInfo("P001", "v1"))
    return recording, writer


def test_a_dying_writer_says_so_and_queues_nothing_more(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    recording, writer = started(tmp_path / "s.h5")
    told: list[tuple[str, str]] = []
    writer.on_status(lambda kind, message: told.append((kind, message)))

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_append", disk_full)
    recording.push("ecg", [1.0], [[1.0]])
    assert writer.wait(5.0) and writer.error == "OSError: [Errno 28] No space left on device"
    for i in range(100):
        recording.push("ecg", [2.0 + i], [[1.0]])
    assert writer._queue.qsize() == 0
    writer._notifier.drain()
    assert told and told[0][0] == "failed" and "No space left" in told[0][1]
    recording.stop("success")
    assert session.open(tmp_path / "s.h5").status == "interrupted"


def test_numpy_and_nan_payloads_are_stored_as_json_numbers(tmp_path: Path) -> None:
    recording, writer = started(tmp_path / "s.h5")
    recording.event("trial", {"value": np.float32(45.5), "n": np.int64(3),
                              "levels": np.arange(3), np.int64(7): "key", "bad": float("nan"),
                              "obj": object})
    recording.stop("success")
    assert writer.wait(5.0) and writer.error is None
    (trial,) = session.open(tmp_path / "s.h5").events_of("trial")
    assert trial.payload["value"] == 45.5 and trial.payload["n"] == 3
    assert trial.payload["levels"] == [0, 1, 2] and trial.payload["7"] == "key"
    assert trial.payload["bad"] is None and trial.payload["obj"] == "<class 'object'>"


def test_samples_of_a_late_stream_pushed_at_once_are_kept(tmp_path: Path) -> None:
    class SlowStreams(Subscriber):  # e.g. an LSL publisher creating an outlet
        def on_stream(self, spec: StreamSpec) -> None:
            time.sleep(0.05)

    recording, writer = started(tmp_path / "s.h5", SlowStreams())
    rr = StreamSpec("rr", (Channel("RR", "s"),), 0.0, "test")
    adder = threading.Thread(target=recording.add_stream, args=(rr,))
    adder.start()
    while "rr" not in recording.streams:
        time.sleep(0.001)
    recording.push("rr", [1.0], [[0.8]])
    adder.join()
    recording.push("ecg", [1.0], [[2.0]])
    recording.stop("success")
    assert writer.wait(5.0) and writer.error is None
    s = session.open(tmp_path / "s.h5")
    assert s.streams["rr"].values[:, 0].tolist() == pytest.approx([0.8])
    assert s.status == "success"


READER = """
import sys, time, h5py
with h5py.File(sys.argv[1], "r", swmr=True):  # plain h5py, as the docs suggest
    print("open", flush=True)
    sys.stdin.readline()
"""


def test_a_reader_holding_the_file_does_not_stop_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    recording, writer = started(path)
    recording.push("ecg", [1.0], [[1.0]])
    time.sleep(0.2)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert reader.stdout.readline().strip() == "open"
        live = session.open(path)
        assert live.live and live.status == "recording"
        recording.add_stream(StreamSpec("rr", (Channel("RR", "s"),), 0.0, "test"))
        recording.push("rr", [2.0], [[0.9]])
        recording.stop("success")
        assert writer.wait(10.0)
    finally:
        reader.communicate("\n", timeout=10)
    assert writer.error is None
    s = session.open(path)
    assert s.status == "success" and len(s.streams["rr"].time) == 1


def test_a_run_that_fails_to_start_releases_the_file(tmp_path: Path) -> None:
    class Broken(Subscriber):
        def on_start(self, info: SessionInfo, started_utc: str, start_time: float) -> None:
            raise RuntimeError("no LSL")

    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError, match="no LSL"):
        started(path, Broken())
    deadline = time.monotonic() + 5.0
    while (tmp_path / "s.h5.writing").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "s.h5.writing").exists()
    part = session.open(path).parts[0]
    assert (part.status, part.reason) == ("failed", "the run did not start: no LSL")
    recording, writer = started(path, resume=True)  # can be continued
    recording.stop("success")
    assert writer.wait(5.0) and [p.status for p in session.open(path).parts] == [
        "failed", "success"]


def test_no_rows_are_counted_that_the_file_does_not_hold(tmp_path: Path) -> None:
    for attempt in range(5):
        path = tmp_path / f"s{attempt}.h5"
        recording, writer = started(path)
        go = threading.Event()

        def pump(recording: Recording = recording, go: threading.Event = go) -> None:
            go.set()
            t = 0.0
            while recording.state == "recording":
                recording.push("ecg", [t], [[t]])
                t += 0.002

        thread = threading.Thread(target=pump)
        thread.start()
        go.wait()
        time.sleep(0.02)
        recording.stop("success")
        thread.join()
        assert writer.wait(5.0)
        assert len(session.open(path).streams["ecg"].time) == recording.counts["ecg"]


def test_unsubscribing_during_a_run_loses_nothing_for_the_others(tmp_path: Path) -> None:
    extra = Subscriber()
    recording = Recording(LslClock())
    recording.add_stream(ECG)
    remove = recording.subscribe(extra)
    writer = SessionWriter(tmp_path / "s.h5")
    recording.subscribe(writer)
    recording.start(SessionInfo("P001", "v1"))
    remover = threading.Timer(0.01, remove)
    remover.start()
    for i in range(2000):
        recording.push("ecg", [i * 0.002], [[1.0]])
    remover.join()
    recording.stop("success")
    assert writer.wait(5.0)
    assert len(session.open(tmp_path / "s.h5").streams["ecg"].time) == 2000


def test_resume_refuses_a_stream_declared_differently(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    recording, writer = started(path)
    recording.stop("success")
    assert writer.wait(5.0)
    other = StreamSpec("ecg", (Channel("lead II", "mV"),), 500.0, "test")
    with pytest.raises(SessionFileError, match=r"stream 'ecg' has channels \['ECG'\]"):
        started(path, resume=True, spec=other)
    assert not (tmp_path / "s.h5.writing").exists()
    with h5py.File(path, "r") as handle:
        assert list(handle["parts"]) == ["001"]


def test_an_unwritable_interrupted_file_is_still_read(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from qst_station import session as reader

    path = tmp_path / "s.h5"
    recording, writer = started(path)
    recording.push("ecg", [1.0], [[1.0]])
    time.sleep(0.2)
    writer._file.close()  # as if the process died: flags set, lock released below
    writer._release_lock()

    def read_only(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reader, "clear_status_flags", read_only)
    s = reader.open(path)
    assert s.status == "interrupted" and len(s.streams["ecg"].time) == 1
    assert json.loads(json.dumps(s.attrs, default=str))["participant"] == "P001"
