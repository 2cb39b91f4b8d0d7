"""ISO-8601 event times to epoch milliseconds, without a datetime per event.

``datetime.fromisoformat`` and the arithmetic from a datetime to epoch milliseconds cost
more than the rest of an event's validation. ``IsoTimes`` reads a time of the common
shape ``YYYY-MM-DD``, ``T`` or a space, ``HH:MM:SS``, then a tail (``.fff`` or
``.ffffff``, then ``Z`` or ``±HH:MM``, each optional) by adding the milliseconds of its
parts, looked up in dictionaries: the day's (naive, so UTC), the hour and minute's, the
second's, and the tail's (the floored milliseconds of the fraction, less the offset).
The days and tails are learnt: a time is taken apart only after ``datetime.fromisoformat``
has read it once, and only when its text has that exact shape (ASCII digits, hours below
24, minutes and seconds below 60), so every known part is valid and any combination of
them is a valid time with the same value. Anything else (a date alone, a leap second,
other separators, offsets with seconds) is read by ``datetime.fromisoformat`` every
time, exactly as before.
"""

from __future__ import annotations

import re
from datetime import datetime

from tables.times import datetime_to_ms

_SHAPE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](?:\.[0-9]{3}(?:[0-9]{3})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?",
    re.ASCII,
)
_SEPARATORS = frozenset("T ")
_CLOCK = {f"{h:02d}:{m:02d}": (h * 60 + m) * 60_000 for h in range(24) for m in range(60)}
_SECONDS = {f":{second:02d}": second * 1000 for second in range(60)}
# Each cache is emptied when it reaches its size: a stream's days move on, and
# millisecond fractions (1,000 tails per offset) fit. Microsecond fractions do not: their
# tails miss, and those times are read by fromisoformat.
CACHE_ENTRIES = 4096


class IsoTimes:
    """Epoch milliseconds (floored, a naive time being UTC) of ISO-8601 texts, equal to
    ``datetime_to_ms(datetime.fromisoformat(text))``; one per parser."""

    __slots__ = ("_days", "_tails")

    def __init__(self) -> None:
        self._days: dict[str, int] = {}
        self._tails: dict[str, int] = {}

    def cached(self, text: str) -> int | None:
        """``text``'s milliseconds if it has the common shape and its day and tail are
        known, else None."""
        day = self._days.get(text[:10])
        if day is None or text[10:11] not in _SEPARATORS:
            return None
        clock = _CLOCK.get(text[11:16])
        second = _SECONDS.get(text[16:19])
        tail = self._tails.get(text[19:])
        if clock is None or second is None or tail is None:
            return None
        return day + clock + second + tail

    def parse(self, text: str) -> int:
        """``text``'s milliseconds, read by ``datetime.fromisoformat`` (raising its
        ValueError); its day and tail are then known if it has the common shape."""
        ms = datetime_to_ms(datetime.fromisoformat(text))
        if _SHAPE.fullmatch(text):
            day_text = text[:10]
            day = self._days.get(day_text)
            if day is None:
                day = datetime_to_ms(datetime.fromisoformat(day_text))
                _remember(self._days, day_text, day)
            tail = ms - day - _CLOCK[text[11:16]] - _SECONDS[text[16:19]]
            _remember(self._tails, text[19:], tail)
        return ms


def _remember(cache: dict[str, int], text: str, ms: int) -> None:
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    cache[text] = ms
