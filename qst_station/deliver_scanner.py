"""Scanner-locked stimuli: each starts on its scheduled volume's trigger.

The stimulus is programmed (and, on the TCS II, read back) while the previous volumes go
by, so that only the start command goes out at the critical moment: from the trigger reader
thread itself, before the trigger is recorded, when that never waits (TCS II ``try_start``);
else a thread of its own starts it (the reader stays free). An onset between volumes waits
its delay from that volume's trigger on the program clock. If the scheduled volume's
trigger is missed (the one before it arrived), the stimulus starts where the volume was due
plus a grace of a quarter TR at most 50 ms (``inferred_volume``); with two or more missing
it is not given. With ``start = "device-trigger"`` the stimulator's own trigger input,
armed once the volume before has come, starts it (TCS II ``Ose``; the onset is the
trigger's arrival time); a STOP or a missed trigger disarms it (the driver's abort).

Ratings: a ``rating_prompt`` event after the stimulus, then the first ``vas`` response
within ``rating_timeout_s``, or a ``rating_timeout`` event.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.cuff_program import Inc, Step
from drivers.errors import DeviceError
from drivers.responses import Response
from drivers.serial_input import time_critical
from protocols.base import DONE, RATING, SCANNER_LOCKED, Answer, ProtocolError, Stimulus
from qst_station.deliver_thermal import start_unless_stopped
from qst_station.runner import RunContext

MAX_GRACE_S = 0.05
SPIN_S = 0.002  # the last part of a delay is spun, not slept


@dataclass(frozen=True)
class ScannerStatus:
    """What the scanner view shows (program-clock times)."""

    last_volume: int | None  # newest received trigger's volume (dummies included)
    last_trigger_time: float | None
    tr_s: float
    next_trial: int | None  # the armed trial, None between trials
    next_volume: int | None
    next_due: float | None  # when its stimulus is due (None before the first trigger)


@dataclass
class _Armed:
    volume: int
    delay_s: float
    start: Callable[[], None]
    blind_allowed: bool = True
    trial: int | None = None
    try_start: Callable[[], bool] | None = None  # on the trigger thread, if it never waits
    arm_input: Callable[[], None] | None = None  # device-trigger: once the volume before came
    arrived: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    trigger_time: float | None = None
    onset: float | None = None
    inferred: bool = False
    error: BaseException | None = None


class VolumeFollower:
    """The newest received volume, and a thread that starts armed stimuli on theirs."""

    def __init__(self, triggers: Any, clock: Any, tr_s: float) -> None:
        self.clock, self.tr_s = clock, tr_s
        self.grace_s = min(MAX_GRACE_S, tr_s / 4)
        self._lock = threading.Lock()
        self._latest: tuple[int, float] | None = None  # (index, time) of a received trigger
        self._armed: _Armed | None = None
        self._jobs: queue.SimpleQueue[_Armed | None] = queue.SimpleQueue()
        self._unsubscribe = triggers.subscribe(self._on_volume)
        self._thread = threading.Thread(target=self._serve, name="volume-starter", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._unsubscribe()
        self._jobs.put(None)
        self._thread.join(timeout=2.0)

    @property
    def latest(self) -> tuple[int, float] | None:
        with self._lock:
            return self._latest

    @property
    def armed(self) -> _Armed | None:
        with self._lock:
            return self._armed

    def due(self, volume: int) -> float | None:
        """When ``volume``'s trigger is expected (None before the first trigger)."""
        latest = self.latest
        return None if latest is None else latest[1] + (volume - latest[0]) * self.tr_s

    def arm(self, job: _Armed) -> None:
        with self._lock:
            self._armed = job
            latest = self._latest
        if latest is not None and latest[0] >= job.volume:
            job.error = ProtocolError(f"volume {job.volume} has already passed (now at "
                                      f"volume {latest[0]})")
            job.done.set()
            return
        self._jobs.put(job)

    @time_critical
    def _on_volume(self, volume: Any) -> None:
        """Trigger reader thread, before the trigger is recorded: note the volume; on the
        armed one, start at once if that never waits (else the starter thread does)."""
        with self._lock:
            if not volume.inferred:
                self._latest = (volume.index, volume.timestamp)
            job = self._armed
        if job is None or volume.index != job.volume or job.arrived.is_set():
            return
        if job.delay_s == 0 and job.try_start is not None and not job.cancelled:
            try:
                if job.try_start():
                    job.onset = self.clock.now()
            except Exception as error:  # noqa: BLE001 - the starter thread hands it on
                job.error = error
        job.trigger_time, job.inferred = volume.timestamp, volume.inferred
        job.arrived.set()

    def _arm_after_previous(self, job: _Armed) -> None:
        """Arm the stimulator's trigger input once the volume before ``job``'s has come (or
        its time has passed): armed earlier, any earlier pulse would start the stimulus."""
        before = job.volume - 1
        while not job.cancelled:
            latest = self.latest
            due = self.due(before)
            if (latest is not None and latest[0] >= before) or (
                    due is not None and self.clock.now() > due + self.grace_s):
                job.arm_input()  # type: ignore[misc]
                return
            job.arrived.wait(0.005 / self.clock.speed)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._run(job)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting delivery
                job.error = error
            finally:
                with self._lock:
                    if self._armed is job:
                        self._armed = None
                job.done.set()

    def _run(self, job: _Armed) -> None:
        speed = self.clock.speed
        if job.arm_input is not None:
            self._arm_after_previous(job)
        while not job.arrived.is_set():
            if job.cancelled:
                return
            due = self.due(job.volume)
            now = self.clock.now()
            if due is not None and now > due + self.grace_s:
                latest = self.latest
                if not job.blind_allowed or latest is None or latest[0] != job.volume - 1:
                    missing = job.volume - (latest[0] if latest else 0)
                    raise ProtocolError(f"no trigger for volume {job.volume} ({missing} "
                                        "volume(s) missing): stimulus not given")
                job.trigger_time, job.inferred = due, True
                break
            wait = 0.05 if due is None else max(0.0, due + self.grace_s - now)
            job.arrived.wait(min(0.05, wait) / speed)
        if job.cancelled:
            return
        if job.error is not None:
            raise job.error
        if job.onset is not None:  # started on the trigger thread already
            return
        assert job.trigger_time is not None
        target = job.trigger_time + job.delay_s
        if job.delay_s > 0:
            rest = target - self.clock.now() - SPIN_S
            if rest > 0:
                self.clock.sleep(rest)
            while self.clock.now() < target and not job.cancelled:
                pass
        if job.cancelled:
            return
        job.start()
        job.onset = self.clock.now()


