"""Run a whole protocol headless on simulated devices with a simulated participant.

The TCS II simulator on a pty, a button box simulator on a pty, their real drivers, and a
participant (``sim/participant.py``) who feels what the simulated probe delivers and
presses the button after its reaction time (``sim/perceiver.py``). Everything is recorded
into a new session file, together with the participant's true parameters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from drivers.responses import SerialButtonBox
from drivers.tcs import TcsDriver
from protocols.base import Measure
from protocols.files import ProtocolFile
from qst_station.clock import Clock
from qst_station.deliver_thermal import ThermalDelivery
from qst_station.recorders import record_status, record_thermode
from qst_station.recording import Recording, SessionInfo
from qst_station.runner import ProtocolRunner, RunAborted
from qst_station.session_writer import SessionWriter
from sim.button_box import SimulatedButtonBox
from sim.participant import ParticipantModel, SimulatedParticipant
from sim.perceiver import ThermalPerceiver
from sim.rating_scale import SimulatedRatingScale
from sim.tcs import SimulatedTcs


def session_path(out_dir: Path, participant: str, visit: str, protocol: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return out_dir / f"sub-{participant}_ses-{visit}_{protocol}_{stamp}.h5"


def run_simulated(protocol: ProtocolFile, clock: Clock, path: Path,
                  model: ParticipantModel | None = None, seed: int = 0,
                  visit: str = "sim", progress: Callable[[str], None] = print
                  ) -> list[Measure]:
    """Run ``protocol`` on simulated devices into ``path``; returns the measures."""
    participant = SimulatedParticipant(seed, model)
    recording = Recording(clock)
    writer = SessionWriter(path)
    recording.subscribe(writer)
    status, reason, measures = "failed", "", []
    with ExitStack() as stack:
        tcs_sim = stack.enter_context(SimulatedTcs(clock, seed=seed))
        box = stack.enter_context(SimulatedButtonBox(clock, seed=seed))
        tcs = TcsDriver(tcs_sim.port, clock=clock, quiet_s=0.05)
        device = tcs.connect()
        stack.callback(tcs.disconnect)
        protocol.check_devices({"thermode": tcs.capabilities})
        buttons = SerialButtonBox(box.port, clock=clock)
        scale = SimulatedRatingScale(clock)
        perceiver = ThermalPerceiver(participant, tcs_sim, box, scale, clock).start()
        stack.callback(perceiver.stop)
        record_thermode(recording, tcs, source=f"TCS II {device.firmware} (simulated)")
        for name, source in (("thermode", tcs), ("buttons", buttons), ("rating", scale)):
            record_status(recording, source, name)
        delivery = ThermalDelivery(tcs, [buttons, scale])
        runner = ProtocolRunner(protocol.procedure(np.random.default_rng(seed)), recording,
                                [delivery], name=protocol.name, progress=progress)
        runner.listeners.append(perceiver.instruct)
        recording.start(SessionInfo(
            participant.model.participant.code, visit, protocol=protocol.name,
            operator="simulation", site=protocol.protocol.site,
            devices=({"kind": "tcs2", "identity": device.identity,
                      "firmware": device.firmware, "port": tcs_sim.port},
                     {"kind": "button-box", "port": box.port}),
            simulation=participant.truth()))
        buttons.connect()
        stack.callback(buttons.disconnect)
        scale.connect()
        stack.callback(scale.disconnect)
        tcs.set_streaming(idle=True, stimulation=True)
        tcs.enable_zones([1, 2, 3, 4, 5])
        tcs.set_baseline(32.0)
        try:
            measures = runner.run()
            status = "success"
        except RunAborted as stop:
            status, reason = "aborted", str(stop)
        except KeyboardInterrupt:
            tcs.abort()
            status, reason = "aborted", "interrupted by the operator (Ctrl-C)"
        except Exception as error:
            tcs.abort()
            reason = f"{type(error).__name__}: {error}"
            raise
        finally:
            recording.stop(status, reason)
    if not writer.wait(30.0):
        raise RuntimeError(f"{path}: the writer did not finish within 30 s")
    if writer.error:
        raise RuntimeError(f"the session file was not completed: {writer.error}")
    return measures
