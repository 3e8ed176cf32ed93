"""Durations as operators write them (``90s``, ``15m``, ``12h``, ``7d``,
``2w``): parsed once, with an error that says what is accepted."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
# A century: beyond it a retention is "forever" in all but name, and
# PostgreSQL's interval arithmetic stays far from its limits.
MAX_SECONDS = 100 * 365 * 86400


def parse_duration(text: str) -> timedelta:
    """``text`` as a positive duration: a number and one unit among s, m, h,
    d, w (``3s``, ``1.5h``, ``7d``). Raises ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 7d or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"{text!r}: a duration must be above 0 and at most 100 years")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` in the units parse_duration takes."""
    seconds = value.total_seconds()
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
