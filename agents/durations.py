"""Durations written the way people write them in a pipeline spec: ``250ms``, ``15m``, ``7d``."""

from __future__ import annotations

import re

# Largest first, so format_duration picks the largest unit that divides exactly.
UNITS_MS: dict[str, int] = {
    "w": 7 * 24 * 3_600_000,
    "d": 24 * 3_600_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
    "ms": 1,
}

_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_EXPECTED = (
    "use a whole number followed by a unit: ms, s, m, h, d or w (e.g. 250ms, 30s, 15m, 1h, 7d)"
)


def parse_duration(text: str) -> int:
    """Milliseconds in ``text``. A unit is required: a bare ``600`` could mean seconds or ms."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}; {_EXPECTED}")
    return int(match[1]) * UNITS_MS[match[2]]


def format_duration(ms: int) -> str:
    """The inverse of parse_duration, in the largest unit that divides ``ms`` exactly."""
    if ms < 0:
        raise ValueError(f"invalid duration {ms} ms; durations cannot be negative")
    if ms == 0:
        return "0s"
    return next(f"{ms // size}{unit}" for unit, size in UNITS_MS.items() if ms % size == 0)
