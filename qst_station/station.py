"""Open the configured devices: real ports, or in-process simulators for ``port = "sim"``."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.tcs import TcsDriver
from qst_station.clock import Clock
from qst_station.config import StationConfig, TcsConfig
from sim.tcs import SimulatedTcs


@dataclass
class Thermode:
    """A thermode driver and, when simulated, the simulator serving its port."""

    name: str
    config: TcsConfig
    driver: TcsDriver
    simulator: SimulatedTcs | None = None

    @property
    def description(self) -> str:
        kind = "simulated TCS II" if self.simulator else "TCS II"
        return f"{self.name}: {kind} on {self.driver.port}"

    def close(self) -> None:
        self.driver.disconnect()
        if self.simulator is not None:
            self.simulator.stop()


def open_thermode(config: StationConfig, clock: Clock, seed: int = 0) -> Thermode:
    """Build (not connect) the station's thermode; start its simulator if it is simulated."""
    name, device = config.thermode()
    simulator = SimulatedTcs(clock, seed=seed).start() if device.simulated else None
    port = simulator.port if simulator else device.port
    driver = TcsDriver(
        port,
        limits=device.limits.to_limits(),
        clock=clock,
        baseline=device.baseline,
        char_delay_s=device.char_delay_ms / 1000.0,
        verify_before_start=device.verify_settings,
    )
    return Thermode(name, device, driver, simulator)
