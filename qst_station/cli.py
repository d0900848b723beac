"""The ``qst-station`` command line."""

from __future__ import annotations

import ctypes.util
import os
import signal
import sys
import threading
from pathlib import Path

import click

from qst_station import __version__
from qst_station.config import ConfigError, StationConfig, load_config

SPEED = click.option(
    "--speed",
    type=click.FloatRange(min=0.01, max=1000.0),
    default=1.0,
    show_default=True,
    help="Simulated clock speed (simulators and program share it); 1 = real time.",
)
CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Station configuration (TOML). Default: $QST_STATION_CONFIG, else simulated devices.",
)


def _load(config_path: str | None) -> StationConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _clock(speed: float):  # noqa: ANN202 - imported late so --help stays fast
    from qst_station.clock import make_clock

    return make_clock(speed)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qst-station")
def main() -> None:
    """qst-station: instrument controller for quantitative sensory testing."""


# ---------------------------------------------------------------------------- run


def display_problem() -> str | None:
    """Why a Qt window cannot open here, or None if it can."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc")):
        return None
    if sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return "no display found (DISPLAY and WAYLAND_DISPLAY are not set)"
        if os.environ.get("DISPLAY") and not platform.startswith("wayland"):
            missing = missing_xcb_packages()
            if missing:
                return (
                    "Qt's X11 plugin cannot load: missing system libraries; install them with: "
                    f"sudo apt-get install {' '.join(missing)}"
                )
    return None


def missing_xcb_packages() -> list[str]:
    """Debian packages of the shared libraries Qt's xcb plugin needs but cannot find.

    Qt itself names only libxcb-cursor0 ("From 6.5.0, xcb-cursor0 ... is needed") even when
    another library is what is missing, so ask the dynamic linker (ldd) instead.
    """
    import shutil
    import subprocess
    from pathlib import Path

    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    binaries = [qt / "plugins" / "platforms" / "libqxcb.so", *qt.glob("lib/libQt6XcbQpa.so*")]
    binaries = [b for b in binaries if b.exists()]
    if not shutil.which("ldd") or not binaries:
        found = ctypes.util.find_library("xcb-cursor")
        return [] if found else ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"]
    result = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True,
                            check=False)
    libraries = sorted({line.split()[0] for line in result.stdout.splitlines()
                        if "not found" in line})
    packages = [_debian_package(lib) for lib in libraries]
    if "libxcb-cursor0" not in packages and not ctypes.util.find_library("xcb-cursor"):
        packages.append("libxcb-cursor0")  # loaded at run time, so ldd does not list it
    return packages


def _debian_package(soname: str) -> str:
    """libxcb-icccm.so.4 -> libxcb-icccm4; libxkbcommon-x11.so.0 -> libxkbcommon-x11-0."""
    name, _, version = soname.partition(".so.")
    version = version.split(".")[0]
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


@main.command()
@click.argument("protocol", required=False)
@CONFIG
@SPEED
@click.option("--headless", is_flag=True, help="Run the headless demo even if a display exists.")
@click.option("--simulate", is_flag=True,
              help="Run PROTOCOL on simulated devices with a simulated participant.")
@click.option("--participant", "participant_file", type=click.Path(dir_okay=False),
              default=None, help="Simulated participant model (TOML); default participant "
                                 "if not given.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the simulated participant and the protocol's randomization.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="sessions",
              show_default=True, help="Folder for the session file.")
@click.option("--visit", default="sim", show_default=True)
@click.option("--calibration", "calibration_path", type=click.Path(dir_okay=False),
              default=None, help="Session file of an earlier heat-calibration: its T30/T50/T70 "
                                 "are the VAS30/50/70 levels of a scanner run.")
@click.option("--triggers", type=click.Choice(["serial", "lsl"]), default="serial",
              show_default=True, help="Simulated scanner runs: triggers from the trigger box "
                                      "(serial) or as LSL markers.")
def run(protocol: str | None, config_path: str | None, speed: float, headless: bool,
        simulate: bool, participant_file: str | None, seed: int, out_dir: str,
        visit: str, calibration_path: str | None, triggers: str) -> None:
    """Open the app (simulated devices unless configured); headless demo without a display.

    With PROTOCOL (a built-in name, see `qst-station protocols`, or a .toml file) and
    --simulate: run the whole protocol headless on simulated devices and print the results.
    """
    if protocol is not None:
        _run_protocol(protocol, simulate, participant_file, seed, speed, Path(out_dir), visit,
                      calibration_path, triggers)
        return
    config = _load(config_path)
    clock = _clock(speed)
    problem = None if headless else display_problem()
    if headless or problem:
        if problem:
            click.echo(f"qst-station: {problem}; running the headless demo instead.")
        from qst_station.demo import run_demo

        try:
            run_demo(config, clock, print_line=click.echo)
            click.echo("")
            _record_demo(default_demo_path("DEMO01", "baseline"), clock, DEMO_PLAN_HEADLESS,
                         "DEMO01", "baseline", config)
        except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
            raise click.ClickException(str(exc)) from None
        return
    from qst_station.gui.app import run_app

    sys.exit(run_app(config, clock))


# ---------------------------------------------------------------------------- probe


@main.group()
def probe() -> None:
    """Connect to a device and print what it reports."""


@probe.command("tcs")
@click.argument("port")
@click.option("--char-delay-ms", type=click.FloatRange(min=1.0, max=20.0), default=1.0,
              show_default=True, help="Pause between characters sent to the device.")
@click.option("--baseline", type=click.FloatRange(20.0, 44.0), default=32.0, show_default=True,
              help="Baseline programmed on connect.")
def probe_tcs(port: str, char_delay_ms: float, baseline: float) -> None:
    """Connect to a TCS II on PORT; print firmware, probe, temperatures, buttons, errors."""
    from drivers.errors import DeviceError
    from drivers.tcs import TcsDriver

    driver = TcsDriver(port, clock=_clock(1.0), baseline=baseline,
                       char_delay_s=char_delay_ms / 1000.0)
    try:
        info = driver.connect()
        temps = driver.temperatures()
        buttons = driver.buttons()
        codes = driver.errors()
        battery = driver.battery()
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        driver.disconnect()
    click.echo(f"port:         {port}")
    click.echo(f"identity:     {info.identity}")
    click.echo(f"firmware:     {info.firmware}")
    click.echo(f"probe id:     {info.probe_id}")
    click.echo(f"probe type:   {info.probe_type}")
    click.echo(f"neutral:      {temps.neutral:.1f} °C")
    click.echo("zones:        " + "  ".join(f"{t:.1f}" for t in temps.zones) + " °C")
    click.echo(f"buttons:      1={'pressed' if buttons.button1 else 'up'} "
               f"2={'pressed' if buttons.button2 else 'up'}")
    click.echo(f"battery:      {battery} %")
    state = "OK" if not any(codes) else "ERROR"
    click.echo(f"error codes:  {' '.join(map(str, codes))} (neutral, zones 1-5): {state}")
    if any(codes):
        sys.exit(1)


@probe.command("algometer")
@click.argument("port")
@click.option("--rate", type=click.Choice(["1", "2", "5", "10", "20", "50"]), default="10",
              show_default=True, help="Readings per second.")
@click.option("--baud", type=int, default=9600, show_default=True)
@click.option("--seconds", type=click.FloatRange(0.1, 60.0), default=2.0, show_default=True,
              help="How long to read.")
def probe_algometer(port: str, rate: str, baud: int, seconds: float) -> None:
    """Read a force gauge (Wagner FDIX style) on PORT for a while; print kPa on 1 cm²."""
    from drivers.algometer import AlgometerDriver, PressureSample
    from drivers.errors import DeviceError

    samples: list[PressureSample] = []
    clock = _clock(1.0)
    driver = AlgometerDriver(port, clock=clock, rate_hz=int(rate), baudrate=baud)
    driver.subscribe(samples.append)
    try:
        driver.connect()
        clock.sleep(seconds)
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        driver.disconnect()
    values = [s.kpa for s in samples]
    click.echo(f"port:      {port}")
    click.echo(f"readings:  {len(values)} in {seconds:g} s")
    click.echo(f"pressure:  last {values[-1]:.1f} kPa, max {max(values):.1f} kPa (1 cm² probe)")


@probe.command("trigger")
@click.argument("port")
@click.option("--char", "character", default="5", show_default=True, help="Trigger character.")
@click.option("--baud", type=int, default=57600, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=10, show_default=True,
              help="Stop after this many volumes.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, help="Give up after this many seconds.")
def probe_trigger(port: str, character: str, baud: int, count: int, timeout_s: float) -> None:
    """Listen on PORT for scanner triggers; print each volume, missed/extra triggers, the TR."""
    from drivers.errors import DeviceError
    from drivers.trigger_box import probe_lines

    try:
        lines = probe_lines(port, character, baud, count, timeout_s, echo=click.echo)
    except (DeviceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if lines and lines[-1].startswith("no trigger"):
        sys.exit(1)


@probe.command("medoc")
@click.argument("address")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=30.0), default=2.0,
              show_default=True, help="Seconds to wait for MMS.")
def probe_medoc(address: str, timeout: float) -> None:
    """Ask a Medoc MMS at HOST[:PORT] (default port 20121) for its status (GET_STATUS only)."""
    from drivers.errors import DeviceError
    from drivers.medoc import parse_address, probe_lines

    try:
        host, port = parse_address(address)
        lines = probe_lines(host, port, timeout_s=timeout)
    except (ValueError, DeviceError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)


@probe.command("cuff")
@click.argument("port")
def probe_cuff(port: str) -> None:
    """Connect to an OCP/1 cuff pressure stimulator on PORT; print identity, limit, readings."""
    from drivers.errors import DeviceError
    from sim.cuff import probe_lines

    try:
        lines = probe_lines(port)
    except DeviceError as exc:
        raise click.ClickException(str(exc)) from None
    for line in lines:
        click.echo(line)


@probe.command("buttons")
@click.argument("port")
@click.option("--map", "press_map", default="1=1,2=2,3=3,4=4", show_default=True,
              help="Press characters: CHAR=BUTTON,... (CHAR may be 0xNN).")
@click.option("--release-map", default=None,
              help="Release characters, same form (default: the box sends none).")
@click.option("--baud", type=int, default=115200, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=10, show_default=True,
              help="Stop after this many presses.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, help="Give up after this many seconds.")
def probe_buttons(port: str, press_map: str, release_map: str | None, baud: int, count: int,
                  timeout_s: float) -> None:
    """Listen on PORT for button-box presses; print each press (and release) with its time."""
    from drivers.errors import DeviceError
    from drivers.responses import parse_map, probe_lines

    try:
        lines = probe_lines(port, parse_map(press_map),
                            parse_map(release_map) if release_map else None, baud, count,
                            timeout_s, echo=click.echo)
    except (DeviceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if lines and lines[-1].startswith("no button press"):
        sys.exit(1)


# ---------------------------------------------------------------------------- sim


@main.group()
def sim() -> None:
    """Serve simulated devices that speak the real wire protocols."""


@sim.command("tcs")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="Make this path a symlink to the simulator's pseudo-terminal.")
@SPEED
@click.option("--seed", type=int, default=0, show_default=True, help="Sensor-noise seed.")
@click.option("--strict-spacing", is_flag=True,
              help="Drop characters sent less than 1 ms apart, as the real unit may.")
def sim_tcs(link: str | None, speed: float, seed: int, strict_spacing: bool) -> None:
    """Serve a simulated TCS II on a new pseudo-terminal until Ctrl-C."""
    from sim.tcs import SimulatedTcs

    _serve(lambda: SimulatedTcs(_clock(speed), link=link, seed=seed,
                                strict_spacing=strict_spacing), "TCS II", link, speed)


@sim.command("algometer")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="Make this path a symlink to the simulator's pseudo-terminal.")
@SPEED
@click.option("--unit", type=click.Choice(["lbf", "N", "kgf"]), default="lbf", show_default=True)
@click.option("--press", "press_rate", type=click.FloatRange(0.0, 500.0), default=0.0,
              help="Simulated examiner pushing at this many kPa/s from the start (0 = idle).")
@click.option("--seed", type=int, default=0, show_default=True)
def sim_algometer(link: str | None, speed: float, unit: str, press_rate: float,
                  seed: int) -> None:
    """Serve a simulated force gauge (Wagner FDIX protocol) on a pty until Ctrl-C."""
    from sim.algometer import SimulatedAlgometer

    _serve(lambda: SimulatedAlgometer(_clock(speed), link=link, unit=unit, seed=seed),
           "force gauge", link, speed,
           after_start=(lambda s: s.press(press_rate)) if press_rate else None)


@sim.command("scanner")
@click.option("--tr", type=click.FloatRange(min=0.01, max=60.0), default=2.0, show_default=True,
              help="Repetition time in seconds.")
@click.option("--volumes", type=click.IntRange(min=0), default=None,
              help="Volumes to send (default: endless).")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="Make this path a symlink to the simulator's pseudo-terminal.")
@click.option("--char", "character", default="5", show_default=True, help="Trigger character.")
@click.option("--jitter-ms", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Random timing jitter of each pulse.")
@click.option("--drop-probability", type=click.FloatRange(0.0, 1.0), default=0.0,
              show_default=True, help="Chance that a pulse is lost.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lsl", "lsl_name", default=None,
              help="Also publish each volume as a marker on this LSL stream (machine scope).")
@SPEED
def sim_scanner(tr: float, volumes: int | None, link: str | None, character: str,
                jitter_ms: float, drop_probability: float, seed: int, lsl_name: str | None,
                speed: float) -> None:
    """Serve a simulated scanner trigger box (one character per volume) until Ctrl-C."""
    from sim.scanner import serve_forever

    try:
        serve_forever(tr_s=tr, volumes=volumes, link=link, character=character.encode("latin-1"),
                      speed=speed, jitter_s=jitter_ms / 1000.0,
                      drop_probability=drop_probability, seed=seed, echo=click.echo,
                      lsl_name=lsl_name)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@sim.command("medoc")
@click.option("--port", type=click.IntRange(0, 65535), default=20121, show_default=True,
              help="TCP port on 127.0.0.1 (0: any free port).")
@SPEED
@click.option("--thermode", type=click.Choice(["ATS", "CHEPS"], case_sensitive=False),
              default="ATS", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Sensor-noise seed.")
def sim_medoc(port: int, speed: float, thermode: str, seed: int) -> None:
    """Serve a simulated Medoc Main Station on 127.0.0.1:PORT until Ctrl-C."""
    from sim.medoc_server import serve_forever

    try:
        serve_forever(port, speed, thermode, seed, print_line=click.echo)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


@sim.command("cuff")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="Make this path a symlink to the simulator's pseudo-terminal.")
@SPEED
@click.option("--seed", type=int, default=0, show_default=True,
              help="Participant and sensor seed.")
def sim_cuff(link: str | None, speed: float, seed: int) -> None:
    """Serve a simulated cuff pressure stimulator (OCP/1) on a pty until Ctrl-C."""
    from sim.cuff import SimulatedCuff

    _serve(lambda: SimulatedCuff(_clock(speed), link=link, seed=seed), "cuff stimulator",
           link, speed)


@sim.command("buttons")
@click.option("--link", type=click.Path(dir_okay=False), default=None,
              help="Make this path a symlink to the simulator's pseudo-terminal.")
@click.option("--map", "press_map", default="1=1,2=2,3=3,4=4", show_default=True,
              help="Press characters: CHAR=BUTTON,... (CHAR may be 0xNN).")
@click.option("--release-map", default=None,
              help="Release characters, same form (default: none sent).")
@click.option("--every", "every_s", type=click.FloatRange(min=0.01), default=None,
              help="A simulated participant presses every this many seconds (default: idle).")
@click.option("--button", type=click.IntRange(min=0), default=None,
              help="Button pressed with --every (default: a seeded random one).")
@click.option("--hold", "hold_s", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Release after this many seconds (needs --release-map).")
@click.option("--seed", type=int, default=0, show_default=True)
@SPEED
def sim_buttons(link: str | None, press_map: str, release_map: str | None,
                every_s: float | None, button: int | None, hold_s: float | None, seed: int,
                speed: float) -> None:
    """Serve a simulated response button box (one character per press) until Ctrl-C."""
    from drivers.responses import parse_map
    from sim.button_box import serve_forever

    try:
        presses = {b: c for c, b in parse_map(press_map).items()}
        releases = {b: c for c, b in parse_map(release_map).items()} if release_map else None
        serve_forever(link=link, speed=speed, echo=click.echo, every_s=every_s, button=button,
                      hold_s=hold_s, press_char_map=presses, release_char_map=releases,
                      seed=seed)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@sim.command("ecg")
@click.option("--rate", "rate_hz", type=click.FloatRange(100.0, 2000.0), default=500.0,
              show_default=True, help="Sampling rate in Hz.")
@click.option("--hr", "mean_hr_bpm", type=click.FloatRange(30.0, 200.0), default=65.0,
              show_default=True, help="Mean heart rate in beats per minute.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the RR series and the signal noise.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0.0, min_open=True),
              default=None, help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--rr-stream/--no-rr-stream", default=True, show_default=True,
              help="Also publish one RR interval (s) per beat on a stream of type RR.")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False), default=None,
              help="Write the true beat times (LSL clock) and RR intervals (ms) to this TSV.")
@click.option("--name", default="qst-sim-ECG", show_default=True,
              help="LSL stream name (the RR stream's name ends in -RR instead of -ECG).")
@SPEED
def sim_ecg(rate_hz: float, mean_hr_bpm: float, seed: int, duration_s: float | None,
            rr_stream: bool, truth_path: str | None, name: str, speed: float) -> None:
    """Publish a simulated ECG (and its RR intervals) as LSL streams until Ctrl-C."""
    if not name.strip():
        raise click.BadParameter("must not be empty", param_hint="'--name'")
    from sim.ecg import serve_forever

    try:
        serve_forever(rate_hz=rate_hz, mean_hr_bpm=mean_hr_bpm, seed=seed,
                      duration_s=duration_s, rr_stream=rr_stream, truth_path=truth_path,
                      name=name, speed=speed, echo=click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f"cannot write {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        raise click.ClickException(where) from None


def _serve(make, what: str, link: str | None, speed: float,  # noqa: ANN001
           after_start=None) -> None:  # noqa: ANN001
    """Start a simulator built by ``make``, print where it is, run until Ctrl-C."""
    if link and os.path.exists(link) and not os.path.islink(link):
        raise click.ClickException(f"{link} exists and is not a symlink; choose another --link")
    try:
        simulator = make()
    except OSError as exc:
        raise click.ClickException(f"cannot create --link {link}: {exc.strerror}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    simulator.start()
    if after_start is not None:
        after_start(simulator)
    where = f"{link} -> {simulator.pty.path}" if link else simulator.pty.path
    click.echo(f"simulated {what} on {where} (speed {speed:g}x); Ctrl-C to stop")
    sys.stdout.flush()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        simulator.stop()
        click.echo("simulator stopped")


# ---------------------------------------------------------------------------- config


@main.group("config")
def config_group() -> None:
    """Check or show station configurations."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def config_check(path: str) -> None:
    """Validate the station configuration at PATH."""
    config = _load(path)
    for name, device in config.devices.items():
        where = getattr(device, "port", None) if not hasattr(device, "host") else (
            f"{device.host}:{device.port}")
        stream = getattr(device, "stream", None) or (
            f"{device.prop}={device.value}" if getattr(device, "prop", None) else "?")
        line = f"{name}: {device.driver} on {where or stream}"
        limits = getattr(device, "limits", None)
        if limits is not None:
            line += (f", {limits.min_celsius:g}-{limits.max_celsius:g} °C, "
                     f"max {limits.max_rate:g} °C/s")
        click.echo(line)
    click.echo(f"{path}: OK")


