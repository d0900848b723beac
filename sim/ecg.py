"""A simulated ECG (and optional RR-interval stream) published on LSL, with its true RR series.

Pure parts: :class:`RrModel` / :func:`rr_series` (RR intervals with respiratory and Mayer-wave
modulation plus noise) and :func:`ecg_waveform` (a sum-of-Gaussians PQRST per beat with the R
peak at the beat time, baseline wander and noise). I/O: :class:`EcgSimulator` pushes the
waveform in chunks on the program clock (sample ``i`` at ``t0 + i / rate``), pushes one RR
sample per beat (timestamp = beat time) and writes the true beats to a TSV file
(:data:`TRUTH_COLUMNS`, read back with :func:`read_truth`).
"""

from __future__ import annotations

import bisect
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from qst_station.clock import Clock, LslClock, make_clock
from qst_station.lsl_setup import pylsl_module

REFERENCE_RR_S = 60.0 / 65.0  # variability amplitudes are given at 65 bpm
MIN_RR_S = 0.25
NOISE_BLOCK = 256  # RR noise is drawn in blocks of this size (same draws for any duration)
FIRST_BEAT_S = 0.5  # first R peak, seconds after the stream's first sample
TRUTH_COLUMNS = ("beat", "time_s", "rr_ms")

# Waves as (offset from R at RR = 1 s, sigma, amplitude mV, scales with sqrt(RR)).
WAVES: tuple[tuple[float, float, float, bool], ...] = (
    (-0.17, 0.025, 0.15, False),  # P
    (-0.03, 0.008, -0.12, False),  # Q
    (0.0, 0.008, 1.10, False),  # R
    (0.03, 0.009, -0.25, False),  # S
    (0.28, 0.050, 0.30, True),  # T: QT lengthens with RR (Bazett)
)
WAVE_REACH_SIGMAS = 5.0
RR_SCALE_RANGE_S = (0.3, 2.0)  # RR range used to scale the T wave
WANDER_HZ = (0.22, 0.03)  # breathing, slow drift
MARGIN_S = 1.0  # no wave reaches further than this from its R peak


# ---------------------------------------------------------------------------- RR model


@dataclass(frozen=True)
class RrModel:
    """RR_k = mean + HF sine + LF sine + Gaussian noise, evaluated at beat k's time.

    Amplitudes (ms) apply at 65 bpm and scale in proportion to the mean RR, so the
    coefficient of variation does not depend on ``mean_hr_bpm``. Defaults give SDNN about
    40 ms and RMSSD about 35 ms.
    """

    mean_hr_bpm: float = 65.0
    hf_hz: float = 0.25  # respiratory sinus arrhythmia
    lf_hz: float = 0.1  # Mayer waves
    hf_ms: float = 28.0
    lf_ms: float = 40.0
    noise_ms: float = 12.0

    def __post_init__(self) -> None:
        if not 20.0 <= self.mean_hr_bpm <= 240.0:
            raise ValueError(f"mean heart rate must be in [20, 240] bpm, got {self.mean_hr_bpm}")
        if min(self.hf_ms, self.lf_ms, self.noise_ms) < 0:
            raise ValueError("variability amplitudes must be >= 0")
        if min(self.hf_hz, self.lf_hz) <= 0:
            raise ValueError("modulation frequencies must be positive")

    @property
    def mean_rr_s(self) -> float:
        return 60.0 / self.mean_hr_bpm

    def intervals(self, seed: int) -> Iterator[float]:
        """Endless RR intervals (s); the first starts at beat time 0. Deterministic per seed."""
        rng = np.random.default_rng(seed)
        phase_hf, phase_lf = rng.uniform(0.0, 2.0 * math.pi, 2)
        scale = self.mean_rr_s / REFERENCE_RR_S / 1000.0
        t = 0.0
        while True:
            for z in rng.standard_normal(NOISE_BLOCK):
                swing = (self.hf_ms * math.sin(2.0 * math.pi * self.hf_hz * t + phase_hf)
                         + self.lf_ms * math.sin(2.0 * math.pi * self.lf_hz * t + phase_lf)
                         + self.noise_ms * float(z))
                rr = max(MIN_RR_S, self.mean_rr_s + scale * swing)
                yield rr
                t += rr

    def series(self, seed: int, duration_s: float) -> np.ndarray:
        """The RR intervals (s) whose beats, from beat time 0, fall within ``duration_s``."""
        if not duration_s >= 0:
            raise ValueError(f"duration must be >= 0, got {duration_s!r}")
        out: list[float] = []
        total = 0.0
        for rr in self.intervals(seed):
            total += rr
            if total > duration_s:
                break
            out.append(rr)
        return np.asarray(out)


