"""Method-of-limits accuracy over many seeded simulated participants.

Each participant gets true thresholds drawn from plausible distributions (seeded), the
default trial-to-trial noise and reaction time (0.45 s mean), and runs CDT, WDT, CPT and
HPT (3 ramps each, 1 °C/s) through the real path: simulated TCS II and button box on ptys,
their drivers, the protocol runner and the session writer, on a simulated clock.

The method of limits measures the threshold plus rate x reaction time (the known DFNS
bias), so the expectation per participant is truth + 1 °C/s x 0.45 s (away from the
baseline), and for PPT truth + 50 kPa/s x 0.45 s. Reported per measure: bias =
mean(measured - expectation) and its SD across participants; the targets are |bias| <=
0.2 °C and, for PPT, 5 % of the expectation.

Run: ``python bench/protocol_accuracy.py [--n 200] [--speed 20] [--workers 2]``.
Results go to ``bench/results/protocol_accuracy.json``.
"""

from __future__ import annotations

from qst_station.lsl_setup import confine_to_machine

confine_to_machine()  # before anything touches liblsl: LSL stays on this machine

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from protocols.files import parse_protocol  # noqa: E402
from qst_station.clock import SimulatedClock  # noqa: E402
from qst_station.simulated_run import run_simulated  # noqa: E402
from sim.participant import ParticipantModel  # noqa: E402

PROTOCOL = """
[protocol]
name = "accuracy"
title = "CDT, WDT, CPT, HPT"
kind = "thermal-limits"
""" + "".join(f"""
[[tests]]
test = "{test}"
return_rate_c_s = {ret}
isi_s = [2.0, 3.0]
""" for test, ret in (("CDT", 1.0), ("WDT", 1.0), ("CPT", 5.0), ("HPT", 5.0)))
PPT_PROTOCOL = """
[protocol]
name = "accuracy-ppt"
title = "PPT, one site"
kind = "pressure-ppt"

[[tests]]
test = "PPT"
sites = ["thenar"]
repetitions = 3
rate_kpa_s = 50.0
isi_s = [3.0, 4.0]
"""
RATE = 1.0
PPT_RATE = 50.0
MEASURES = ("CDT", "WDT", "CPT", "HPT")


def participant(seed: int) -> ParticipantModel:
    rng = np.random.default_rng(10_000 + seed)
    truth = {"CDT": float(np.exp(rng.normal(np.log(1.0), 0.4))),
             "WDT": float(np.exp(rng.normal(np.log(1.6), 0.4))),
             "CPT": float(np.clip(rng.normal(12.0, 5.0), 3.0, 25.0)),
             "HPT": float(np.clip(rng.normal(44.0, 2.0), 38.0, 48.5)),
             "PPT": float(np.clip(rng.normal(350.0, 100.0), 120.0, 700.0))}
    return ParticipantModel.model_validate({"participant": {"code": f"SIM{seed:04d}"},
                                            "thresholds": truth})


def expectation(model: ParticipantModel) -> dict[str, float]:
    t, rt = model.thresholds, model.participant.reaction_time_s
    return {"CDT": t.CDT + RATE * rt, "WDT": t.WDT + RATE * rt,
            "CPT": t.CPT - RATE * rt, "HPT": t.HPT + RATE * rt, "PPT": t.PPT + PPT_RATE * rt}


def one(args: tuple[int, float]) -> dict[str, float]:
    seed, speed = args
    model = participant(seed)
    with tempfile.TemporaryDirectory() as tmp:
        measures = run_simulated(parse_protocol(PROTOCOL), SimulatedClock(speed),
                                 Path(tmp) / "s.h5", model, seed, progress=lambda line: None)
        measures += run_simulated(parse_protocol(PPT_PROTOCOL), SimulatedClock(speed),
                                  Path(tmp) / "p.h5", model, seed, progress=lambda line: None)
    got = {m.name: m.value for m in measures}
    want = expectation(model)
    errors = {name: got[name] - want[name] for name in MEASURES}
    errors["PPT"] = (got["PPT"] - want["PPT"]) / want["PPT"] * 100.0  # percent
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="simulated participants")
    parser.add_argument("--speed", type=float, default=20.0, help="simulated clock speed")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    began = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        errors = list(pool.map(one, [(seed, args.speed) for seed in range(args.n)]))
    table = {}
    for name in (*MEASURES, "PPT"):
        values = np.array([e[name] for e in errors])
        unit, target = ("%", 5.0) if name == "PPT" else ("°C", 0.2)
        table[name] = {"bias": float(values.mean()), "sd": float(values.std(ddof=1)),
                       "unit": unit, "within_target": bool(abs(values.mean()) <= target)}
        print(f"{name}: bias {values.mean():+.3f} {unit}, SD {values.std(ddof=1):.3f} {unit} "
              f"over {len(values)} participants (target |bias| <= {target:g} {unit})")
    print(f"({time.perf_counter() - began:.0f} s at {args.speed:g}x, {args.workers} workers)")
    out = Path(__file__).parent / "results" / "protocol_accuracy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "speed": args.speed, "measures": table,
                               "when": datetime.now(UTC).isoformat()}, indent=2))


if __name__ == "__main__":
    main()