@config_group.command("show")
@CONFIG
def config_show(config_path: str | None) -> None:
    """Print the configuration in effect (defaults filled in) as JSON."""
    config = _load(config_path)
    click.echo(f"# source: {config.source}")
    click.echo(config.model_dump_json(indent=2))


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def summary(path: str, as_json: bool) -> None:
    """What the session file at PATH holds: participant, visit, measures, streams, status."""
    import json

    from qst_station import session as session_file
    from qst_station.summary import format_summary, summarize

    try:
        data = summarize(session_file.open(path))
    except (session_file.SessionReadError, OSError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(data, indent=2) if as_json else format_summary(data))


# ---------------------------------------------------------------------------- protocols


@main.command("protocols")
def protocols_list() -> None:
    """List the built-in protocols."""
    from protocols.files import builtin_names, load_protocol

    for name in builtin_names():
        protocol = load_protocol(name)
        tests = ", ".join(protocol.steps())
        click.echo(f"{name:<18} {protocol.protocol.title}  [{tests}]")


@main.command("profile")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--sex", type=click.Choice(["female", "male"]), required=True)
@click.option("--age", type=click.FloatRange(0, 120), required=True)
@click.option("--reference", "reference_path", type=click.Path(dir_okay=False), default=None,
              help="The lab's reference table (CSV, docs/reference-data.md). Without it: the "
                   "SYNTHETIC demo table, for trying things out only.")