def rr_series(seed: int, duration_s: float, mean_hr_bpm: float = 65.0,
              **variability: float) -> np.ndarray:
    """RR intervals in seconds covering ``duration_s``; ``variability``: :class:`RrModel` fields.

    A shorter duration gives a prefix of a longer one (same seed).
    """
    return RrModel(mean_hr_bpm, **variability).series(seed, duration_s)


def beat_times(rr_s: np.ndarray, first_s: float = 0.0) -> np.ndarray:
    """Beat times: ``first_s`` then each interval added (one more beat than intervals)."""
    return first_s + np.concatenate(([0.0], np.cumsum(rr_s)))


# ---------------------------------------------------------------------------- waveform


def ecg_waveform(beat_times_s: np.ndarray, rate_hz: float, duration_s: float, seed: int,
                 noise_mv: float = 0.005, wander_mv: float = 0.1,
                 start_s: float = 0.0) -> np.ndarray:
    """The ECG (mV, float32) sampled at ``start_s + i / rate_hz`` for ``duration_s``.

    Each beat is a PQRST sum of Gaussians with the R peak at the beat time (the T wave's
    delay and width scale with the square root of the preceding RR), on a baseline wander
    (seeded phases) with white noise (seeded by ``seed`` and the first sample index).
    """
    if not rate_hz > 0 or not duration_s >= 0:
        raise ValueError(f"need rate > 0 and duration >= 0, got {rate_hz!r}, {duration_s!r}")
    n = int(round(duration_s * rate_hz))
    first = int(round(start_s * rate_hz))
    t = start_s + np.arange(n) / rate_hz
    beats = np.asarray(beat_times_s, dtype=float)
    out = _baseline(t, seed, wander_mv)
    if beats.size:
        stretch = np.sqrt(np.clip(_preceding_rr(beats), *RR_SCALE_RANGE_S))
        for offset, sigma, amplitude, scales in WAVES:
            factor = stretch if scales else np.ones_like(beats)
            out += _wave(beats + offset * factor, sigma * factor, amplitude, rate_hz, start_s, n)
    if noise_mv > 0 and n:
        rng = np.random.default_rng([seed, 2, max(first, 0)])
        out += rng.normal(0.0, noise_mv, n)
    return out.astype(np.float32)


def _preceding_rr(beats: np.ndarray) -> np.ndarray:
    """RR before each beat; the first beat borrows the next interval (1 s if alone)."""
    if beats.size < 2:
        return np.ones_like(beats)
    rr = np.diff(beats)
    return np.concatenate(([rr[0]], rr))


def _baseline(t: np.ndarray, seed: int, wander_mv: float) -> np.ndarray:
    """Breathing-rate wander plus a slower drift of half its amplitude (seeded phases)."""
    phases = np.random.default_rng([seed, 1]).uniform(0.0, 2.0 * math.pi, len(WANDER_HZ))
    out = np.zeros(t.size)
    for k, (hz, phase) in enumerate(zip(WANDER_HZ, phases, strict=True)):
        out += wander_mv / (1 + k) * np.sin(2.0 * math.pi * hz * t + phase)
    return out


