"""Wagner FDIX / FDX force gauge wire format: pure encode/decode, shared with the simulator.

Host commands end with CR (FDX accepts CR LF): ``C.5``-``C100`` sets the continuous output
rate (samples/s), ``CA`` sends every reading, ``CX`` only readings above 2 % of full scale,
``CB`` begins and ``CE`` ends streaming, ``?`` (or ``C?``) asks for one reading. A reading
is a sign (``-`` tension, ``+`` compression), the value with its decimal point and the unit,
e.g. ``- 23.02 lbf``, ended by CR LF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.errors import WireError

NEWTONS_PER_UNIT = {
    "N": 1.0,
    "lbf": 4.4482216152605,  # exact: 0.45359237 kg x 9.80665 m/s²
    "kgf": 9.80665,
    "gf": 0.00980665,
    "ozf": 0.27801385095378125,  # lbf / 16
}
RATES_HZ = (0.5, 1, 2, 5, 10, 20, 25, 50, 100)
MAX_LINE = 64
_READING = re.compile(rb"\s*([+-])\s*(\d{1,6}(?:\.\d{1,4})?)\s*(N|lbf|kgf|gf|ozf)\s*")


@dataclass(frozen=True)
class Reading:
    """One gauge reading: signed force in its unit (compression positive)."""

    value: float
    unit: str

    @property
    def newtons(self) -> float:
        return self.value * NEWTONS_PER_UNIT[self.unit]

    def kpa(self, probe_area_cm2: float = 1.0) -> float:
        """Pressure under the probe: 1 N on 1 cm² is 10 kPa."""
        return self.newtons / (probe_area_cm2 * 1e-4) / 1000.0


def encode_rate(rate_hz: float) -> bytes:
    """``C.5`` ... ``C100``: continuous output rate; only the gauge's own rates."""
    if rate_hz not in RATES_HZ:
        raise WireError(f"output rate {rate_hz} /s is not one of {RATES_HZ}")
    text = ".5" if rate_hz == 0.5 else str(int(rate_hz))
    return b"C" + text.encode() + b"\r"


def encode(command: str) -> bytes:
    """``CA``, ``CX``, ``CB``, ``CE`` or ``?`` with its CR."""
    if command not in ("CA", "CX", "CB", "CE", "?", "C?"):
        raise WireError(f"unknown gauge command {command!r}")
    return command.encode() + b"\r"


def encode_reading(reading: Reading, decimals: int = 2) -> bytes:
    sign = "-" if reading.value < 0 else "+"
    return f"{sign} {abs(reading.value):.{decimals}f} {reading.unit}\r\n".encode()


def decode_reading(line: bytes) -> Reading:
    """A reading line (without CR LF); WireError if it is not one."""
    match = _READING.fullmatch(line)
    if match is None:
        raise WireError(f"not a gauge reading: {line[:MAX_LINE]!r}")
    sign, number, unit = match.groups()
    value = float(number)
    return Reading(-value if sign == b"-" else value, unit.decode())


class LineSplitter:
    """Splits the byte stream at CR/LF; overlong lines are cut off and reported."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._buffer:
                    lines.append(bytes(self._buffer))
                    self._buffer.clear()
            else:
                self._buffer.append(byte)
                if len(self._buffer) > MAX_LINE:
                    lines.append(bytes(self._buffer))
                    self._buffer.clear()
        return lines


def decode_command(line: bytes) -> tuple[str, float | None] | None:
    """For the simulator: ``("rate", hz)``, ``("CB", None)``... or None if unknown."""
    text = line.strip().decode(errors="replace")
    if text in ("CA", "CX", "CB", "CE", "?", "C?"):
        return ("?" if text == "C?" else text, None)
    if text.startswith("C"):
        try:
            rate = float(text[1:])
        except ValueError:
            return None
        return ("rate", rate) if rate in RATES_HZ else None
    return None
