"""Event-time window definitions and assignment (pure, no I/O).

Windows are aligned to the epoch. A window whose size and step are whole days can
instead follow a time zone's calendar (``in_zone``): it starts and ends at local
midnights, so in New York the window of 2024-03-10 lasts 23 hours and that of
2024-11-03 lasts 25. Zoned windows work in local days: day ``d`` is the ``d``-th day
after 1970-01-01 on the zone's calendar, and windows start on days that are multiples
of the step, as epoch-aligned windows start at multiples of the step in milliseconds
(a ``7d`` window starts on a Thursday either way: 1970-01-01 was one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = _EPOCH.date()
_MS = timedelta(milliseconds=1)
# Zones whose days are UTC days: epoch-aligned windows already follow them.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})


@dataclass(frozen=True, slots=True)
class WindowDef:
    """A tumbling (step == size) or hopping (step < size) window, aligned to the epoch,
    or to local midnights in ``zone``.

    ``name`` is how the window appears in topics, tables and the query API, e.g. ``1h``
    for a tumbling hour, ``1h/15m`` for a one-hour window that hops every 15 minutes,
    ``1d@America/New_York`` for a New York day. A zoned window's ``size_ms`` and
    ``step_ms`` are nominal (days of 24 hours); its real length follows the zone's days.
    """

    name: str
    size_ms: int
    step_ms: int
    zone: ZoneInfo | None = None


def in_zone(w: WindowDef, zone: ZoneInfo) -> WindowDef:
    """``w`` on the calendar of ``zone`` if its size is whole days; else ``w`` itself.

    Windows shorter than a day, or not a whole number of days (``1h``, ``36h``), stay
    aligned to the epoch, and so does every window in UTC: their names carry no zone.
    Raises ValueError for a window of whole days whose step is not whole days, which
    cannot start at local midnights.
    """
    if zone.key in _UTC_KEYS or w.size_ms % DAY_MS:
        return w
    if w.step_ms % DAY_MS:
        raise ValueError(
            f"{w.name} spans whole days, so in time zone {zone.key} it starts at local"
            " midnight and needs a step of whole days; use a step such as '1d'"
        )
    return WindowDef(f"{w.name}@{zone.key}", w.size_ms, w.step_ms, zone)


def window_starts(ts_ms: int, w: WindowDef) -> list[int]:
    """Ascending starts ``s`` of every window holding ``ts_ms``: ``s <= ts_ms < end(s)``.

    Starts are multiples of ``step_ms``; floor division keeps this right for negative
    timestamps and for sizes that are not a multiple of the step.
    """
    if w.zone is not None:
        return _zoned_starts(ts_ms, w, w.zone)
    last = ts_ms // w.step_ms * w.step_ms
    first = ((ts_ms - w.size_ms) // w.step_ms + 1) * w.step_ms
    return list(range(first, last + 1, w.step_ms))


def window_end(start: int, w: WindowDef) -> int:
    """The exclusive end of the window that starts at ``start``."""
    if w.zone is not None:
        return _day_start(_local_day(start, w.zone) + _days(w)[0], w.zone)
    return start + w.size_ms


def last_closed_start(watermark: int, w: WindowDef) -> int:
    """A bound on starts: a window of ``w`` has closed at ``watermark`` (its end is at or
    before it) exactly when it starts at or before this bound.

    Ends grow with starts, so the windows a watermark closes are one range of starts,
    which the window-major state layout reads as one range of its store.
    """
    if w.zone is not None:
        # The window of local day d ends at the start of day d + size, at or before the
        # watermark exactly when d + size is at most the watermark's local day, so when
        # it starts before day (that day - size + 1): a day that a transition skips
        # whole shares its start with the next, and starts no window.
        size, _ = _days(w)
        return _day_start(_local_day(watermark, w.zone) - size + 1, w.zone) - 1
    return watermark - w.size_ms


def starts_between(lo: int, hi: int, w: WindowDef) -> Sequence[int]:
    """Ascending starts ``s`` of the windows with ``lo <= s < hi``."""
    if w.zone is None:
        first = -(-lo // w.step_ms) * w.step_ms  # ceil to the step
        return range(first, hi, w.step_ms)
    if hi <= lo:
        return []
    _, step = _days(w)
    first_day = _local_day(lo, w.zone)
    if _day_start(first_day, w.zone) < lo:
        first_day += 1
    first = -(-first_day // step) * step
    last = _local_day(hi - 1, w.zone) // step * step
    return _starts(range(first, last + 1, step), w.zone)


def _zoned_starts(ts_ms: int, w: WindowDef, zone: ZoneInfo) -> list[int]:
    size, step = _days(w)
    day = _local_day(ts_ms, zone)
    last = day // step * step
    first = ((day - size) // step + 1) * step
    return _starts(range(first, last + 1, step), zone)


def _starts(days: range, zone: ZoneInfo) -> list[int]:
    """The first instants of ``days``. A day that a transition skips whole (Samoa's
    2011-12-30) has none of its own, and starts no window."""
    return [start for day in days if (start := _day_start(day, zone)) < _day_start(day + 1, zone)]


def _days(w: WindowDef) -> tuple[int, int]:
    return w.size_ms // DAY_MS, w.step_ms // DAY_MS


def _local_day(ts_ms: int, zone: ZoneInfo) -> int:
    """The local day ``d`` that holds ``ts_ms``: ``start(d) <= ts_ms < start(d + 1)``."""
    day = ts_ms // DAY_MS  # the UTC day; no zone is a whole day away from UTC
    while ts_ms < _day_start(day, zone):
        day -= 1
    while ts_ms >= _day_start(day + 1, zone):
        day += 1
    return day


@lru_cache(maxsize=1 << 16)
def _day_start(day: int, zone: ZoneInfo) -> int:
    """Epoch ms of local day ``day``'s first instant in ``zone``: its midnight, or the
    moment a transition that skips midnight lands (``fold=0`` reads a skipped wall time
    with the offset before the transition, which gives exactly that moment)."""
    try:
        midnight = datetime.combine(_EPOCH_DATE + timedelta(days=day), time(), tzinfo=zone)
        return (midnight - _EPOCH) // _MS
    except OverflowError:
        # Past the years datetime holds, which only the edges of the event-time range
        # (years 1 and 9999) reach: UTC days, which still follow the zoned days in order.
        return day * DAY_MS