def _wave(centres: np.ndarray, sigmas: np.ndarray, amplitude: float, rate_hz: float,
          start_s: float, n: int) -> np.ndarray:
    """One Gaussian per beat, evaluated only within its reach, summed onto ``n`` samples."""
    half = int(math.ceil(WAVE_REACH_SIGMAS * float(sigmas.max()) * rate_hz))
    idx = np.rint((centres - start_s) * rate_hz).astype(np.int64)[:, None] + np.arange(
        -half, half + 1)
    keep = (idx >= 0) & (idx < n)
    if not keep.any():
        return np.zeros(n)
    z = (start_s + idx / rate_hz - centres[:, None]) / sigmas[:, None]
    values = amplitude * np.exp(-0.5 * z * z)
    return np.bincount(idx[keep], weights=values[keep], minlength=n)


# ---------------------------------------------------------------------------- truth file


@dataclass(frozen=True)
class Beat:
    """A published beat: index from 0, time on the program (LSL) clock, RR ending here."""

    index: int
    time: float
    rr_s: float | None  # None for the first beat


def truth_header() -> str:
    return "\t".join(TRUTH_COLUMNS) + "\n"


def truth_line(beat: Beat) -> str:
    rr = "n/a" if beat.rr_s is None else f"{beat.rr_s * 1000.0:.6f}"
    return f"{beat.index}\t{beat.time:.9f}\t{rr}\n"


