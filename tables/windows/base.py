"""The windowing seam: what every window kind says about its windows.

A kind is one class in its own module of this package (``tumbling``, ``hopping``,
``session``); the spec's parser builds it, and the processor, the state, the query API
and ``kappa verify`` use it only through these interfaces. A window instance is named by
its kind's ``name`` and its start (epoch ms); its end is exclusive.

Two families of kinds share ``WindowKind``:

- ``PanedKind``: windows fixed by their start, the same for every key (tumbling,
  hopping). The processor's contract: an on-time event updates one pane per window
  (``pane``); a watermark closes every window starting at or before
  ``last_closed_start``, merged from its panes (``panes``, read as one range of the
  window-major store with those of the other windows it closes), and its final result
  is published then; the panes no open window uses any more (``pane_bounds``) are
  deleted.
- ``session.Sessions``: windows per key that grow and merge as events arrive (their
  own module says how they are stored and closed).

A closed result is retained until the watermark passes its end plus the retention.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from zoneinfo import ZoneInfo


class WindowKind(ABC):
    """One window of a pipeline: how it is named, and the SQL that computes its
    instances independently."""

    __slots__ = ()

    name: str

    def in_zone(self, zone: ZoneInfo) -> WindowKind:
        """These windows in the pipeline's time zone ``zone``: a kind on the calendar
        follows its days; others keep to event time, as here. Raises ValueError for a
        definition the zone's calendar cannot hold."""
        return self

    @abstractmethod
    def assign_sql(self, columns: str) -> str:
        """DuckDB SQL for ``kappa verify``: a ``SELECT '<name>' AS w, <start> AS s,
        <end> AS e, <columns>`` row per on-time event of the ``marked`` table (alias
        ``m``; columns ``t`` and ``late``) and window instance holding it. It may use the
        macros of ``tables.windows.calendar.SQL_MACROS``."""


class PanedKind(WindowKind):
    """Windows fixed by their start, the same for every key: which instances an event
    updates, when they close, how they are listed."""

    __slots__ = ()

    size_ms: int  # nominal length (a zoned day counts 24 hours)
    step_ms: int  # nominal distance between consecutive starts

    @abstractmethod
    def starts(self, ts_ms: int) -> list[int]:
        """Ascending starts ``s`` of every window holding ``ts_ms``: ``s <= ts_ms < end(s)``."""

    @abstractmethod
    def end(self, start: int) -> int:
        """The exclusive end of the window that starts at ``start``."""

    @abstractmethod
    def last_closed_start(self, watermark: int) -> int:
        """A bound on starts: a window has closed at ``watermark`` (its end is at or
        before it) exactly when it starts at or before this bound. Ends grow with starts,
        so the windows a watermark closes are one range of the window-major store."""

    @abstractmethod
    def pane(self, ts_ms: int) -> int | None:
        """The start of the one pane an on-time event updates (None: it is in no window,
        as in a zoned window whose first day a transition skips). Panes are what is
        stored: disjoint slices of event time whose bounds include every window's, so
        that a window is the merge of its panes (a tumbling window is its own one pane)."""

    @abstractmethod
    def panes(self, start: int) -> Sequence[int]:
        """Ascending starts of the panes the window starting at ``start`` is merged from.
        The windows a pane is part of are ``starts(pane)``."""

    @abstractmethod
    def pane_bounds(self, last_closed: int) -> tuple[int, int]:
        """For the windows starting at or before ``last_closed``: the start of the last
        pane they use, and a bound on the panes no other window uses (those starting at
        or before it), which expire when these windows close."""

    @abstractmethod
    def starts_between(self, lo: int, hi: int) -> Sequence[int]:
        """Ascending starts ``s`` of the windows with ``lo <= s < hi`` (for queries)."""
