"""Windows of a fixed size at a fixed step, aligned to the epoch or to a zone's days:
the arithmetic that the tumbling and hopping kinds share.

Windows are aligned to the epoch. A window whose size and step are whole days can
instead follow a time zone's calendar (``in_zone``): it starts and ends at local
midnights, so in New York the window of 2024-03-10 lasts 23 hours and that of
2024-11-03 lasts 25. Zoned windows work in local days (``tables.windows.calendar``),
and start on days that are multiples of the step, as epoch-aligned windows start at
multiples of the step in milliseconds (a ``7d`` window starts on a Thursday either way:
1970-01-01 was one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from tables.windows.base import PanedKind
from tables.windows.calendar import DAY_MS, day_start, day_starts, local_day

# Zones whose days are UTC days: epoch-aligned windows already follow them.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})


@dataclass(frozen=True, slots=True)
class AlignedWindows(PanedKind):
    """Windows ``[k*step, k*step + size)`` aligned to the epoch, or to local midnights in
    ``zone``. A zoned window's ``size_ms`` and ``step_ms`` are nominal (days of 24
    hours); its real length follows the zone's days."""

    name: str
    size_ms: int
    step_ms: int
    zone: ZoneInfo | None = None

    def in_zone(self, zone: ZoneInfo) -> PanedKind:
        """These windows on the calendar of ``zone`` if their size is whole days; else
        themselves.

        Windows shorter than a day, or not a whole number of days (``1h``, ``36h``), stay
        aligned to the epoch, and so does every window in UTC: their names carry no zone.
        Raises ValueError for a window of whole days whose step is not whole days, which
        cannot start at local midnights.
        """
        if zone.key in _UTC_KEYS or self.size_ms % DAY_MS:
            return self
        if self.step_ms % DAY_MS:
            raise ValueError(
                f"{self.name} spans whole days, so in time zone {zone.key} it starts at local"
                " midnight and needs a step of whole days; use a step such as '1d'"
            )
        return dataclasses.replace(self, name=f"{self.name}@{zone.key}", zone=zone)

    def starts(self, ts_ms: int) -> list[int]:
        """Starts are multiples of ``step_ms``; floor division keeps this right for
        negative timestamps and for sizes that are not a multiple of the step."""
        if self.zone is not None:
            size, step = self._days()
            day = local_day(ts_ms, self.zone)
            last = day // step * step
            first = ((day - size) // step + 1) * step
            return day_starts(range(first, last + 1, step), self.zone)
        step = self.step_ms
        last = ts_ms // step * step
        first = ((ts_ms - self.size_ms) // step + 1) * step
        return list(range(first, last + 1, step))

    def end(self, start: int) -> int:
        if self.zone is not None:
            return day_start(local_day(start, self.zone) + self._days()[0], self.zone)
        return start + self.size_ms

    def last_closed_start(self, watermark: int) -> int:
        if self.zone is not None:
            # The window of local day d ends at the start of day d + size, at or before
            # the watermark exactly when d + size is at most the watermark's local day,
            # so when it starts before day (that day - size + 1): a day that a
            # transition skips whole shares its start with the next, and starts no window.
            size, _ = self._days()
            return day_start(local_day(watermark, self.zone) - size + 1, self.zone) - 1
        return watermark - self.size_ms

    def starts_between(self, lo: int, hi: int) -> Sequence[int]:
        if self.zone is None:
            first = -(-lo // self.step_ms) * self.step_ms  # ceil to the step
            return range(first, hi, self.step_ms)
        if hi <= lo:
            return []
        _, step = self._days()
        first_day = local_day(lo, self.zone)
        if day_start(first_day, self.zone) < lo:
            first_day += 1
        first = -(-first_day // step) * step
        last = local_day(hi - 1, self.zone) // step * step
        return day_starts(range(first, last + 1, step), self.zone)

    def assign_sql(self, columns: str) -> str:
        name = self.name.replace("'", "''")
        if self.zone is None:
            size, step = self.size_ms, self.step_ms
            return f"""
                SELECT '{name}' AS w, g.s AS s, g.s + {size} AS e, {columns}
                FROM marked m, unnest(generate_series(
                    (floordiv(m.t - {size}, {step}) + 1) * {step},
                    floordiv(m.t, {step}) * {step}, {step})) AS g(s)
                WHERE NOT m.late"""
        zone = self.zone.key.replace("'", "''")
        size, step = self._days()
        return f"""
            SELECT '{name}' AS w, day_start(g.d, '{zone}') AS s,
                   day_start(g.d + {size}, '{zone}') AS e, {columns}
            FROM (SELECT *, local_day(t, '{zone}') AS day FROM marked WHERE NOT late) m,
                 unnest(generate_series(
                    (floordiv(m.day - {size}, {step}) + 1) * {step},
                    floordiv(m.day, {step}) * {step}, {step})) AS g(d)
            -- a day that a transition skips whole starts no window
            WHERE day_start(g.d, '{zone}') < day_start(g.d + 1, '{zone}')"""

    def _days(self) -> tuple[int, int]:
        return self.size_ms // DAY_MS, self.step_ms // DAY_MS
