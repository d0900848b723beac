"""The ``qst-station`` command line, in-process (CliRunner) and as real processes.

The subprocess tests do what a new user does from two terminals: serve a simulated TCS II
on a symlinked pseudo-terminal, probe it, stop it with Ctrl-C; and run the headless demo,
with and without a display. Subprocesses inherit ``LSLAPICFG`` from conftest through
``os.environ``, so LSL stays on this machine. Every wait is bounded.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from qst_station import __version__
from qst_station.cli import main
from qst_station.config import ENV_VAR
from sim.tcs import SimulatedTcs

CLI = [sys.executable, "-m", "qst_station.cli"]
# What the subprocesses inherit: this environment (with conftest's LSLAPICFG) minus any
# station configuration of the developer's own.
ENV = {k: v for k, v in os.environ.items() if k != ENV_VAR}
GOOD = """\
[devices.thermode]
port = "/dev/ttyACM0"

[devices.thermode.limits]
min_celsius = 10.0
max_celsius = 48.0
max_rate = 100.0
"""


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every group and command under ``group``, as argument paths (``()`` is the root)."""
    yield prefix
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMAND_PATHS = list(_command_paths(main))


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv(ENV_VAR, raising=False)
    return CliRunner()


def _one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got: {output!r}"
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------ help and version


def test_command_tree_is_what_the_docs_describe() -> None:
    assert {" ".join(p) for p in COMMAND_PATHS} >= {
        "", "run", "probe", "probe tcs", "sim", "sim tcs", "config", "config check",
        "config show",
    }


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "qst-station")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_everywhere(runner: CliRunner, path: tuple[str, ...], flag: str) -> None:
    result = runner.invoke(main, [*path, flag])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert " ".join(path) in result.output.splitlines()[0]
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    # The command's own summary is shown (click may rewrap it).
    summary = (command.help or "").splitlines()[0]
    assert " ".join(summary.split()) in " ".join(result.output.split())


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"qst-station, version {__version__}"


# ------------------------------------------------------------------ config


def test_config_check_good_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(GOOD, encoding="utf-8")
    result = runner.invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: OK" in result.output
    assert "thermode: tcs2 on /dev/ttyACM0, 10-48 °C, max 100 °C/s" in result.output


def test_config_check_bad_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(GOOD.replace("max_celsius = 48.0", "max_celsius = 65"), encoding="utf-8")
    result = runner.invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    line = _one_line_error(result.output)
    assert f"{path}:6: devices.thermode.limits.max_celsius:" in line
    assert "OK" not in result.output


def test_config_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    result = runner.invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    line = _one_line_error(result.output)
    assert str(path) in line
    assert "cannot read" in line


