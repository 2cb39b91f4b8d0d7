"""A time zone's calendar of days, for the window kinds that follow local midnights.

Day ``d`` is the ``d``-th day after 1970-01-01 on the zone's calendar. ``SQL_MACROS``
are the same days in DuckDB (ICU), for the SQL that ``kappa verify`` runs: written
independently, from DuckDB's own time zone arithmetic.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = _EPOCH.date()
_MS = timedelta(milliseconds=1)


def day_starts(days: range, zone: ZoneInfo) -> list[int]:
    """The first instants of ``days``. A day that a transition skips whole (Samoa's
    2011-12-30) has none of its own, and starts no window."""
    return [start for day in days if (start := day_start(day, zone)) < day_start(day + 1, zone)]


def local_day(ts_ms: int, zone: ZoneInfo) -> int:
    """The local day ``d`` that holds ``ts_ms``: ``start(d) <= ts_ms < start(d + 1)``."""
    day = ts_ms // DAY_MS  # the UTC day; no zone is a whole day away from UTC
    while ts_ms < day_start(day, zone):
        day -= 1
    while ts_ms >= day_start(day + 1, zone):
        day += 1
    return day


@lru_cache(maxsize=1 << 16)
def day_start(day: int, zone: ZoneInfo) -> int:
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


SQL_MACROS = [
    # Floor division (DuckDB's // truncates towards zero).
    "CREATE MACRO floordiv(a, b) AS (a - ((a % b) + b) % b) // b",
    "CREATE MACRO local_ms(u, z) AS epoch_ms(timezone(z, epoch_ms(u)::TIMESTAMPTZ))",
    "CREATE MACRO local_day(u, z) AS"
    " (timezone(z, epoch_ms(u)::TIMESTAMPTZ)::DATE - DATE '1970-01-01')",
    # Local midnight of day d; where midnight happens twice (a fall-back at midnight)
    # ICU reads the later one, and kappa's days start at the first: so also read it with
    # the offset of the day before, and take that when it is earlier and still on day d.
    # A midnight that is skipped reads as the moment the clocks jump, in both.
    f"CREATE MACRO later_start(d, z) AS epoch_ms(timezone(z, make_timestamp(d * {DAY_MS}000)))",
    f"CREATE MACRO earlier_start(d, z) AS d * {DAY_MS}"
    f" - (local_ms(later_start(d, z) - {DAY_MS}, z) - (later_start(d, z) - {DAY_MS}))",
    "CREATE MACRO day_start(d, z) AS CASE"
    " WHEN earlier_start(d, z) < later_start(d, z) AND local_day(earlier_start(d, z), z) = d"
    " THEN earlier_start(d, z) ELSE later_start(d, z) END",
]
