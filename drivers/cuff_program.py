"""Cuff waveform programs: typed segments and the driver's limit check (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from drivers import cuff_wire as wire
from drivers.errors import LimitError

__all__ = ["Dec", "Inc", "Program", "Segment", "Step", "plan_program"]


@dataclass(frozen=True)
class Step:
    """Set the target to ``kpa`` and hold it for ``s`` seconds."""
    kpa: float
    s: float


@dataclass(frozen=True)
class Inc:
    """Raise the target by ``rate`` kPa/s for ``s`` seconds."""
    rate: float
    s: float


@dataclass(frozen=True)
class Dec:
    """Lower the target by ``rate`` kPa/s for ``s`` seconds."""
    rate: float
    s: float


Segment = Step | Inc | Dec


@dataclass(frozen=True)
class Program:
    """A program as sent (0.1 kPa, 0.1 kPa/s, 50 ms) with its peak target and length."""
    outlet: int
    segments: tuple[wire.AddSegment, ...]
    repeat: int
    peak_kpa: float
    duration_s: float


def plan_program(outlet: int, segments: Sequence[Segment], repeat: int,
                 max_kpa: float) -> Program:
    """The program as it would be sent, or LimitError naming its first problem."""
    if outlet not in wire.OUTLETS:
        raise LimitError(f"outlet {outlet!r}: the device has outlets 1 and 2")
    if not 1 <= len(segments) <= wire.MAX_SEGMENTS:
        raise LimitError(f"outlet {outlet}: a program has 1-{wire.MAX_SEGMENTS} segments, "
                         f"not {len(segments)}")
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not (
            1 <= repeat <= wire.MAX_REPEAT):
        raise LimitError(f"outlet {outlet}: repeat {repeat!r} is not 1-{wire.MAX_REPEAT}")
    sent = []
    for number, seg in enumerate(segments, 1):
        where = f"outlet {outlet} segment {number} {seg!r}"
        if isinstance(seg, Step):
            kind, value, lo, hi = "STEP", seg.kpa, 0.0, max_kpa
        elif isinstance(seg, Inc | Dec):
            kind, value, lo, hi = type(seg).__name__.upper(), seg.rate, wire.RATE_MIN, wire.RATE_MAX
        else:
            raise LimitError(f"{where}: not a Step, Inc or Dec")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (value, seg.s)):
            raise LimitError(f"{where}: values must be finite numbers")
        ms, value = wire.round_ms(seg.s * 1000.0), wire.quantize(value)
        if not wire.DURATION_MIN_MS <= ms <= wire.DURATION_MAX_MS:
            raise LimitError(f"{where}: duration outside 0.05-{wire.DURATION_MAX_MS // 1000} s")
        if not lo - 1e-9 <= value <= hi + 1e-9:
            unit = "kPa" if kind == "STEP" else "kPa/s"
            raise LimitError(f"{where}: {value:g} {unit} outside {lo:g}-{hi:g} {unit}")
        sent.append(wire.AddSegment(outlet, kind, value, ms))
    lowest, peak, duration = wire.program_targets(sent, repeat)
    if peak > max_kpa + 1e-6:
        raise LimitError(f"outlet {outlet}: the program reaches {peak:.1f} kPa, above the "
                         f"{max_kpa:g} kPa limit")
    if lowest < -1e-6:
        raise LimitError(f"outlet {outlet}: the program goes below 0 kPa ({lowest:.1f})")
    return Program(outlet, tuple(sent), repeat, peak, duration)
