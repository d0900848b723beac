"""``qst-station demo`` killed with SIGKILL mid-run while an independent pylsl inlet listens.

Done-when of the recording issue in one test: the LSL streams are visible to a separate
inlet while the run goes on; after ``kill -9`` the file opens, says it did not stop cleanly,
holds the ECG and the volumes up to the kill, and can be summarized and exported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from qst_station import session
from qst_station.cli import main
from qst_station.lsl_setup import pylsl_module

DEMO_SOURCE = "qst-station/qst-station-demo@"


def _resolve(pylsl, name: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        for info in pylsl.resolve_byprop("name", name, 0, 1.0):
            if info.source_id().startswith(DEMO_SOURCE):
                return info
    raise AssertionError(f"no {name} stream from the demo within 20 s")


def test_kill_9_during_a_demo_run(tmp_path: Path) -> None:
    pylsl = pylsl_module()
    path = tmp_path / "sub-DEMO01_ses-baseline.h5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qst_station.cli", "demo", str(path), "--volumes", "40",
         "--tr", "1", "--speed", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        markers = pylsl.StreamInlet(_resolve(pylsl, "qst-station-markers"))
        thermode = pylsl.StreamInlet(_resolve(pylsl, "qst-station-thermode"))
        assert thermode.info(5.0).channel_count() == 6
        volume, deadline = 0, time.monotonic() + 30.0
        while volume < 6 and time.monotonic() < deadline:  # volume 3 had a stimulus
            sample, stamp = markers.pull_sample(timeout=5.0)
            if sample is not None:
                marker = json.loads(sample[0])
                if marker["kind"] == "trigger":
                    volume = marker["volume"]
        assert volume >= 6, "no trigger markers reached the independent inlet"
        temperatures, stamps = thermode.pull_chunk(timeout=2.0)
        assert len(temperatures) > 0 and all(len(row) == 6 for row in temperatures)
        killed_at = pylsl.local_clock() * 2.0  # the demo's clock runs at speed 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    s = session.open(path)
    assert s.status == "interrupted"
    assert [e.payload["volume"] for e in s.events_of("trigger")][:6] == [1, 2, 3, 4, 5, 6]
    assert len(s.events_of("stimulus_onset")) >= 1
    ecg = s.streams["ecg"]
    assert ecg.time[-1] > killed_at - 1.0 * 2.0  # at most 1 s (real) lost
    assert np.all(np.diff(ecg.time) > 0)
    runner = CliRunner()
    result = runner.invoke(main, ["summary", str(path)])
    assert result.exit_code == 0 and "status INTERRUPTED" in result.output
    result = runner.invoke(main, ["export", str(path), "--bids", str(tmp_path / "bids"),
                                  "--task", "heat", "--csv", str(tmp_path / "csv")])
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "bids").rglob("*_recording-cardiac_physio.tsv.gz"))
    assert (tmp_path / "csv" / "events.csv").exists()
