"""Simulated devices recorded into a session file, then summarized (library and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.tcs import TcsDriver
from drivers.trigger_box import SerialTriggerSource
from drivers.volumes import VolumeCounter
from qst_station import session
from qst_station.cli import main
from qst_station.clock import SimulatedClock
from qst_station.recorders import record_status, record_thermode, record_triggers
from qst_station.recording import Recording, SessionInfo
from qst_station.session_writer import SessionWriter
from qst_station.summary import format_summary, summarize
from sim.scanner import SimulatedScanner
from sim.tcs import SimulatedTcs
from tests.helpers import wait_for

SPEED = 10.0
TR = 1.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A heat stimulus on the simulated TCS II during 8 simulated scanner volumes."""
    path = tmp_path_factory.mktemp("rec") / "sub-P007_ses-m3.h5"
    clock = SimulatedClock(SPEED)
    recording = Recording(clock)
    writer = SessionWriter(path)
    recording.subscribe(writer)
    with SimulatedTcs(clock, seed=3) as tcs_sim:
        scanner = SimulatedScanner(TR, clock=clock, volumes=8)
        tcs = TcsDriver(tcs_sim.port, clock=clock, quiet_s=0.05)
        triggers = SerialTriggerSource(scanner.port, character=b"5", clock=clock,
                                       counter=VolumeCounter())
        info = tcs.connect()
        record_thermode(recording, tcs, source=f"TCS II {info.firmware}")
        record_triggers(recording, triggers)
        record_status(recording, triggers, "scanner")
        recording.start(SessionInfo("P007", "m3", protocol="heat-block",
                                    devices=({"kind": "tcs2", "firmware": info.firmware},)))
        triggers.connect()
        scanner.start()
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        tcs.configure(0, target=40.0, rise=10.0, ret=10.0, duration_ms=2000)
        assert wait_for(lambda: triggers.stats.count >= 2, clock, 30.0)
        recording.event("stimulus_onset", {"device": "tcs2", "target": 40.0, "unit": "degC"})
        tcs.start()
        assert scanner.wait_done(30.0)
        assert wait_for(lambda: triggers.stats.count >= 8, clock, 30.0)
        recording.event("result", {"measure": "HPT", "value": 44.5, "unit": "degC"})
        recording.stop("success")
        triggers.disconnect()
        scanner.stop()
        tcs.disconnect()
    assert writer.wait(10) and writer.error is None
    return path


def test_devices_are_recorded_with_their_own_timestamps(recorded: Path) -> None:
    s = session.open(recorded)
    thermode = s.streams["thermode"]
    assert thermode.channels == ["neutral", "zone1", "zone2", "zone3", "zone4", "zone5"]
    assert thermode.column("zone1").max() > 38.0  # the stimulus is in the trace
    volumes = s.events_of("trigger")
    assert [e.payload["volume"] for e in volumes] == list(range(1, 9))
    gaps = [b.timestamp - a.timestamp for a, b in zip(volumes, volumes[1:], strict=False)]
    assert all(abs(g - TR) < 0.3 for g in gaps), gaps
    onset = s.events_of("stimulus_onset")[0].timestamp
    assert volumes[1].timestamp < onset < volumes[-1].timestamp
    assert any(e.payload["state"] == "connected" for e in s.events_of("device"))


def test_summary_lists_participant_measures_streams_and_volumes(recorded: Path) -> None:
    data = summarize(session.open(recorded))
    assert (data["participant"], data["visit"], data["status"]) == ("P007", "m3", "success")
    assert data["measures"] == {"HPT": {"value": 44.5, "unit": "degC"}}
    assert data["streams"]["thermode"]["samples"] > 100
    assert data["scanner"]["volumes"] == 8
    assert abs(data["scanner"]["tr_s"] - TR) < 0.1
    text = format_summary(data)
    assert "participant P007  visit m3" in text and "HPT    44.50 degC" in text
    assert "scanner: 8 volumes (0 inferred)" in text


def test_summary_cli_text_json_and_errors(recorded: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["summary", str(recorded), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["protocols"] == ["heat-block"]
    result = runner.invoke(main, ["summary", str(recorded)])
    assert result.exit_code == 0 and "status SUCCESS" in result.output
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    result = runner.invoke(main, ["summary", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {bad}: not an HDF5 file, so not a session file"
    result = runner.invoke(main, ["summary", str(tmp_path / "missing.h5")])
    assert "no such file" in result.output and result.exit_code == 1