class ScannerLockedDelivery:
    """Delivers ``scanner-locked`` stimuli on a thermode or a cuff, ratings from ``responses``."""

    kinds = (SCANNER_LOCKED,)

    def __init__(self, triggers: Any, responses: Any, tr_s: float, clock: Any,
                 thermode: Any = None, cuff: Any = None,
                 notify: Callable[[str], None] | None = None, name: str | None = None) -> None:
        """Create it before anything else subscribes to ``triggers``: its subscriber then
        runs first when a trigger arrives."""
        self.triggers, self.thermode, self.cuff = triggers, thermode, cuff
        self.tr_s = tr_s
        self.notify = notify or (lambda line: None)
        self.name = name or ("thermode" if thermode is not None else "cuff")
        self._follower = VolumeFollower(triggers, clock, tr_s)
        self._ratings: queue.SimpleQueue[Response] = queue.SimpleQueue()
        for source in responses if isinstance(responses, (list, tuple)) else [responses]:
            source.subscribe(self._on_response)

    def close(self) -> None:
        self._follower.close()

    def status(self) -> ScannerStatus:
        """The newest volume and the next stimulus; safe on any thread (e.g. the GUI's)."""
        follower = self._follower
        latest, job = follower.latest, follower.armed
        due = None
        if job is not None and not job.done.is_set():
            when = follower.due(job.volume)
            due = None if when is None else when + job.delay_s
        else:
            job = None
        return ScannerStatus(latest[0] if latest else None, latest[1] if latest else None,
                             self.tr_s, job.trial if job else None, job.volume if job else None,
                             due)

    def abort(self) -> None:
        for device, stop in ((self.thermode, "abort"), (self.cuff, "stop")):
            if device is not None:
                with contextlib.suppress(DeviceError):
                    getattr(device, stop)()

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        follower = self._follower
        p = stimulus.params
        if p["action"] == "end":
            return self._end(int(p["volume"]), follower, run)
        self._wait_idle(run)
        self._prepare(p)
        run.announce(stimulus)
        device_trigger = p.get("start") == "device-trigger"
        start, try_start = self._start_for(run)
        job = _Armed(int(p["volume"]), float(p["delay_s"]),
                     self._arm_input if device_trigger else start,
                     blind_allowed=not device_trigger, trial=int(p["trial"]),
                     try_start=None if device_trigger else try_start)
        self._await_start(job, follower, p, run)
        return self._after_onset(job, stimulus, run)

    # -- the critical part --------------------------------------------------------------------
    def _prepare(self, p: Any) -> None:
        if p["modality"] == "heat":
            if self.thermode is None:
                raise ProtocolError("a heat trial needs a thermode")
            self.thermode.prepare_ramp_and_hold(p["target"], p["rise"], p["ret"], p["plateau_s"])
            verify = getattr(self.thermode, "verify_settings", None)
            if verify is not None:  # the start then sends nothing but L
                verify()
        else:
            if self.cuff is None:
                raise ProtocolError("a pressure trial needs a cuff")
            rise_s = p["target"] / p["rise"]
            self.cuff.program(int(p["outlet"]), [Inc(p["rise"], rise_s),
                                                 Step(p["target"], p["plateau_s"])])

    def _start_for(self, run: RunContext) -> tuple[Callable[[], None],
                                                    Callable[[], bool] | None]:
        """The start for the starter thread, and one for the trigger thread that never
        waits (where the driver has it); the STOP count is read now, so that a STOP from
        here on cancels them (driver generation) or follows them."""
        device = self.thermode if self.thermode is not None else self.cuff
        generation = getattr(device, "generation", None)

        def start() -> None:
            start_unless_stopped(device, run, generation)

        if not hasattr(device, "try_start"):
            return start, None

        def try_start() -> bool:
            if run.stopped.is_set():
                raise run.abort_error()
            return bool(device.try_start(generation=generation))

        return start, try_start

    def _arm_input(self) -> None:
        """Device-trigger mode: the trigger has come; the stimulator started on its own."""

    def _await_start(self, job: _Armed, follower: VolumeFollower, p: Any,
                     run: RunContext) -> None:
        if p.get("start") == "device-trigger":
            if self.thermode is None or not hasattr(self.thermode, "set_trigger_input"):
                raise ProtocolError("start = device-trigger needs a thermode with a trigger "
                                    "input (TCS II)")
            job.arm_input = lambda: self.thermode.set_trigger_input(True)
        follower.arm(job)
        cue_s, cued = float(p.get("cue_s", 0.0)), False
        while not job.done.wait(0.01 / run.clock.speed):
            if run.stopped.is_set():
                job.cancelled = True
                job.arrived.set()
                self.abort()
                raise run.abort_error()
            due = follower.due(job.volume)
            if cue_s > 0 and not cued and due is not None \
                    and run.clock.now() >= due + job.delay_s - cue_s:
                cued = True
                run.recording.event("cue", {"trial": p["trial"], "level": p["level"],
                                            "onset_due": due + job.delay_s})

    def _after_onset(self, job: _Armed, stimulus: Stimulus, run: RunContext) -> Answer:
        p = stimulus.params
        if job.error is not None:
            if run.stopped.is_set():
                raise run.abort_error()
            if not isinstance(job.error, (ProtocolError, DeviceError)):
                raise job.error
            self.abort()
            message = f"trial {p['trial']} (volume {job.volume}): {job.error}"
            self.notify(f"  {message}")
            run.recording.event("note", {"message": message, "trial": p["trial"]})
            return Answer(RATING, None, run.clock.now(),
                          {"unit": "VAS 0-100", "not_given": str(job.error)})
        assert job.trigger_time is not None
        onset = job.trigger_time if p.get("start") == "device-trigger" else job.onset
        assert onset is not None
        scheduled = job.trigger_time + job.delay_s
        error = onset - scheduled
        run.recording.event("stimulus_onset", {
            "device": self.name, "test": stimulus.test, "trial": p["trial"],
            "modality": p["modality"], "level": p["level"], "target": p["target"],
            "unit": p["target_unit"], "baseline": p["baseline"], "rise": p["rise"],
            "return": p["ret"], "plateau_s": p["plateau_s"], "volume": job.volume,
            "delay_s": job.delay_s,
            "scheduled_onset_s": p["onset_s"], "scheduled_time": scheduled,
            "onset_error_ms": 1000.0 * error, "inferred_volume": job.inferred,
            "started_by": p.get("start", "software"), "site": stimulus.site}, onset)
        if job.inferred:
            self.notify(f"  trial {p['trial']}: trigger of volume {job.volume} missed; "
                        f"started {1000 * (run.clock.now() - scheduled):.0f} ms after it was due")
        end = onset + abs(p["target"] - p["baseline"]) / p["rise"] + p["plateau_s"]
        run.wait(max(0.0, end - run.clock.now()))
        run.recording.event("stimulus_offset", {"trial": p["trial"], "device": self.name,
                                                "reason": "end"}, end)
        extra = {"unit": "VAS 0-100", "onset_error_s": error, "inferred_volume": job.inferred}
        if not p.get("rating", True):
            return Answer(RATING, None, end, {**extra, "asked": False})
        return self._rating(p, end, run, extra)

    # -- ratings and the end ------------------------------------------------------------------
    def _rating(self, p: Any, end: float, run: RunContext, extra: dict[str, Any]) -> Answer:
        prompt = end + float(p["rating_delay_s"])
        run.wait(max(0.0, prompt - run.clock.now()))
        run.recording.event("rating_prompt", {"trial": p["trial"], "scale": "VAS 0-100",
                                              "timeout_s": p["rating_timeout_s"]}, prompt)
        deadline = prompt + float(p["rating_timeout_s"])
        while True:
            left = deadline - run.clock.now()
            if left <= 0:
                run.recording.event("rating_timeout", {"trial": p["trial"]}, deadline)
                self.notify(f"  trial {p['trial']}: no rating within {p['rating_timeout_s']:g} s")
                return Answer(RATING, None, deadline, {**extra, "missing": True})
            try:
                response = self._ratings.get(timeout=min(left, 0.05) / run.clock.speed)
            except queue.Empty:
                if run.stopped.is_set():
                    raise run.abort_error() from None
                continue
            if response.timestamp >= prompt:
                run.recording.event("rating", {"stimulus": p["trial"], "scale": "VAS 0-100",
                                               "value": response.value,
                                               "latency_s": response.timestamp - prompt},
                                    response.timestamp)
                return Answer(RATING, float(response.value), response.timestamp, extra)

    def _end(self, volume: int, follower: VolumeFollower, run: RunContext) -> Answer:
        """Wait for the run's last volume (or one TR past when it was due)."""
        while True:
            latest = follower.latest
            if latest is not None and latest[0] >= volume:
                return Answer(DONE, None, latest[1], {"unit": "", "last_volume": latest[0]})
            due = follower.due(volume)
            if due is not None and run.clock.now() > due + self.tr_s:
                return Answer(DONE, None, run.clock.now(), {
                    "unit": "", "last_volume": latest[0] if latest else 0,
                    "missing_volumes": volume - (latest[0] if latest else 0)})
            run.wait(0.02)

    def _wait_idle(self, run: RunContext, timeout_s: float = 60.0) -> None:
        deadline = run.clock.now() + timeout_s
        device = self.thermode if self.thermode is not None else self.cuff
        while getattr(device, "busy", False) or getattr(device, "running", False):
            if run.clock.now() > deadline:
                raise ProtocolError(f"the {self.name} did not return to its baseline")
            run.wait(0.02)

    def _on_response(self, response: Response) -> None:
        if response.kind in ("vas", "rating"):
            self._ratings.put(response)
