"""Headless demo: a simulated TCS II stimulation, printed as a temperature table."""

from __future__ import annotations

from collections.abc import Callable

from drivers.tcs import TemperatureSample
from qst_station.clock import Clock
from qst_station.config import StationConfig
from qst_station.station import open_thermode


def run_demo(
    config: StationConfig,
    clock: Clock,
    target: float = 45.0,
    print_line: Callable[[str], None] = print,
) -> list[TemperatureSample]:
    """Connect, give one 45 °C stimulus on all zones, print the trace, disconnect."""
    thermode = open_thermode(config, clock)
    samples: list[TemperatureSample] = []
    driver = thermode.driver
    driver.subscribe(samples.append)
    driver.on_status(lambda kind, message: print_line(f"[{kind}] {message}"))
    try:
        info = driver.connect()
        print_line(f"{thermode.description}: firmware {info.firmware}, probe {info.probe_id}")
        temps = driver.temperatures()
        print_line("temperatures now: " + ", ".join(f"{t:.1f}" for t in temps.all) + " °C")
        driver.enable_zones([1, 2, 3, 4, 5])
        driver.configure(0, target=target, rise=10.0, ret=10.0, duration_ms=2500)
        print_line(f"stimulus: all zones to {target} °C at 10 °C/s, 2.5 s incl. ramp")
        driver.start()
        print_line("   time  neutral   zone1   zone2   zone3   zone4   zone5")
        start = clock.now()
        shown = None
        while clock.now() - start < 4.5:
            clock.sleep(0.5)
            if samples and samples[-1] is not shown:
                s = shown = samples[-1]
                cells = "".join(f"{v:8.2f}" for v in s.all)
                print_line(f"{s.timestamp - start:7.2f}{cells}")
        driver.check_errors()
        print_line(f"{len(samples)} samples streamed; device reports no errors")
    finally:
        thermode.close()
    return samples
