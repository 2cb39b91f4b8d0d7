"""Hopping windows: ``{ size = "1d", step = "1h" }``, windows of ``size`` starting every
``step``, so an event is in ``size / step`` of them (rounded up or down).

Stored by panes (slices, as Flink's sliding windows and "No pane, no gain", Li et al.
2005): disjoint panes of ``gcd(size, step)`` (whole days, for windows on a zone's
calendar), so an event updates one pane instead of every window holding it, and a
window is merged from its ``size / pane`` panes when it closes, or when it is queried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tables.windows.aligned import AlignedWindows
from tables.windows.calendar import DAY_MS, day_start, local_day


@dataclass(frozen=True, slots=True)
class Hopping(AlignedWindows):
    """Windows ``[k*step, k*step + size)`` (or of local days): named ``1d/1h``."""

    @property
    def pane_ms(self) -> int:
        """The panes' length (nominal, for a zone's days)."""
        return math.gcd(self.size_ms, self.step_ms)

    def pane(self, ts_ms: int) -> int:
        pane = self.pane_ms
        if self.zone is None:
            return ts_ms // pane * pane
        days = pane // DAY_MS
        return day_start(local_day(ts_ms, self.zone) // days * days, self.zone)

    def panes(self, start: int) -> Sequence[int]:
        pane = self.pane_ms
        if self.zone is None:
            return range(start, start + self.size_ms, pane)
        # A pane's start is its first day's, even a day that a transition skips whole
        # (then the next day's start), as ``pane`` names it.
        first = local_day(start, self.zone)
        days = range(first, first + self.size_ms // DAY_MS, pane // DAY_MS)
        return list(dict.fromkeys(day_start(day, self.zone) for day in days))

    def pane_bounds(self, last_closed: int) -> tuple[int, int]:
        # The last window starting at or before ``last_closed`` holds it (step <= size);
        # a pane is used by no later window when it starts before the next start.
        holding = self.starts(last_closed)
        read_to = self.pane(self.end(holding[-1]) - 1) if holding else last_closed
        return read_to, self._next_start(last_closed + 1) - 1

    def _next_start(self, ts_ms: int) -> int:
        """The first start of a window at or after ``ts_ms``."""
        if self.zone is None:
            return -(-ts_ms // self.step_ms) * self.step_ms
        step = self.step_ms // DAY_MS
        day = local_day(ts_ms, self.zone)
        if day_start(day, self.zone) < ts_ms:
            day += 1
        return day_start(-(-day // step) * step, self.zone)
