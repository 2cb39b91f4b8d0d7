"""The per-partition watermark, and the lateness, closing and expiry policy (pure, no I/O).

A partition's watermark is the maximum event time seen on it minus the allowed lateness;
it is ``None`` until the partition has seen an event. Everything here runs on event
time: the wall clock never closes a window or expires state, so replaying old history
behaves exactly like receiving it live.

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
"""

from __future__ import annotations


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
