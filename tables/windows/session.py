"""Session windows: ``{ gap = "30m" }``, per key, on event time.

A key's session is a run of its on-time events, each at most ``gap`` after the one
before; an event more than ``gap`` after the previous one starts a new session (the rule
``kappa verify``'s SQL applies with ``lag()``). A session holding events from ``first``
to ``last`` is the window ``[first, last + gap + 1)``: an event at ``last + gap`` still
joins it, so it closes when the watermark reaches ``last + gap + 1``, after which every
on-time event is more than ``gap`` after ``last``. A closed session never changes again.

Events may arrive in any order within the lateness: an event joins every session it is
within ``gap`` of, which merges them (``plan``), as Flink's merging window assigner and
Quix Streams' and Bytewax's session windows do. The sessions, and their aggregates
(``Agg.merge`` is exact and order-free), depend only on the set of on-time events.

Stored per key (``agents.processor``): each open session is one record of the
window-major store under its end, so the sessions a watermark closes are one range of
it; the key's record lists its open sessions (``KeyRecord.sessions``), which is how an
event finds the sessions it joins, and which of the stored records is current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tables.windows.base import WindowKind

# A session as a key's record lists it: (first event time, last event time).
Span = tuple[int, int]


@dataclass(slots=True)
class Merge:
    """One session after a batch: its span, the key's earlier sessions it holds
    (indexes into the spans ``plan`` was given), and the batch's events it takes
    (indexes into its times, ascending)."""

    first: int
    last: int
    parts: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether it differs from the one earlier session it may be."""
        return bool(self.rows) or len(self.parts) != 1


@dataclass(frozen=True, slots=True)
class Sessions(WindowKind):
    """Session windows with an inactivity ``gap_ms``: named ``session/30m``."""

    name: str
    gap_ms: int

    def end(self, last: int) -> int:
        """The exclusive end of the session whose last event is at ``last``."""
        return last + self.gap_ms + 1

    def plan(self, spans: Sequence[Span], times: Sequence[int]) -> list[Merge]:
        """The key's sessions after its on-time events at ``times`` join its open
        sessions ``spans``: each event joins (and so merges) every session it is within
        the gap of, or starts its own. Ascending by first event."""
        gap = self.gap_ms
        merges = [Merge(first, last, parts=[index]) for index, (first, last) in enumerate(spans)]
        for row, ts in enumerate(times):
            near = [m for m in merges if m.first - gap <= ts <= m.last + gap]
            joined = Merge(ts, ts, rows=[row])
            for merge in near:
                joined.first = min(joined.first, merge.first)
                joined.last = max(joined.last, merge.last)
                joined.parts += merge.parts
                joined.rows += merge.rows
            if near:
                merges = [m for m in merges if all(m is not n for n in near)]
            merges.append(joined)
        for merge in merges:
            merge.parts.sort()
            merge.rows.sort()
        merges.sort(key=lambda m: m.first)
        return merges

    def assign_sql(self, columns: str) -> str:
        """Each key's on-time events in time order; a new session starts where the
        previous event is more than the gap before (``lag``), and a session runs from
        its first event to its last plus the gap (one millisecond past, exclusive)."""
        name = self.name.replace("'", "''")
        return f"""
            SELECT '{name}' AS w, min(m.t) OVER session AS s,
                   max(m.t) OVER session + {self.gap_ms + 1} AS e, {columns}
            -- RANGE (the default frame): events at the same time share a number
            FROM (SELECT *, sum(starts_session) OVER (PARTITION BY p, k ORDER BY t)
                             AS session_no
                  FROM (SELECT *, coalesce(t - lag(t) OVER (PARTITION BY p, k ORDER BY t)
                                           > {self.gap_ms}, true)::INTEGER AS starts_session
                        FROM marked WHERE NOT late)) m
            WINDOW session AS (PARTITION BY m.p, m.k, m.session_no)"""
