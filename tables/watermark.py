"""The per-partition watermark, and the lateness, closing and expiry policy (pure, no I/O).

A partition's watermark is the maximum event time seen on it minus the allowed lateness;
it is ``None`` until the partition has seen an event. Everything here runs on event
time: unless a pipeline opts in to an ``idle_timeout`` (below), the wall clock never
closes a window or expires state, so replaying old history behaves exactly like
receiving it live.

Policy (``agents.processor`` applies it, a batch at a time):

- an event is *late* iff the watermark exists and its event time is behind it
  (``ts_ms < watermark``), judged against the watermark as it stood just before the
  event. A late event counts in its key's totals (which have no window to close) and in
  the late-events topic, and is kept out of every window: it is never half counted in
  some windows and not others;
- a window is *closed* once the watermark reaches its exclusive end (``watermark >=
  end``). Every window holding ``ts`` ends after ``ts``, so all windows of an event that
  is not late are still open;
- a closed window's state *expires* once the watermark reaches its end plus the
  retention.

The watermark only moves forward. With a non-negative allowed lateness an event can never
make itself late, so checking it before or after it advances the watermark is the same.

Only with a pipeline's opt-in ``idle_timeout`` does anything else move it: the wall clock
then decides when a quiet partition's watermark catches up with the others' (the rule at
the end of this module), and results are no longer a function of the events alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def advance(max_seen: int | None, ts_ms: int) -> int:
    """The maximum event time seen on the partition after an event at ``ts_ms``."""
    return ts_ms if max_seen is None or ts_ms > max_seen else max_seen


def watermark_of(max_seen: int | None, allowed_lateness_ms: int) -> int | None:
    """The watermark of a partition whose maximum event time seen is ``max_seen``."""
    return None if max_seen is None else max_seen - allowed_lateness_ms


def is_late(ts_ms: int, watermark: int | None) -> bool:
    """Whether an event at ``ts_ms`` is late: it is behind the watermark."""
    return watermark is not None and ts_ms < watermark


def is_closed(window_end_ms: int, watermark: int | None) -> bool:
    """Whether the window ending (exclusively) at ``window_end_ms`` is closed
    (``tables.windows.last_closed_start`` bounds, by start, the windows it has closed)."""
    return watermark is not None and watermark >= window_end_ms


def expiry_ms(window_end_ms: int, retention_ms: int) -> int:
    """The watermark at which a closed window's state may be deleted."""
    return window_end_ms + retention_ms


def expired(window_end_ms: int, retention_ms: int, watermark: int | None) -> bool:
    """Whether a closed window's state may be deleted: retention runs on the watermark."""
    return watermark is not None and watermark >= expiry_ms(window_end_ms, retention_ms)


# -- quiet partitions (an opt-in ``idle_timeout``) ---------------------------------------
#
# Flink's ``WatermarkStrategy.withIdleness`` rule: a partition that has received nothing
# for the idle timeout (wall-clock time) stops holding event time back, and its watermark
# moves to the lowest watermark of the version's *active* partitions. Every partition of
# a version has the same lateness, so that is the lowest event-time clock (maximum event
# time) of the active partitions, minus the lateness: the idle partition's clock moves to
# the active partitions' lowest clock. With no active partition, nothing moves.


@dataclass(frozen=True, slots=True)
class StoredClock:
    """A partition's event-time clock as its last stored progress says it."""

    max_event_ms: int | None
    stored_ms: int  # when it was stored, wall-clock epoch ms
    idle: bool  # moved there by an idle advance, not by records received


def active_low(
    clocks: Mapping[int, StoredClock], now_ms: int, idle_timeout_ms: int, quiet: int
) -> int | None:
    """The lowest event-time clock of the active partitions, those other than ``quiet``
    whose last progress, stored within the idle timeout, came from records received;
    None when no partition is active."""
    return min(
        (
            clock.max_event_ms
            for partition, clock in clocks.items()
            if partition != quiet
            and clock.max_event_ms is not None
            and not clock.idle
            and now_ms - clock.stored_ms < idle_timeout_ms
        ),
        default=None,
    )


def is_idle(quiet_ms: float, idle_timeout_ms: int) -> bool:
    """Whether a partition that has received nothing for ``quiet_ms`` is idle."""
    return quiet_ms >= idle_timeout_ms


def idle_advance(max_seen: int | None, low: int | None) -> int | None:
    """The clock an idle partition moves to: the active partitions' lowest, ``low``, and
    only forward; None when it does not move. A partition that has never had an event has
    no window to close, and keeps no clock."""
    if max_seen is None or low is None or low <= max_seen:
        return None
    return low