def test_config_show_honours_env_var(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(GOOD, encoding="utf-8")
    result = runner.invoke(main, ["config", "show"], env={ENV_VAR: str(path)})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# source: {path}\n")
    assert '"port": "/dev/ttyACM0"' in result.output


def test_config_show_default_is_simulated(runner: CliRunner) -> None:
    result = runner.invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "# source: embedded default" in result.output
    assert '"port": "sim"' in result.output


def test_run_with_bad_config_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(GOOD.replace("max_celsius", "max_celcius"), encoding="utf-8")
    result = runner.invoke(main, ["run", "--headless", "--config", str(path)])
    assert result.exit_code == 1
    assert "max_celcius" in _one_line_error(result.output)


# ------------------------------------------------------------------ probe, in-process


def test_probe_tcs_against_simulator(runner: CliRunner, sim: SimulatedTcs) -> None:
    result = runner.invoke(main, ["probe", "tcs", sim.port])
    assert result.exit_code == 0, result.output
    fields = dict(
        (key.strip(), value.strip())
        for key, value in (line.split(":", 1) for line in result.output.splitlines())
    )
    assert fields["port"] == sim.port
    assert fields["firmware"] == "2.4-sim"
    assert fields["probe id"] == "SIM-0001"
    assert fields["error codes"].endswith(": OK")
    assert fields["error codes"].startswith("0 0 0 0 0 0 ")
    zones = fields["zones"].removesuffix("°C").split()
    assert len(zones) == 5
    assert all(25.0 < float(z) < 40.0 for z in zones)


def test_probe_tcs_nonexistent_port(runner: CliRunner) -> None:
    result = runner.invoke(main, ["probe", "tcs", "/dev/nonexistent"])
    assert result.exit_code == 1
    assert "/dev/nonexistent" in _one_line_error(result.output)


# ------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (["sim", "tcs", "--speed", "0"], "--speed"),
        (["run", "--speed", "-1"], "--speed"),
        (["run", "--speed", "fast"], "--speed"),
        (["probe", "tcs"], "PORT"),
        (["probe", "tcs", "/dev/x", "--char-delay-ms", "0.5"], "--char-delay-ms"),
        (["nonsense"], "nonsense"),
    ],
    ids=["sim-speed-0", "run-speed-negative", "run-speed-text", "probe-no-port",
         "probe-char-delay", "unknown-command"],
)
def test_bad_arguments_are_usage_errors(runner: CliRunner, args: list[str], bad: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Usage: ")
    error = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1, result.output
    assert bad in error[0]


# ------------------------------------------------------------------ real processes


class _Lines:
    """Read a process's stdout line by line in a thread, so waits can be bounded."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed within {timeout} s; got {self.lines}")

    def rest(self, timeout: float) -> list[str]:
        """All remaining lines, once the process has closed its stdout."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stdout still open"
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return self.lines


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], _Lines, Path]]:
    link = tmp_path / "tcs"
    proc = subprocess.Popen(
        [*CLI, "sim", "tcs", "--link", str(link)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        yield proc, _Lines(proc), link
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_two_terminals_sim_then_probe(
    sim_process: tuple[subprocess.Popen[str], _Lines, Path],
) -> None:
    proc, out, link = sim_process
    started = time.monotonic()
    banner = out.wait_for("simulated TCS II on", timeout=20)
    assert banner.startswith(f"simulated TCS II on {link} -> /dev/pts/"), banner
    assert "Ctrl-C to stop" in banner
    assert link.is_symlink()
    assert os.readlink(link) == banner.split(" -> ")[1].split()[0]
    while not link.exists() and time.monotonic() - started < 20:
        time.sleep(0.05)
    assert link.exists()

    probe = subprocess.run(
        [*CLI, "probe", "tcs", str(link)], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "firmware:     2.4-sim" in probe.stdout
    assert "probe id:     SIM-0001" in probe.stdout
    assert any(
        line.startswith("error codes:") and line.endswith(": OK")
        for line in probe.stdout.splitlines()
    ), probe.stdout
    assert proc.poll() is None, "simulator died while being probed"

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    lines = out.rest(timeout=10)
    assert lines[-1] == "simulator stopped", lines
    assert not any("Traceback" in line for line in lines), lines
    assert not link.is_symlink()
    assert not link.exists()


def test_sim_tcs_sigterm_also_stops_cleanly(
    sim_process: tuple[subprocess.Popen[str], _Lines, Path],
) -> None:
    proc, out, link = sim_process
    out.wait_for("simulated TCS II on", timeout=20)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert out.rest(timeout=10)[-1] == "simulator stopped"
    assert not link.is_symlink()


def test_sim_tcs_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    link = tmp_path / "tcs"
    link.write_text("precious", encoding="utf-8")
    result = subprocess.run(
        [*CLI, "sim", "tcs", "--link", str(link)], capture_output=True, text=True, timeout=30,
        env=ENV,
    )
    assert result.returncode == 1
    assert _one_line_error(result.stderr) == (
        f"Error: {link} exists and is not a symlink; choose another --link"
    )
    assert link.read_text(encoding="utf-8") == "precious"


def test_sim_tcs_link_in_missing_directory_is_one_line(tmp_path: Path) -> None:
    link = tmp_path / "no-such-dir" / "tcs"
    result = subprocess.run(
        [*CLI, "sim", "tcs", "--link", str(link)], capture_output=True, text=True, timeout=30,
        env=ENV,
    )
    assert result.returncode == 1
    assert str(link) in _one_line_error(result.stderr)


def _check_headless_demo(output: str, cwd: Path) -> None:
    lines = output.splitlines()
    assert any("firmware 2.4-sim, probe SIM-0001" in line for line in lines), output
    header = next(line for line in lines if "zone1" in line)
    assert header.split() == ["time", "neutral", "zone1", "zone2", "zone3", "zone4", "zone5"]
    table = lines[lines.index(header) + 1:lines.index("")]
    rows = [line.split() for line in table if line[:1] == " "]
    assert len(rows) >= 5, output
    peak = max(float(row[2]) for row in rows)
    assert 44.0 <= peak <= 45.5, f"zone 1 never reached the 45 °C target: {output}"
    assert any(line.endswith("samples streamed; device reports no errors") for line in lines)
    assert "Traceback" not in output
    # then a simulated fMRI run is recorded, summarized, and the export command suggested
    recorded = list((cwd / "sessions").glob("sub-DEMO01_ses-baseline_*.h5"))
    assert len(recorded) == 1, output
    assert "participant DEMO01  visit baseline  site -  status SUCCESS" in lines
    assert any(line.startswith("scanner: 10 volumes (") for line in lines), output
    assert lines[-1].startswith(f"next: qst-station export sessions/{recorded[0].name} --bids")


def test_run_headless_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "run", "--headless", "--speed", "5"],
        capture_output=True, text=True, timeout=60, env=ENV, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    _check_headless_demo(result.stdout, tmp_path)
    assert "no display found" not in result.stdout


def test_run_without_display_falls_back_to_headless_demo(tmp_path: Path) -> None:
    env = {
        k: v for k, v in ENV.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    assert "LSLAPICFG" in env
    result = subprocess.run(
        [*CLI, "run", "--speed", "5"], capture_output=True, text=True, timeout=60, env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (
        "qst-station: no display found (DISPLAY and WAYLAND_DISPLAY are not set); "
        "running the headless demo instead."
    )
    _check_headless_demo(result.stdout, tmp_path)


def test_display_problem_names_missing_qt_system_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qst_station import cli

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cli, "missing_xcb_packages", lambda: ["libxcb-icccm4", "libxcb-cursor0"])
    problem = cli.display_problem()
    assert problem is not None
    assert "sudo apt-get install libxcb-icccm4 libxcb-cursor0" in problem
    monkeypatch.setattr(cli, "missing_xcb_packages", lambda: [])
    assert cli.display_problem() is None
    monkeypatch.delenv("DISPLAY")
    assert "no display found" in (cli.display_problem() or "")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert cli.display_problem() is None


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libxcb-render-util.so.0.0.0", "libxcb-render-util0"),
    ],
)
def test_debian_package_names_from_sonames(soname: str, package: str) -> None:
    from qst_station.cli import _debian_package

    assert _debian_package(soname) == package


def test_missing_xcb_packages_asks_the_dynamic_linker() -> None:
    from qst_station.cli import missing_xcb_packages

    missing = missing_xcb_packages()
    assert all(name.startswith("lib") for name in missing)
    assert len(missing) == len(set(missing))


def test_config_check_lists_every_bench_device(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        '[devices.thermode]\nport = "sim"\n'
        '[devices.medoc]\ndriver = "medoc"\nhost = "127.0.0.1"\n'
        '[devices.scanner]\ndriver = "trigger-box"\nport = "/dev/ttyACM1"\n'
        '[devices.cues]\ndriver = "lsl-markers"\nstream = "scanner"\n'
    )
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "medoc: medoc on 127.0.0.1:20121" in result.output
    assert "scanner: trigger-box on /dev/ttyACM1" in result.output
    assert "cues: lsl-markers on scanner" in result.output
