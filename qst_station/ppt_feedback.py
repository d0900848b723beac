"""Pressure pain threshold (PPT) with a handheld algometer: ramp tracking, no Qt.

The examiner pushes the probe by hand and should raise the pressure at the target rate
(DFNS: 50 kPa/s on a 1 cm² probe). :class:`PptTracker` takes the pressure samples in
arrival order, starts a trial when the pressure rises above an onset threshold (or when
asked), estimates the current application rate from the last fraction of a second, and
captures the threshold at a response: the latest sample at or before the response's
timestamp on the program clock. A capture is flagged when the mean rate of that
application (start of the trial to the captured sample) is off target.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

DEFAULT_RATE_KPA_S = 50.0


class Pace(Enum):
    """Application rate relative to the target."""

    UNKNOWN = "—"
    TOO_SLOW = "too slow"
    ON_TARGET = "on target"
    TOO_FAST = "too fast"

    @property
    def label(self) -> str:
        return self.value


@dataclass(frozen=True)
class PptSettings:
    """Target ramp and the thresholds that start, end and judge a trial."""

    rate_kpa_s: float = DEFAULT_RATE_KPA_S  # target application rate
    tolerance: float = 0.2  # fraction of the target rate still "on target"
    onset_kpa: float = 5.0  # a trial starts when the pressure rises above this
    release_kpa: float = 2.5  # ... and ends when it falls below this
    window_s: float = 0.4  # the current rate is fitted over this much of the newest data
    max_trial_s: float = 60.0  # a trial longer than this is closed (bounded memory)

    def __post_init__(self) -> None:
        if not self.rate_kpa_s > 0:
            raise ValueError(f"target rate must be positive, got {self.rate_kpa_s} kPa/s")
        if not 0 < self.tolerance < 1:
            raise ValueError(f"tolerance must be between 0 and 1, got {self.tolerance}")
        if not 0 <= self.release_kpa <= self.onset_kpa:
            raise ValueError(f"need 0 <= release ({self.release_kpa} kPa) "
                             f"<= onset ({self.onset_kpa} kPa)")
        if not self.window_s > 0 or not self.max_trial_s > 0:
            raise ValueError("rate window and longest trial must be positive")


Series = Sequence[float] | np.ndarray


def estimate_rate(times: Series, kpa: Series, window_s: float,
                  min_samples: int = 3) -> float | None:
    """Least-squares slope (kPa/s) of the samples within ``window_s`` of the newest one.

    None when fewer than ``min_samples`` samples fall in the window or they share one time.
    """
    if not len(times):
        return None
    start = bisect.bisect_left(times, times[-1] - window_s)
    t = np.asarray(times[start:], dtype=float)
    p = np.asarray(kpa[start:], dtype=float)
    if len(t) < min_samples:
        return None
    t = t - t[-1]  # LSL timestamps are large; centre them before squaring
    spread = float(np.sum((t - t.mean()) ** 2))
    if spread <= 0:
        return None
    return float(np.sum((t - t.mean()) * (p - p.mean())) / spread)


def classify(rate: float | None, target: float, tolerance: float) -> Pace:
    """Too fast / too slow when ``rate`` deviates more than ``tolerance`` from ``target``."""
    if rate is None:
        return Pace.UNKNOWN
    if rate > target * (1 + tolerance):
        return Pace.TOO_FAST
    if rate < target * (1 - tolerance):
        return Pace.TOO_SLOW
    return Pace.ON_TARGET


def index_at(times: Series, timestamp: float) -> int | None:
    """Index of the latest sample at or before ``timestamp`` (times ascending), else None."""
    i = bisect.bisect_right(times, timestamp) - 1
    return i if i >= 0 else None


@dataclass(frozen=True)
class Capture:
    """One pressure pain threshold."""

    trial: int
    kpa: float  # pressure of the captured sample
    sample_time: float  # its timestamp (program clock)
    response_time: float  # when the response arrived (program clock)
    elapsed_s: float  # captured sample, seconds since the trial began
    mean_rate_kpa_s: float | None  # trial start to captured sample
    target_kpa_s: float
    pace: Pace  # mean rate against the target at capture time
    source: str  # "examiner", "buttonbox", ...

    @property
    def flagged(self) -> bool:
        """The application was too fast, too slow or too short to judge."""
        return self.pace is not Pace.ON_TARGET


@dataclass
class Trial:
    """One application of the probe, from its start sample (``t0``, ``p0``) on."""

    number: int
    t0: float
    p0: float
    target_kpa_s: float
    times: list[float] = field(default_factory=list)
    kpa: list[float] = field(default_factory=list)
    started: bool = False  # pressure has risen above onset
    open: bool = True  # still recording
    capture: Capture | None = None

    def __post_init__(self) -> None:
        if not self.times:
            self.times, self.kpa = [self.t0], [self.p0]

    def target(self, elapsed_s: float) -> float:
        """Pressure the target ramp has reached ``elapsed_s`` after the start."""
        return self.p0 + self.target_kpa_s * elapsed_s

    @property
    def elapsed_s(self) -> float:
        return self.times[-1] - self.t0

    def restart_at(self, t: float, p: float) -> None:
        """Move the start to a newer sample (still waiting for the rise)."""
        self.t0, self.p0, self.times, self.kpa = t, p, [t], [p]


class PptTracker:
    """Trials, live rate and captures from samples fed in arrival order."""

    def __init__(self, settings: PptSettings | None = None) -> None:
        self.settings = settings or PptSettings()
        self.trial: Trial | None = None
        self.captures: list[Capture] = []
        self.latest: tuple[float, float] | None = None
        self._trials = 0
        self._armed = True  # pressure has been below release since the last trial began

    def set_target_rate(self, rate_kpa_s: float) -> None:
        """Change the target; the current trial is judged against the new one."""
        self.settings = replace(self.settings, rate_kpa_s=rate_kpa_s)
        if self.trial is not None:
            self.trial.target_kpa_s = rate_kpa_s

    def add(self, t: float, kpa: float) -> None:
        """One sample (program clock seconds, kPa); samples must come in time order."""
        previous, self.latest = self.latest, (t, kpa)
        if kpa < self.settings.release_kpa:
            self._armed = True
        trial = self.trial
        if trial is None or not trial.open:
            self._maybe_begin(previous, t, kpa)
        elif trial.started:
            self._record(t, kpa)
        elif kpa < self.settings.onset_kpa:
            trial.restart_at(t, kpa)
        else:
            trial.started = True
            self._record(t, kpa)

    def _maybe_begin(self, previous: tuple[float, float] | None, t: float, kpa: float) -> None:
        """Begin a trial on a rise above onset, from the last sample below it if any."""
        if kpa < self.settings.onset_kpa or not self._armed:
            return
        if previous is not None and previous[1] < self.settings.onset_kpa:
            self._begin(*previous).started = True
            self._record(t, kpa)
        else:
            self._begin(t, kpa).started = True

    def new_trial(self) -> Trial:
        """Start a trial now: from the latest sample, waiting for the rise if at rest."""
        t, kpa = self.latest if self.latest is not None else (0.0, 0.0)
        trial = self._begin(t, kpa)
        trial.started = kpa >= self.settings.onset_kpa
        return trial

    def current_rate(self) -> float | None:
        """Rate (kPa/s) over the newest ``window_s`` of an open, started trial."""
        trial = self.trial
        if trial is None or not trial.open or not trial.started:
            return None
        return estimate_rate(trial.times, trial.kpa, self.settings.window_s)

    def pace(self) -> Pace:
        """Current rate against the target, until the trial is captured."""
        if self.trial is None or self.trial.capture is not None:
            return Pace.UNKNOWN
        return classify(self.current_rate(), self.settings.rate_kpa_s, self.settings.tolerance)

    def capture(self, timestamp: float, source: str = "examiner") -> Capture | None:
        """Capture the current trial at ``timestamp``; None if there is nothing to capture.

        Nothing to capture: no started trial, already captured, a response before the
        pressure passed onset, or after the trial ended (pressure released).
        """
        trial = self.trial
        if trial is None or not trial.started or trial.capture is not None:
            return None
        if not trial.open and timestamp > trial.times[-1]:
            return None
        i = index_at(trial.times, timestamp)
        if i is None or trial.kpa[i] < self.settings.onset_kpa:
            return None
        trial.capture = self._make_capture(trial, i, timestamp, source)
        self.captures.append(trial.capture)
        return trial.capture

    def _make_capture(self, trial: Trial, i: int, timestamp: float, source: str) -> Capture:
        elapsed = trial.times[i] - trial.t0
        rate = (trial.kpa[i] - trial.p0) / elapsed if elapsed > 0 else None
        target = trial.target_kpa_s
        return Capture(trial.number, trial.kpa[i], trial.times[i], timestamp, elapsed, rate,
                       target, classify(rate, target, self.settings.tolerance), source)

    def _begin(self, t: float, kpa: float) -> Trial:
        self._trials += 1
        self._armed = False
        self.trial = Trial(self._trials, t, kpa, self.settings.rate_kpa_s)
        return self.trial

    def _record(self, t: float, kpa: float) -> None:
        trial = self.trial
        assert trial is not None
        trial.times.append(t)
        trial.kpa.append(kpa)
        if kpa < self.settings.release_kpa or trial.elapsed_s > self.settings.max_trial_s:
            trial.open = False