@click.option("--site", default=None, help="Test area (default: where the measures were taken).")
@click.option("--png", "png_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the DFNS-style profile plot here.")
@click.option("--json", "as_json", is_flag=True, help="Print the z-scores as JSON.")
def profile_command(path: str, sex: str, age: float, reference_path: str | None,
                    site: str | None, png_path: str | None, as_json: bool) -> None:
    """z-scores of the DFNS measures in the session at PATH, loss/gain code, quality flags."""
    import json

    from protocols.reference import (
        ReferenceLookupError,
        ReferenceTableError,
        demo_table,
        load_reference_table,
    )
    from protocols.zscores import profile
    from qst_station import session as session_file
    from qst_station.profiles import measures_of

    try:
        every = measures_of(session_file.open(path))
        table = load_reference_table(reference_path) if reference_path else demo_table()
        where = site or next((m.site for m in every if m.site), "")
        measures = [m for m in every if not m.site or m.site.casefold() == where.casefold()]
        if site and not any(m.site for m in measures) and any(m.site for m in every):
            raise ValueError(f"no measures taken at {site!r} (sites: "
                             f"{', '.join(sorted({m.site for m in every if m.site}))})")
        result = profile(measures, table, site=where, sex=sex, age=age)
    except (session_file.SessionReadError, ReferenceTableError, ReferenceLookupError,
            ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if not result.zscores:
        raise click.ClickException(f"{path}: no DFNS measures to z-score")
    rows = [{"measure": z.measure, "value": z.value, "z": round(z.z, 3),
             "direction": z.direction, "flags": list(z.flags)} for z in result.zscores.values()]
    sources = sorted({z.reference.source for z in result.zscores.values()})
    if as_json:
        click.echo(json.dumps({"site": where, "sex": sex, "age": age, "code": result.code,
                               "zscores": rows, "counts": dict(result.counts),
                               "flags": list(result.flags), "reference": sources}, indent=2))
    else:
        click.echo(f"{path}: site {where}, {sex}, age {age:g}; reference: {'; '.join(sources)}")
        for row in rows:
            mark = "  ABNORMAL" if row["direction"] != "normal" else ""
            click.echo(f"  {row['measure']:<5} {row['value']:>9.3f}  z {row['z']:+6.2f}  "
                       f"{row['direction']}{mark}")
        for name, value in result.counts.items():
            click.echo(f"  {name:<5} {value:>9.3f}  (not z-scored)")
        click.echo(f"profile {result.code}" + (f"; {', '.join(result.flags)}" if result.flags
                                               else ""))
    if png_path:
        from qst_station.profile_plot import save_profile_plot

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        written = save_profile_plot(result, png_path,
                                    participant=session_file.open(path).participant, site=where)
        click.echo(f"plot: {written}")


def _run_protocol(name: str, simulate: bool, participant_file: str | None, seed: int,
                  speed: float, out_dir: Path, visit: str,
                  calibration_path: str | None = None, triggers: str = "serial") -> None:
    from drivers.errors import DeviceError
    from drivers.interfaces import CapabilityError
    from protocols.files import ProtocolFileError, load_protocol
    from qst_station import session as session_file
    from qst_station.clock import SimulatedClock
    from qst_station.simulated_run import run_simulated, session_path
    from qst_station.summary import format_summary, summarize
    from sim.participant import ParticipantFileError, load_participant

    if not simulate:
        raise click.UsageError("running a protocol on real devices comes with the operator "
                               "console; add --simulate to run it on simulated devices")
    try:
        protocol = load_protocol(name)
        model = load_participant(participant_file)
    except (ProtocolFileError, ParticipantFileError) as exc:
        raise click.ClickException(str(exc)) from None
    path = session_path(out_dir, model.participant.code, visit, protocol.name)
    try:
        protocol = _calibrated(protocol, calibration_path, model, seed, speed, out_dir, visit)
        click.echo(f"{protocol.protocol.title}: simulated participant "
                   f"{model.participant.code} (seed {seed}), {speed:g}x real time -> {path}")
        run_simulated(protocol, SimulatedClock(speed), path, model, seed, visit, click.echo,
                      options={"triggers": triggers})
    except (CapabilityError, DeviceError, RuntimeError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_summary(summarize(session_file.open(path))))
    if "scanner" in protocol.roles:
        click.echo(f"next: qst-station export {path} --bids bids --subject 01 --session 1 "
                   f"--task {protocol.name.removeprefix('fmri-')}")


def _calibrated(protocol, calibration_path: str | None, model, seed: int,  # noqa: ANN001,ANN202
                speed: float, out_dir: Path, visit: str):
    """A scanner run with its VASnn levels from ``calibration_path``; in a simulation
    without one, the simulated participant is calibrated first (heat-calibration)."""
    from protocols.files import load_protocol
    from protocols.paradigm_file import VAS_LEVEL, ParadigmFile
    from qst_station.calibration import calibrated_temperatures
    from qst_station.clock import SimulatedClock
    from qst_station.simulated_run import run_simulated, session_path

    if not isinstance(protocol, ParadigmFile):
        if calibration_path:
            raise click.UsageError("--calibration is for scanner runs (kind fmri-run)")
        return protocol
    if calibration_path:
        return protocol.with_calibration(calibrated_temperatures(calibration_path))
    needed = sorted({t.level for t in protocol.trials if t.level and VAS_LEVEL.match(t.level)
                     and t.level not in protocol.levels})
    if not needed:
        return protocol
    calibration = load_protocol("heat-calibration")
    cal_path = session_path(out_dir, model.participant.code, visit, calibration.name)
    click.echo(f"{protocol.name} needs {', '.join(needed)} and no --calibration was given: "
               f"calibrating the simulated participant first -> {cal_path}")
    run_simulated(calibration, SimulatedClock(speed), cal_path, model, seed, visit, click.echo)
    return protocol.with_calibration(calibrated_temperatures(cal_path))


# ---------------------------------------------------------------------------- demo session

DEMO_PLAN_HEADLESS = {"volumes": 10, "tr_s": 2.0, "every": 4}


def default_demo_path(participant: str, visit: str) -> Path:
    """sessions/sub-<participant>_ses-<visit>_<UTC time>.h5 under the working directory."""
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("sessions") / f"sub-{participant}_ses-{visit}_{stamp}.h5"


def _record_demo(path: Path, clock, plan: dict, participant: str,  # noqa: ANN001
                 visit: str, config: StationConfig, resume: bool = False) -> None:
    from qst_station import session as session_file
    from qst_station.demo_session import DemoPlan, record_demo_session
    from qst_station.summary import format_summary, summarize

    record_demo_session(path, clock, DemoPlan(**plan), participant, visit,
                        print_line=click.echo, resume=resume, config=config)
    click.echo(format_summary(summarize(session_file.open(path))))
    click.echo(f"next: qst-station export {path} --bids bids --task heat --csv tables")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.option("--volumes", type=click.IntRange(4, 2000), default=16, show_default=True)
@click.option("--tr", "tr_s", type=click.FloatRange(0.5, 10.0), default=2.0, show_default=True,
              help="Repetition time, s.")
@click.option("--every", type=click.IntRange(1, 100), default=4, show_default=True,
              help="A heat stimulus every N volumes (from volume 3).")
@click.option("--participant", default="DEMO01", show_default=True)
@click.option("--visit", default="baseline", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="PATH exists (e.g. an interrupted session): add this run to it as a new part.")
@click.option("--calibration", "calibration_path", type=click.Path(dir_okay=False),
              default=None, help="A heat-calibration session: heat at its T30/T50/T70.")
@SPEED
@CONFIG
def demo(path: str | None, volumes: int, tr_s: float, every: int, participant: str,
         visit: str, seed: int, resume: bool, calibration_path: str | None, speed: float,
         config_path: str | None) -> None:
    """Record a simulated fMRI heat-pain run (TCS II, scanner, ECG via LSL) into PATH."""

    target = Path(path) if path else default_demo_path(participant, visit)
    if target.exists() and not resume:
        raise click.BadParameter(f"{target} exists; choose a new file, or --resume to add "
                                 "this run to it", param_hint="PATH")
    plan: dict = {"volumes": volumes, "tr_s": tr_s, "every": every, "seed": seed}
    if calibration_path:
        from qst_station.calibration import CalibrationError, calibrated_temperatures

        try:
            temperatures = calibrated_temperatures(calibration_path)
        except (CalibrationError, RuntimeError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        plan["targets_c"] = tuple(temperatures.values())
        click.echo("calibrated: " + ", ".join(f"{k} {v:g} °C" for k, v in temperatures.items()))
    config = _load(config_path)
    try:
        _record_demo(target, _clock(speed), plan, participant, visit, config, resume)
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


# ---------------------------------------------------------------------------- export


@main.command("export")
@click.argument("session_path", metavar="SESSION.h5")
@click.option("--bids", "bids_dir", metavar="DIR", default=None,
              help="BIDS dataset directory: events, stimulus traces and physio of one run.")
@click.option("--subject", default=None, help="BIDS subject label (default: the participant).")
@click.option("--session", "session_label", default=None,
              help="BIDS session label (default: the visit).")
@click.option("--task", default=None, help="BIDS task label (needed with --bids).")
@click.option("--run", type=click.IntRange(min=0), default=None,
              help="Export only this fMRI run ('fmri-run' phases) and label the files run-N.")
@click.option("--csv", "csv_dir", metavar="DIR", default=None,
              help="Directory for trials.csv, measures.csv, events.csv and streams.csv.")
def export(session_path: str, bids_dir: str | None, subject: str | None,
           session_label: str | None, task: str | None, run: int | None,
           csv_dir: str | None) -> None:
    """Export a session file as BIDS (fMRI events, stim, physio) and/or tidy CSV tables."""
    from qst_station import session as session_file
    from qst_station.export_bids import BidsExportError, check_label, classify, export_bids
    from qst_station.export_csv import export_csv

    if not bids_dir and not csv_dir:
        raise click.ClickException("nothing to export: give --bids DIR and/or --csv DIR")
    given = [name for name, value in (("--subject", subject), ("--session", session_label),
                                      ("--task", task), ("--run", run)) if value is not None]
    if not bids_dir and given:
        raise click.ClickException(f"{given[0]} needs --bids")
    if bids_dir and not task:
        raise click.ClickException("--bids needs --task")
    try:
        s = session_file.open(session_path)
        written = []
        if bids_dir:
            subject = check_label("subject", subject or s.participant)
            session_label = check_label("session", session_label or s.visit)
            written += export_bids(s, bids_dir, subject, session_label, task, run)
            for stream in s.streams.values():
                role = classify(stream)
                if role.kind == "skip":
                    click.echo(f"skipped stream {stream.name}: {role.reason}")
        if csv_dir:
            written += export_csv(s, csv_dir)
    except (session_file.SessionReadError, BidsExportError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        where = f"cannot write {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
        raise click.ClickException(where) from None
    for path in written:
        click.echo(str(path))


@main.command("hrv")
@click.argument("session_path", metavar="SESSION.h5")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--store", is_flag=True,
              help="Also write it into the file as /analysis/hrv (replacing an earlier one).")
def hrv_command(session_path: str, as_json: bool, store: bool) -> None:
    """HRV per epoch (parts, baseline, blocks, stimulus windows) and HR responses."""
    import json

    from qst_station import session as session_file
    from qst_station.hrv_epochs import HrvStoreError, analyze, format_hrv, store_hrv
    from qst_station.recording import plain

    try:
        result = store_hrv(session_path) if store else analyze(session_file.open(session_path))
    except (session_file.SessionReadError, HrvStoreError, OSError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(plain(result), indent=2) if as_json else format_hrv(result))
    if store:
        click.echo(f"stored in {session_path}: /analysis/hrv", err=as_json)


if __name__ == "__main__":
    main()
