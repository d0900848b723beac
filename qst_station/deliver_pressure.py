"""Pressure stimuli: algometer ramps by hand, cuff ramps and conditioning, confirmed steps.

* Algometer ``PRESSURE_RAMP``: the examiner is asked to press at the target rate; a
  :class:`~qst_station.ppt_feedback.PptTracker` follows the samples (trial start, mean
  rate). At the participant's press the value is the latest sample at or before the press
  timestamp; at ``limit_kpa`` the ramp ends as a cut-off. Then the examiner is told to
  release (the same stimulus announced again with ``params["phase"] = "release"``).
* Cuff ``PRESSURE_RAMP`` (cPDT): an ``Inc`` program up to ``limit_kpa``, ended by the
  cuff's button or when the VAS reaches ``stop_vas_cm``; value = that sample's pressure.
* ``CUFF_PROGRAM`` (CPM conditioning): ``start`` holds one outlet at ``level_kpa`` (or at
  the pressure where a search ramp reached ``level_vas_cm``) for ``duration_s``, waiting
  ``hold_s`` if given; ``stop`` deflates (``ended_early`` if it had already stopped).
* ``CONFIRM``: the operator confirms a step (cold water, tonic heat); without a confirm
  function (simulation) it confirms itself after ``auto_s``.

Every stimulus records ``stimulus_onset``/``stimulus_offset``; button presses are recorded as
``response`` events. :meth:`PressureDelivery.abort` deflates the cuff.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from drivers.cuff_program import Inc, Step
from drivers.cuff_wire import VAS_MAX
from drivers.errors import DeviceError
from drivers.interfaces import CapabilityError
from drivers.responses import Response
from protocols.base import (
    CONFIRM,
    CUFF_PROGRAM,
    CUTOFF,
    DONE,
    NO,
    PRESSURE_RAMP,
    RATING,
    STOPPED,
    YES,
    Answer,
    ProtocolError,
    Stimulus,
)
from qst_station.deliver_thermal import start_unless_stopped
from qst_station.ppt_feedback import PptSettings, PptTracker
from qst_station.runner import RunContext


@dataclass(frozen=True)
class PressureCapabilities:
    """What a pressure device can do as configured (algometer range, cuff limit/outlets)."""

    device: str
    max_kpa: float
    outlets: tuple[int, ...] = ()
    max_rate_kpa_s: float | None = None

    def require(self, *, max_kpa: float | None = None, outlet: int | None = None,
                rate_kpa_s: float | None = None, what: str = "this protocol") -> None:
        """CapabilityError naming the first need this device does not meet."""
        problems = []
        if max_kpa is not None and max_kpa > self.max_kpa:
            problems.append(f"{max_kpa:g} kPa (device maximum {self.max_kpa:g} kPa)")
        if outlet is not None and outlet not in self.outlets:
            problems.append(f"outlet {outlet} (device outlets {list(self.outlets)})")
        if rate_kpa_s is not None and self.max_rate_kpa_s is not None \
                and rate_kpa_s > self.max_rate_kpa_s:
            problems.append(f"{rate_kpa_s:g} kPa/s (device maximum {self.max_rate_kpa_s:g})")
        if problems:
            raise CapabilityError(f"{self.device} cannot do what {what} needs: "
                                  + "; ".join(problems))


class PressureDelivery:
    """Algometer and cuff stimuli; presses from ``responses``."""

    kinds = (PRESSURE_RAMP, CUFF_PROGRAM)

    def __init__(self, responses: Any = (), onset_kpa: float = 5.0,
                 start_timeout_s: float = 60.0) -> None:
        self.algometer: Any = None
        self.cuff: Any = None
        self.start_timeout_s = start_timeout_s
        self._settings = PptSettings(onset_kpa=onset_kpa, release_kpa=onset_kpa / 2)
        self._tracker = PptTracker(self._settings)
        self._lock = threading.Lock()
        self._presses: queue.SimpleQueue[Response] = queue.SimpleQueue()
        self._watch: Callable[[Any], bool] | None = None
        self._hit: Any = None
        self._collected: list[Any] | None = None  # cuff samples during a train
        self._listening = False
        self._responses = list(responses) if isinstance(responses, (list, tuple)) \
            else [responses]

    def attach_algometer(self, algometer: Any) -> None:
        """Hand ramps: samples from ``algometer``, presses from the responses."""
        self.algometer = algometer
        algometer.subscribe(self._on_pressure)
        self._listen()

    def attach_cuff(self, cuff: Any) -> None:
        """Cuff stimuli: samples from ``cuff``; yes/no pulses take presses from the responses."""
        self.cuff = cuff
        cuff.subscribe(self._on_cuff)
        self._listen()

    def _listen(self) -> None:
        if not self._listening:
            self._listening = True
            for source in self._responses:
                source.subscribe(self._on_response)

    def abort(self) -> None:
        if self.cuff is not None:
            with contextlib.suppress(DeviceError):
                self.cuff.stop()

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        if stimulus.kind == PRESSURE_RAMP and stimulus.params.get("ask") == "yes-no":
            return self._cuff_pulse(stimulus, trial, run)
        if stimulus.kind == CUFF_PROGRAM and stimulus.params.get("train"):
            return self._cuff_train(stimulus, trial, run)
        if stimulus.kind == CUFF_PROGRAM:
            if stimulus.params["action"] == "start":
                return self._condition(stimulus, trial, run)
            return self._end_conditioning(stimulus, trial, run)
        if stimulus.params.get("device", "algometer") == "cuff":
            return self._cuff_ramp(stimulus, trial, run)
        return self._hand_ramp(stimulus, trial, run)

    # -- algometer -------------------------------------------------------------------------------
    def _hand_ramp(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        if self.algometer is None:
            raise ProtocolError(f"{stimulus.test}: no algometer is connected")
        p = stimulus.params
        rate, limit = float(p["rate_kpa_s"]), float(p["limit_kpa"])
        self._wait_at_rest(run)
        with self._lock:
            self._tracker.settings = replace(
                self._settings, rate_kpa_s=rate, tolerance=float(p.get("tolerance", 0.2)),
                max_trial_s=max(60.0, 4.0 * limit / rate))
            before = self._tracker.trial.number if self._tracker.trial else 0
        _drain(self._presses)
        run.announce(stimulus)
        asked, onset = run.clock.now(), None
        while True:
            with self._lock:
                current = self._tracker.trial
                latest = self._tracker.latest
            if current is not None and current.number > before and current.started:
                if onset is None:
                    onset = self._onset(stimulus, trial, run, current.t0, "pressure", limit)
                if latest is not None and latest[1] >= limit:
                    return self._hand_cutoff(stimulus, trial, run, current, latest, limit)
                longest = self._tracker.settings.max_trial_s
                if run.clock.now() - onset > longest:
                    raise ProtocolError(f"{stimulus.test} {stimulus.site}: no press and no "
                                        f"cut-off within {longest:g} s of the ramp's start")
            elif run.clock.now() - asked > self.start_timeout_s:
                raise ProtocolError(f"{stimulus.test} {stimulus.site}: no pressure applied "
                                    f"within {self.start_timeout_s:g} s")
            press = self._next_press(run, 0.05)
            if press is not None and onset is not None:
                capture = self._capture(press, run)
                if capture is not None:
                    return self._hand_stopped(stimulus, trial, run, press, capture)
            if press is not None:
                run.recording.event("note", {"text": "press before the pressure rose; ignored",
                                             "trial": trial}, press.timestamp)

    def _capture(self, press: Response, run: RunContext) -> Any:
        """The tracker's capture at the press, once a sample after it has arrived."""
        deadline = run.clock.now() + 0.3
        while run.clock.now() < deadline:
            with self._lock:
                latest = self._tracker.latest
            if latest is not None and latest[0] >= press.timestamp:
                break
            run.wait(0.005)
        with self._lock:
            return self._tracker.capture(press.timestamp, press.source)

    def _hand_stopped(self, stimulus: Stimulus, trial: int, run: RunContext, press: Response,
                      capture: Any) -> Answer:
        self._release(stimulus, run)
        extra = {"unit": "kPa", "mean_rate_kpa_s": capture.mean_rate_kpa_s,
                 "pace": capture.pace.label, "sample_time": capture.sample_time,
                 "button": press.value}
        run.recording.event("stimulus_offset", {
            "trial": trial, "device": "algometer", "reason": "button", "value": capture.kpa,
            "unit": "kPa", "mean_rate_kpa_s": capture.mean_rate_kpa_s,
            "pace": capture.pace.label}, press.timestamp)
        return Answer(STOPPED, capture.kpa, press.timestamp, extra)

    def _hand_cutoff(self, stimulus: Stimulus, trial: int, run: RunContext, current: Any,
                     latest: tuple[float, float], limit: float) -> Answer:
        self._release(stimulus, run)
        elapsed = latest[0] - current.t0
        rate = (latest[1] - current.p0) / elapsed if elapsed > 0 else None
        run.recording.event("stimulus_offset", {
            "trial": trial, "device": "algometer", "reason": "cut-off", "value": latest[1],
            "unit": "kPa", "mean_rate_kpa_s": rate}, latest[0])
        return Answer(CUTOFF, limit, latest[0], {"unit": "kPa", "mean_rate_kpa_s": rate})

    def _release(self, stimulus: Stimulus, run: RunContext) -> None:
        run.announce(replace(stimulus, params={**stimulus.params, "phase": "release"},
                             instruction=f"{stimulus.test} {stimulus.site}: release the probe"))

    def _wait_at_rest(self, run: RunContext, timeout_s: float = 30.0) -> None:
        deadline = run.clock.now() + timeout_s
        while True:
            with self._lock:
                latest = self._tracker.latest
            if latest is not None and latest[1] < self._settings.release_kpa:
                return
            if run.clock.now() > deadline:
                raise ProtocolError("the algometer does not read 0: release the probe (or tare)")
            run.wait(0.02)

    def _on_pressure(self, sample: Any) -> None:
        with self._lock:
            self._tracker.add(sample.timestamp, sample.kpa)

    # -- cuff ----------------------------------------------------------------------------------
    def _cuff_ramp(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        cuff = self._need_cuff(stimulus)
        p = stimulus.params
        outlet, rate, limit = int(p["outlet"]), float(p["rate_kpa_s"]), float(p["limit_kpa"])
        stop_vas = p.get("stop_vas_cm")
        cuff.program(outlet, [Inc(rate, limit / rate)])
        run.announce(stimulus)
        hit, stop = self._cuff_until(run, outlet, limit / rate + 5.0, stop_vas, stimulus, trial,
                                     limit)
        if hit is None:
            run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                    "reason": stop})
            return Answer(CUTOFF, limit, run.clock.now(), {"unit": "kPa", "reason": stop})
        kpa = _pressure(hit, outlet)
        run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                "reason": stop, "value": kpa, "unit": "kPa",
                                                "vas": hit.vas}, hit.timestamp)
        return Answer(STOPPED, kpa, hit.timestamp, {"unit": "kPa", "vas": hit.vas,
                                                    "reason": stop})

    def _cuff_until(self, run: RunContext, outlet: int, timeout_s: float,
                    stop_vas: float | None, stimulus: Stimulus, trial: int, target: float
                    ) -> tuple[Any, str]:
        """Start the loaded program; wait for the button or the VAS (``stop_vas``, at the
        latest its maximum); stop the cuff. Returns (the sample that ended it or None, why)."""
        vas_end = VAS_MAX if stop_vas is None else min(float(stop_vas), VAS_MAX)

        def ends(sample: Any) -> bool:
            return bool(sample.button) or sample.vas >= vas_end

        with self._lock:
            self._watch, self._hit = ends, None
        self._start_cuff(run)
        self._onset(stimulus, trial, run, run.clock.now(), "pressure", target, outlet)
        deadline = run.clock.now() + timeout_s
        try:
            while run.clock.now() < deadline:
                with self._lock:
                    hit = self._hit
                if hit is not None:
                    return hit, "button" if hit.button else "vas"
                if not self.cuff.running:
                    last = self.cuff.last_stop
                    reason = last.event.reason.lower() if last is not None else "end"
                    if reason in ("limit", "fault"):
                        raise ProtocolError(f"{stimulus.test}: the cuff stopped ({reason})")
                    return None, "cut-off" if reason == "end" else reason
                run.wait(0.01)
            return None, "timeout"
        finally:
            with self._lock:
                self._watch = None
            self.abort()

    def _condition(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        cuff = self._need_cuff(stimulus)
        p = stimulus.params
        outlet, duration = int(p["outlet"]), float(p["duration_s"])
        extra: dict[str, Any] = {"unit": "kPa", "outlet": outlet}
        if "level_vas_cm" in p:
            level, extra = self._search_level(stimulus, trial, run, outlet, extra)
        else:
            level = float(p["level_kpa"])
        cuff.program(outlet, [Step(level, duration)])
        run.announce(stimulus)
        self._start_cuff(run)
        self._onset(stimulus, trial, run, run.clock.now(), "pressure", level, outlet)
        deadline = run.clock.now() + 15.0
        while _pressure(cuff.latest, outlet) < 0.9 * level and run.clock.now() < deadline:
            run.wait(0.02)
        hold = float(p.get("hold_s", 0.0))
        if hold > 0:  # sequential: the program deflates by itself at its end
            end = run.clock.now() + hold + 2.0
            while cuff.running and run.clock.now() < end:
                run.wait(0.05)
            self.abort()
            run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                    "reason": "end", "outlet": outlet})
        return Answer(DONE, level, run.clock.now(), extra)

    def _cuff_pulse(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        """Inflate one outlet to ``target_kpa`` at ``rate_kpa_s``, hold ``hold_s``, deflate;
        then button 1 = yes (painful), button 2 or no press in ``rating_window_s`` = no."""
        cuff = self._need_cuff(stimulus)
        p = stimulus.params
        outlet, target, rate = int(p.get("outlet", 1)), float(p["target_kpa"]), float(
            p["rate_kpa_s"])
        self._wait_deflated(run, outlet)
        cuff.program(outlet, [Inc(rate, target / rate), Step(target, float(p["hold_s"]))])
        run.announce(stimulus)
        _drain(self._presses)
        self._start_cuff(run)
        onset = self._onset(stimulus, trial, run, run.clock.now(), "pressure", target, outlet)
        end = onset + target / rate + float(p["hold_s"])
        while run.clock.now() < end:
            run.wait(0.05)
        self.abort()
        run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                "reason": "end", "outlet": outlet}, end)
        deadline = end + float(p.get("rating_window_s", 4.0))
        while (left := deadline - run.clock.now()) > 0:
            press = self._next_press(run, min(left, 0.1))
            if press is not None and press.timestamp >= onset:
                kind = YES if press.value == 1 else NO
                return Answer(kind, None, press.timestamp, {"unit": "", "button": press.value})
        return Answer(NO, None, run.clock.now(), {"unit": "", "pressed": False})

    def _cuff_train(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        """``train`` inflations to ``level_kpa`` (``on_s`` on, ``off_s`` off) in one cuff
        program; each inflation's rating is the highest VAS during it (cm x 10 -> 0-100)."""
        cuff = self._need_cuff(stimulus)
        p = stimulus.params
        outlet, count, level = int(p["outlet"]), int(p["train"]), float(p["level_kpa"])
        on, off = float(p["on_s"]), float(p["off_s"])
        cuff.program(outlet, [Step(level, on), Step(0.0, off)], repeat=count)
        run.announce(stimulus)
        with self._lock:
            self._collected = []
        self._start_cuff(run)
        start = run.clock.now()
        self._onset(stimulus, trial, run, start, "pressure", level, outlet)
        end = start + count * (on + off)
        while run.clock.now() < end + 0.5:
            run.wait(0.05)
        self.abort()
        with self._lock:
            samples, self._collected = self._collected, None
        ratings: list[float | None] = []
        for k in range(count):
            low, high = start + k * (on + off), start + (k + 1) * (on + off)
            vas = [s.vas for s in samples if low <= s.timestamp < high]
            ratings.append(round(10.0 * max(vas), 1) if vas else None)
        run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                "reason": "end", "outlet": outlet}, end)
        return Answer(RATING, None, end, {"unit": "VAS 0-100", "ratings": ratings})

    def _search_level(self, stimulus: Stimulus, trial: int, run: RunContext, outlet: int,
                      extra: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """Ramp until the VAS reaches ``level_vas_cm``: that pressure is the level."""
        p = stimulus.params
        rate, top, vas = float(p["search_rate_kpa_s"]), float(p["max_kpa"]), p["level_vas_cm"]
        self.cuff.program(outlet, [Inc(rate, top / rate)])
        search = replace(stimulus, instruction=f"Conditioning level: the cuff rises at {rate:g} "
                                               f"kPa/s until the VAS reads {vas:g} cm")
        run.announce(search)
        hit, reason = self._cuff_until(run, outlet, top / rate + 5.0, vas, search, trial, top)
        level = top if hit is None else _pressure(hit, outlet)
        run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                "reason": f"level search: {reason}",
                                                "value": level, "unit": "kPa"})
        self._wait_deflated(run, outlet)
        return level, {**extra, "level_vas_cm": vas, "search_reason": reason,
                       "vas_at_level": None if hit is None else hit.vas}

    def _end_conditioning(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        cuff = self._need_cuff(stimulus)
        was_running = bool(cuff.running)
        last = cuff.last_stop
        self.abort()
        parallel = stimulus.params.get("mode") == "parallel"
        reason = "stop" if was_running else (last.event.reason.lower() if last else "end")
        if parallel:
            run.recording.event("stimulus_offset", {"trial": trial, "device": "cuff",
                                                    "reason": reason})
        run.announce(stimulus)
        return Answer(DONE, None, run.clock.now(),
                      {"unit": "", "ended_early": parallel and not was_running,
                       "stop_reason": reason})

    def _start_cuff(self, run: RunContext) -> None:
        """Start the loaded programs; the VAS must read 0 (waits up to 10 s for it)."""
        deadline = run.clock.now() + 10.0
        while True:
            try:
                start_unless_stopped(self.cuff, run)
                return
            except DeviceError as exc:
                if getattr(exc, "code", "") != "VAS" or run.clock.now() > deadline:
                    raise
            run.wait(0.1)

    def _wait_deflated(self, run: RunContext, outlet: int, timeout_s: float = 10.0) -> None:
        deadline = run.clock.now() + timeout_s
        while run.clock.now() < deadline:
            latest = self.cuff.latest
            if latest is not None and latest.vas == 0.0 and _pressure(latest, outlet) < 2.0:
                return
            run.wait(0.05)

    def _need_cuff(self, stimulus: Stimulus) -> Any:
        if self.cuff is None:
            raise ProtocolError(f"{stimulus.test}: no cuff stimulator is connected")
        return self.cuff

    def _on_cuff(self, sample: Any) -> None:
        with self._lock:
            if self._collected is not None:
                self._collected.append(sample)
            if self._watch is not None and self._hit is None and self._watch(sample):
                self._hit = sample

    # -- shared --------------------------------------------------------------------------------
    def _onset(self, stimulus: Stimulus, trial: int, run: RunContext, when: float,
               modality: str, target: float, outlet: int | None = None) -> float:
        payload = {"device": "cuff" if outlet is not None else "algometer", "test": stimulus.test,
                   "trial": trial, "modality": modality, "target": target, "unit": "kPa",
                   "repetition": stimulus.repetition, "site": stimulus.site}
        for key, value in (("rate_kpa_s", stimulus.params.get("rate_kpa_s")), ("outlet", outlet)):
            if value is not None:
                payload[key] = value
        run.recording.event("stimulus_onset", payload, when)
        return when

    def _on_response(self, response: Response) -> None:
        """Hand presses (and ratings) to the waiting stimulus; the station records them."""
        if response.kind == "press":
            self._presses.put(response)

    def _next_press(self, run: RunContext, wait_s: float) -> Response | None:
        try:
            return self._presses.get(timeout=wait_s / run.clock.speed)
        except queue.Empty:
            if run.stopped.is_set():
                self.abort()
                raise run.abort_error() from None
            return None


class ConfirmDelivery:
    """Steps the operator carries out and confirms (cold water, tonic heat, rests)."""

    kinds = (CONFIRM,)

    def __init__(self, confirm: Callable[[Stimulus], None] | None = None, auto_s: float = 1.0,
                 name: str = "operator") -> None:
        self.confirm = confirm  # blocks until the operator confirms; None: confirm after auto_s
        self.auto_s = auto_s
        self.name = name

    def abort(self) -> None:
        """Nothing to switch off: the operator ends the step."""

    def deliver(self, stimulus: Stimulus, trial: int, run: RunContext) -> Answer:
        p = stimulus.params
        run.announce(stimulus)
        run.recording.event("instruction", {"test": stimulus.test, "trial": trial,
                                            "text": stimulus.instruction})
        if self.confirm is None:
            run.wait(self.auto_s)
        else:
            self.confirm(stimulus)
        confirmed = run.clock.now()
        action = p.get("action", "")
        run.recording.event("note", {"text": f"confirmed: {stimulus.instruction}",
                                     "trial": trial, "automatic": self.confirm is None})
        if action in ("start", "stop"):
            kind = "stimulus_onset" if action == "start" else "stimulus_offset"
            run.recording.event(kind, {
                "device": self.name, "test": stimulus.test, "trial": trial,
                "modality": p.get("conditioning", ""), "target": p.get("temperature_c"),
                "unit": "degC", "site": stimulus.site, "reason": "confirmed"}, confirmed)
        if float(p.get("hold_s", 0.0)) > 0:
            run.wait(float(p["hold_s"]))
        return Answer(DONE, None, confirmed, {"unit": ""})


def _pressure(sample: Any, outlet: int) -> float:
    if sample is None:
        return 0.0
    return float(sample.p1 if outlet == 1 else sample.p2)


def _drain(source: queue.SimpleQueue[Response]) -> None:
    while not source.empty():
        source.get_nowait()