def read_truth(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s, program clock) and RR (ms, NaN for the first beat) from a truth TSV."""
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if tuple(header) != TRUTH_COLUMNS:
            raise ValueError(f"{path}: not an ECG truth file (header {header})")
        rows = [line.rstrip("\n").split("\t") for line in handle if line.strip()]
    times = np.array([float(r[1]) for r in rows])
    rr = np.array([math.nan if r[2] == "n/a" else float(r[2]) for r in rows])
    return times, rr


# ---------------------------------------------------------------------------- LSL


def rr_stream_name(ecg_name: str) -> str:
    """"qst-sim-ECG" -> "qst-sim-RR"; any other name gets "-RR" appended."""
    return ecg_name[:-4] + "-RR" if ecg_name.endswith("-ECG") else ecg_name + "-RR"


def _stream_info(pylsl: Any, name: str, kind: str, rate: float, fmt: str, unit: str) -> Any:
    info = pylsl.StreamInfo(name, kind, 1, rate, fmt, f"qst-station-sim-{name}")
    channel = info.desc().append_child("channels").append_child("channel")
    channel.append_child_value("label", kind)
    channel.append_child_value("unit", unit)
    channel.append_child_value("type", kind)
    acquisition = info.desc().append_child("acquisition")
    acquisition.append_child_value("manufacturer", "qst-station")
    acquisition.append_child_value("model", f"simulated {kind}")
    return info


class EcgSimulator:
    """Publishes a simulated ECG on LSL; :meth:`start` (or ``with``) begins the pushing.

    The outlets exist from construction, so inlets can connect (and
    :meth:`wait_for_consumers`) before the first sample. Sample ``i`` is stamped
    ``t0 + i / rate_hz`` (``t0`` = clock time at :meth:`start`) and pushed once the clock
    has reached it, every ``chunk_real_s`` real seconds. Beat ``k`` is published (RR
    stream, truth file, :attr:`beats`) once the samples have reached its time.
    """

    def __init__(
        self,
        rate_hz: float = 500.0,
        model: RrModel | None = None,
        seed: int = 0,
        clock: Clock | None = None,
        name: str = "qst-sim-ECG",
        rr_stream: bool = True,
        truth_path: str | os.PathLike[str] | None = None,
        duration_s: float | None = None,
        noise_mv: float = 0.005,
        chunk_real_s: float = 0.03,
        block_s: float = 10.0,
    ) -> None:
        if not 1.0 <= rate_hz <= 10000.0:
            raise ValueError(f"rate must be in [1, 10000] Hz, got {rate_hz!r}")
        if duration_s is not None and not duration_s > 0:
            raise ValueError(f"duration must be positive, got {duration_s!r}")
        if not name:
            raise ValueError("the stream name must not be empty")
        self.rate_hz, self.model, self.seed = float(rate_hz), model or RrModel(), seed
        self.clock = clock or LslClock()
        self.name, self.noise_mv, self.chunk_real_s = name, noise_mv, chunk_real_s
        self.rr_name = rr_stream_name(name) if rr_stream else None
        self.truth_path = truth_path
        self.n_total = None if duration_s is None else int(round(duration_s * rate_hz))
        self.beats: list[Beat] = []
        self.t0: float | None = None
        self.pushed = 0  # samples pushed so far
        self._block_n = max(1, int(round(block_s * rate_hz)))
        self._blocks: dict[int, np.ndarray] = {}
        self._beat_rel: list[float] = [FIRST_BEAT_S]
        self._rr: list[float | None] = [None]
        self._rr_iter = self.model.intervals(seed)
        self._truth: IO[str] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        pylsl = pylsl_module()
        self._ecg = pylsl.StreamOutlet(
            _stream_info(pylsl, name, "ECG", self.rate_hz, "float32", "mV"), 32)
        self._rr_outlet = None if self.rr_name is None else pylsl.StreamOutlet(
            _stream_info(pylsl, self.rr_name, "RR", pylsl.IRREGULAR_RATE, "double64", "s"))

    @property
    def finished(self) -> bool:
        """All ``duration_s`` worth of samples has been pushed."""
        return self.n_total is not None and self.pushed >= self.n_total

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait (real seconds) until every outlet has an inlet connected."""
        outlets = [o for o in (self._ecg, self._rr_outlet) if o is not None]
        return all(bool(o.wait_for_consumers(timeout_s)) for o in outlets)

    def start(self) -> EcgSimulator:
        """Open the truth file, fix ``t0`` (first sample) and start pushing."""
        if self._thread is not None:
            raise RuntimeError("the ECG simulator was already started")
        if self.truth_path is not None:
            self._truth = open(self.truth_path, "w", encoding="utf-8")  # noqa: SIM115
            self._truth.write(truth_header())
        self.t0 = self.clock.now()
        self._thread = threading.Thread(target=self._run, name="sim-ecg", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop pushing and close the truth file (outlets stay open until :meth:`close`)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self._truth is not None:
            self._truth.close()
            self._truth = None

    def close(self) -> None:
        """Stop and take the streams off the network."""
        self.stop()
        self._ecg = self._rr_outlet = None

    def __enter__(self) -> EcgSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` clock seconds for the last sample; True if it was pushed."""
        self._done.wait(None if timeout is None else timeout / self.clock.speed)
        return self.finished

    # ------------------------------------------------------------------ pump

    def _run(self) -> None:
        while True:
            self._pump(self.clock.now())
            if self.finished:
                self._done.set()
                return
            if self._stop.wait(self.chunk_real_s):
                return

    def _pump(self, now: float) -> None:
        """Push every sample stamped up to ``now``, then the beats they reached."""
        assert self.t0 is not None and self._ecg is not None
        due = int(math.floor((now - self.t0) * self.rate_hz)) + 1
        if self.n_total is not None:
            due = min(due, self.n_total)
        if due <= self.pushed:
            return
        data = self._samples(self.pushed, due)
        last_rel = (due - 1) / self.rate_hz
        self._ecg.push_chunk(data.reshape(-1, 1), self.t0 + last_rel)
        self.pushed = due
        self._publish_beats(last_rel)

    def _publish_beats(self, upto_rel: float) -> None:
        assert self.t0 is not None
        self._extend_beats(upto_rel)
        lines = []
        with self._lock:
            while self._beat_rel[len(self.beats)] <= upto_rel:
                k = len(self.beats)
                beat = Beat(k, self.t0 + self._beat_rel[k], self._rr[k])
                self.beats.append(beat)
                lines.append(truth_line(beat))
                if self._rr_outlet is not None and beat.rr_s is not None:
                    self._rr_outlet.push_sample([beat.rr_s], beat.time)
        if self._truth is not None and lines:
            self._truth.writelines(lines)
            self._truth.flush()

    def _extend_beats(self, until_rel: float) -> None:
        """Draw RR intervals until a beat lies beyond ``until_rel`` (seconds from t0)."""
        while self._beat_rel[-1] <= until_rel:
            rr = next(self._rr_iter)
            self._beat_rel.append(self._beat_rel[-1] + rr)
            self._rr.append(rr)

    def _samples(self, i0: int, i1: int) -> np.ndarray:
        """Samples ``i0`` to ``i1 - 1``, cut from fixed-size blocks."""
        parts = []
        i = i0
        while i < i1:
            b, j = divmod(i, self._block_n)
            take = min(i1 - i, self._block_n - j)
            parts.append(self._block(b)[j:j + take])
            i += take
        return np.concatenate(parts)

    def _block(self, b: int) -> np.ndarray:
        if b not in self._blocks:
            start = b * self._block_n / self.rate_hz
            end = start + self._block_n / self.rate_hz
            self._extend_beats(end + MARGIN_S)
            lo = bisect.bisect_left(self._beat_rel, start - MARGIN_S)
            hi = bisect.bisect_right(self._beat_rel, end + MARGIN_S)
            beats = np.asarray(self._beat_rel[max(lo - 1, 0):hi])
            self._blocks = {k: v for k, v in self._blocks.items() if k >= b - 1}
            self._blocks[b] = ecg_waveform(beats, self.rate_hz, self._block_n / self.rate_hz,
                                           self.seed, self.noise_mv, start_s=start)
        return self._blocks[b]


# ---------------------------------------------------------------------------- command


def describe(sim: EcgSimulator, duration_s: float | None, speed: float) -> str:
    """The one line the command prints on start."""
    streams = f"LSL stream {sim.name!r} (ECG, 1 channel mV, {sim.rate_hz:g} Hz)"
    if sim.rr_name is not None:
        streams += f" and {sim.rr_name!r} (RR in s, one per beat)"
    run = "until Ctrl-C" if duration_s is None else f"for {duration_s:g} s"
    truth = f"; true RR series in {sim.truth_path}" if sim.truth_path else ""
    clock = "" if speed == 1.0 else f", clock speed {speed:g}x"
    return (f"publishing {streams}: mean HR {sim.model.mean_hr_bpm:g} bpm, seed {sim.seed}"
            f"{clock}, {run}{truth}")


def serve_forever(
    rate_hz: float = 500.0,
    mean_hr_bpm: float = 65.0,
    seed: int = 0,
    duration_s: float | None = None,
    rr_stream: bool = True,
    truth_path: str | None = None,
    name: str = "qst-sim-ECG",
    speed: float = 1.0,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> int:
    """Publish until Ctrl-C/SIGTERM (or ``stop``) or ``duration_s``; returns 0.

    Raises ValueError for bad arguments, OSError if the truth file cannot be written.
    """
    sim = EcgSimulator(rate_hz, RrModel(mean_hr_bpm), seed, make_clock(speed), name,
                       rr_stream, truth_path, duration_s)
    stop = stop or threading.Event()
    previous = _on_signals(lambda *_: stop.set())
    try:
        sim.start()
        echo(describe(sim, duration_s, speed))
        while not stop.wait(0.1) and not sim.finished:
            pass
    finally:
        sim.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo(f"ECG simulator stopped: {sim.pushed} samples, {len(sim.beats)} beats")
    return 0


def _on_signals(handler: Callable[..., None]) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to ``handler`` (main thread only); the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return previous
