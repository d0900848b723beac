"""Count scanner volumes from trigger times: pure logic, no I/O, no clock of its own.

:class:`VolumeCounter` turns trigger arrival times into numbered :class:`Volume` objects.
The repetition time (TR) is either configured or estimated (median of recent intervals,
each divided by the number of volumes it spans). An interval of about k x TR means k - 1
triggers were missed: those volumes are filled in, evenly spaced, with ``inferred=True``.
A trigger less than ``(1 - tolerance) x TR`` after the last counted one is an extra
(bounce, stray character) and is not counted. Every such event leaves a one-line
message in :attr:`VolumeCounter.last_warnings`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

MIN_INTERVALS = 3  # intervals needed before an estimated TR is trusted
WINDOW = 16  # recent intervals the estimate is the median of


@dataclass(frozen=True, slots=True)
class Volume:
    """One scanner volume. ``index`` counts from the first trigger (1-based)."""

    index: int
    timestamp: float
    inferred: bool = False  # its trigger was missed; the time is interpolated
    dummy: bool = False  # one of the first ``dummies`` volumes


class VolumeCounter:
    """Numbers volumes from trigger times; see the module docstring for the rules.

    ``tolerance`` is a fraction of the TR: an interval within ``k +/- tolerance`` TRs
    spans k volumes. ``max_missed`` (None: unlimited) caps how many volumes one gap may
    fill in; a longer gap (a paused or restarted scan) is reported and counted as one.
    """

    def __init__(
        self,
        tr_s: float | None = None,
        dummies: int = 0,
        tolerance: float = 0.25,
        max_missed: int | None = None,
    ) -> None:
        if tr_s is not None and not (math.isfinite(tr_s) and tr_s > 0):
            raise ValueError(f"tr_s must be a positive number of seconds, got {tr_s!r}")
        if not 0 < tolerance < 0.5:
            raise ValueError(f"tolerance must be between 0 and 0.5 TR, got {tolerance!r}")
        if dummies < 0:
            raise ValueError(f"dummies must be >= 0, got {dummies!r}")
        if max_missed is not None and max_missed < 0:
            raise ValueError(f"max_missed must be >= 0 or None, got {max_missed!r}")
        self.configured_tr_s = tr_s
        self.dummies = dummies
        self.tolerance = tolerance
        self.max_missed = max_missed
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next trigger is volume 1 of a new run."""
        self.volumes = 0  # every volume, inferred and dummies included
        self.received = 0  # triggers counted as volumes
        self.missed = 0  # volumes filled in
        self.extra = 0  # triggers not counted (too early)
        self.irregular = 0  # intervals not close to a whole number of TRs
        self.gaps = 0  # intervals longer than max_missed allows to fill
        self.first_trigger_time: float | None = None
        self.first_counted_volume_time: float | None = None  # first volume after the dummies
        self.last_volume_time: float | None = None
        self.last_warnings: list[str] = []
        self._units: deque[float] = deque(maxlen=WINDOW)  # interval / volumes spanned
        self._raw: deque[float] = deque(maxlen=WINDOW)  # interval between counted triggers
        self._intervals_seen = 0
        self._learning_checked = False
        self._mismatch_reported = False

    # ------------------------------------------------------------------ state

    @property
    def tr_s(self) -> float | None:
        """The TR in use: the configured one, else the estimate (None while still learning)."""
        if self.configured_tr_s is not None:
            return self.configured_tr_s
        return self.estimated_tr_s

    @property
    def estimated_tr_s(self) -> float | None:
        """Median of recent intervals per volume, once ``MIN_INTERVALS`` have been seen."""
        if self._intervals_seen < MIN_INTERVALS or not self._units:
            return None
        return statistics.median(self._units)

    @property
    def counted_volumes(self) -> int:
        """Volumes after the dummies."""
        return max(0, self.volumes - self.dummies)

    def summary(self) -> dict[str, object]:
        estimated = self.estimated_tr_s
        return {
            "volumes": self.volumes,
            "counted_volumes": self.counted_volumes,
            "dummies": min(self.dummies, self.volumes),
            "received": self.received,
            "missed": self.missed,
            "extra": self.extra,
            "irregular": self.irregular,
            "gaps": self.gaps,
            "tr_s": self.tr_s,
            "tr_source": "configured" if self.configured_tr_s is not None else "estimated",
            "estimated_tr_s": estimated,
            "first_trigger_time": self.first_trigger_time,
            "first_counted_volume_time": self.first_counted_volume_time,
            "last_volume_time": self.last_volume_time,
        }

    # ------------------------------------------------------------------ counting

    def add(self, timestamp: float) -> list[Volume]:
        """The volume(s) this trigger accounts for: filled-in ones first, then its own.

        An extra trigger returns ``[]``. :attr:`last_warnings` says what was unusual.
        """
        t = float(timestamp)
        self.last_warnings = []
        last = self.last_volume_time
        if last is None:
            self.first_trigger_time = t
            return self._count(t, [])
        interval = t - last
        tr = self.tr_s
        if tr is None:  # still learning: every trigger is one volume
            if interval <= 0:
                return self._extra(interval, None)
            return self._count(t, [], interval, 1)
        ratio = interval / tr
        if ratio < 1 - self.tolerance:
            return self._extra(interval, tr)
        spans = max(1, math.floor(ratio + 0.5))
        if abs(ratio - spans) > self.tolerance:
            self.irregular += 1
            self._warn(f"irregular interval {interval:.3f} s ({ratio:.2f} TR of {tr:.3f} s); "
                       f"counted as {spans} volume(s)")
        if self.max_missed is not None and spans - 1 > self.max_missed:
            self.gaps += 1
            self._warn(f"gap of {interval:.3f} s ({spans - 1} volumes) after volume "
                       f"{self.volumes}: more than {self.max_missed} missed; not filled in")
            return self._count(t, [], interval, None)
        fill = [last + interval * j / spans for j in range(1, spans)]
        if fill:
            first = self.volumes + 1
            which = f"volume {first}" if spans == 2 else f"volumes {first}-{first + spans - 2}"
            self._warn(f"missed {spans - 1} trigger(s): {which} inferred "
                       f"(interval {interval:.3f} s, TR {tr:.3f} s)")
        return self._count(t, fill, interval, spans)

    def _count(self, t: float, fill: list[float], interval: float | None = None,
               spans: int | None = None) -> list[Volume]:
        out = [self._volume(when, inferred=True) for when in fill]
        out.append(self._volume(t, inferred=False))
        self.missed += len(fill)
        self.received += 1
        if interval is not None:
            self._intervals_seen += 1
            self._raw.append(interval)
            if spans is not None:
                self._units.append(interval / spans)
            self._check_tr()
        return out

    def _volume(self, when: float, inferred: bool) -> Volume:
        self.volumes += 1
        volume = Volume(self.volumes, when, inferred, dummy=self.volumes <= self.dummies)
        if self.volumes == self.dummies + 1:
            self.first_counted_volume_time = when
        self.last_volume_time = when
        return volume

    def _extra(self, interval: float, tr: float | None) -> list[Volume]:
        self.extra += 1
        limit = f" < {1 - self.tolerance:.2f} x TR {tr:.3f} s" if tr is not None else ""
        self._warn(f"extra trigger {interval:.3f} s after volume {self.volumes}{limit}; "
                   "not counted")
        return []

    def _check_tr(self) -> None:
        """Warn once if the learnt intervals or the configured TR look wrong."""
        if self._intervals_seen < MIN_INTERVALS:
            return
        tol = self.tolerance
        if self.configured_tr_s is None and not self._learning_checked:
            self._learning_checked = True
            tr = statistics.median(self._raw)
            if any(abs(i / tr - 1) > tol for i in self._raw):
                self._warn("irregular intervals while learning the TR ("
                           + ", ".join(f"{i:.3f}" for i in self._raw)
                           + " s): the count may be off; configure the TR")
        if self.configured_tr_s is not None and not self._mismatch_reported:
            observed = statistics.median(self._raw)
            if abs(observed / self.configured_tr_s - 1) > tol / 2:
                self._mismatch_reported = True
                self._warn(f"median interval {observed:.3f} s differs from the configured "
                           f"TR {self.configured_tr_s:.3f} s")

    def _warn(self, message: str) -> None:
        self.last_warnings.append(message)
