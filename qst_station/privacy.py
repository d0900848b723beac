"""Pseudonymous participant codes: spot codes that look like names or birth dates.

Session files hold codes (``P001``, ``LBP-023``), never names or birth dates. Whether a
code that looks identifying is refused is the station's choice (``[privacy]`` in the station
configuration); :func:`identifying_reason` says why a code looks identifying, or None.
"""

from __future__ import annotations

import datetime as dt
import re

_DATE_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})[-./](\d{1,2})[-./](\d{1,2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{1,2})[-./](\d{1,2})[-./](\d{2}|\d{4})(?!\d)"), "dmy"),
    (re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{4})(?!\d)"), "dmy"),  # 31121985
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "ymd"),  # 19851231
    (re.compile(r"(?<!\d)(\d{2})(\d{2})(\d{2})(?!\d)"), "dmy"),  # 311285 (as in CPR numbers)
)
_WORDS = re.compile(r"[^\W\d_]{2,}")


def identifying_reason(code: str) -> str | None:
    """Why ``code`` looks like a name or a birth date, or None if it looks like a pseudonym."""
    for pattern, order in _DATE_PATTERNS:
        for match in pattern.finditer(code):
            if _is_date(match.groups(), order):
                return f"participant code {code!r} contains what looks like a date"
    words = _WORDS.findall(code)
    if len(words) >= 2 and " " in code.strip():
        return f"participant code {code!r} looks like a name (words separated by spaces)"
    if not any(ch.isdigit() for ch in code) and words:
        return f"participant code {code!r} has no digits: it looks like a name, not a code"
    return None


def _is_date(groups: tuple[str, ...], order: str) -> bool:
    a, b, c = (int(g) for g in groups)
    year, month, day = (a, b, c) if order == "ymd" else (c, b, a)
    if year < 100:
        year += 1900 if year > dt.date.today().year % 100 else 2000
    if not 1900 <= year <= dt.date.today().year:
        return False
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True
