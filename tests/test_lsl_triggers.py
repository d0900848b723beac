"""Scanner triggers from an LSL marker stream (LSL confined to this machine by conftest)."""

from __future__ import annotations

import uuid

import pytest

from drivers.errors import DeviceSilent
from drivers.interfaces import TriggerSource
from drivers.lsl_triggers import LslScannerOutlet, LslTriggerSource
from drivers.volumes import Volume, VolumeCounter
from qst_station.clock import LslClock
from sim.scanner import SimulatedScanner
from tests.helpers import wait_for


def test_markers_become_counted_volumes_on_the_program_clock() -> None:
    clock = LslClock()  # LSL timestamps are this clock: markers carry the scanner's send time
    name = f"qst-test-scanner-{uuid.uuid4().hex[:8]}"
    scanner = SimulatedScanner(tr_s=0.1, volumes=8, clock=clock, drop={5})
    scanner.lsl = LslScannerOutlet(name)
    source = LslTriggerSource(name, match="5", counter=VolumeCounter(tr_s=0.1))
    assert isinstance(source, TriggerSource)
    volumes: list[Volume] = []
    source.subscribe(volumes.append)
    source.connect()
    try:
        assert scanner.lsl.wait_for_consumers(5.0)
        with scanner:
            assert scanner.wait_done(10.0)
            assert wait_for(lambda: len(volumes) == 8, clock, 5.0)
    finally:
        source.disconnect()
    assert [v.index for v in volumes] == list(range(1, 9))
    assert [v.index for v in volumes if v.inferred] == [5]
    sent = scanner.send_times
    for volume in volumes:
        if not volume.inferred:
            assert volume.timestamp == pytest.approx(sent[volume.index], abs=0.002)
    assert source.stats.missed == 1 and source.stats.count == 8


def test_a_missing_stream_is_a_clear_error() -> None:
    source = LslTriggerSource(f"no-such-stream-{uuid.uuid4().hex[:8]}", resolve_timeout_s=0.5)
    with pytest.raises(DeviceSilent, match="no LSL stream named"):
        source.connect()
    assert not source.connected
