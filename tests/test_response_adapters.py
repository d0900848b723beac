"""Responses reported by devices among other data: TCS buttons, Medoc YES/NO/CoVAS, cuff."""

from __future__ import annotations

from types import SimpleNamespace

from drivers.interfaces import ResponseSource
from drivers.medoc import MedocDriver
from drivers.response_adapters import CuffResponses, MedocResponses, TcsButtons
from drivers.responses import Response
from drivers.tcs import TcsDriver
from qst_station.clock import Clock, SimulatedClock
from sim.medoc_server import SimulatedMedoc
from sim.tcs import SimulatedTcs
from tests.helpers import wait_for


def test_tcs_buttons_become_press_and_release_responses(
    sim: SimulatedTcs, driver: TcsDriver, clock: Clock
) -> None:
    source = TcsButtons(driver, poll_interval_s=0.02)
    assert isinstance(source, ResponseSource)
    got: list[Response] = []
    source.subscribe(got.append)
    source.connect()
    try:
        before = clock.now()
        sim.press(True, False)
        assert wait_for(lambda: len(got) == 1, clock, 1.0)
        sim.press(False, True)
        assert wait_for(lambda: len(got) == 3, clock, 1.0)
        assert [(r.kind, r.value) for r in got] == [
            ("press", 1.0), ("release", 1.0), ("press", 2.0)]
        assert all(r.source == "tcs-buttons" and r.timestamp >= before for r in got)
        assert got[0].timestamp - before < 0.5
    finally:
        source.disconnect()
    assert not source.connected


def test_medoc_yes_no_and_covas_become_responses() -> None:
    clock = SimulatedClock(speed=5.0)
    with SimulatedMedoc(clock) as sim:
        medoc = MedocDriver("127.0.0.1", sim.port, clock=clock)
        medoc.connect()
        source = MedocResponses(medoc)
        got: list[Response] = []
        source.subscribe(got.append)
        source.connect()
        try:
            sim.press_yes()
            assert wait_for(lambda: any(r.kind == "yes" for r in got), clock, 3.0)
            sim.set_covas(40)
            assert wait_for(lambda: any(r.kind == "vas" and r.value == 40 for r in got),
                            clock, 3.0)
            assert not any(r.kind in ("yes", "no") and r.value == 0 for r in got)
        finally:
            source.disconnect()
            medoc.disconnect()


class FakeCuff:
    def __init__(self) -> None:
        self.callbacks: list = []

    def subscribe(self, callback):  # noqa: ANN001, ANN201
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def feed(self, t: float, vas: float, button: bool) -> None:
        for callback in list(self.callbacks):
            callback(SimpleNamespace(timestamp=t, vas=vas, button=button))


def test_cuff_button_and_vas_changes_become_responses() -> None:
    cuff = FakeCuff()
    source = CuffResponses(cuff, vas_step_cm=0.5)
    got: list[Response] = []
    source.subscribe(got.append)
    source.connect()
    for t, vas, button in [(0.0, 0.0, False), (0.05, 0.2, False), (0.10, 0.6, False),
                           (0.15, 0.7, True), (0.20, 0.7, True), (0.25, 1.2, False)]:
        cuff.feed(t, vas, button)
    assert [(r.timestamp, r.kind, r.value) for r in got] == [
        (0.0, "vas", 0.0), (0.10, "vas", 0.6), (0.15, "press", 1.0),
        (0.25, "release", 1.0), (0.25, "vas", 1.2)]
    source.disconnect()
    cuff.feed(0.3, 5.0, True)
    assert len(got) == 5 and not cuff.callbacks
