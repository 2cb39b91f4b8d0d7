"""Event-time window definitions and assignment (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WindowDef:
    """A tumbling (step == size) or hopping (step < size) window, aligned to the epoch.

    ``name`` is how the window appears in topics, tables and the query API, e.g. ``1h``
    for a tumbling hour or ``1h/15m`` for a one-hour window that hops every 15 minutes.
    """

    name: str
    size_ms: int
    step_ms: int


def window_starts(ts_ms: int, w: WindowDef) -> list[int]:
    """Ascending starts ``s`` of every window holding ``ts_ms``: ``s <= ts_ms < s + size``.

    Starts are multiples of ``step_ms``; floor division keeps this right for negative
    timestamps and for sizes that are not a multiple of the step.
    """
    last = ts_ms // w.step_ms * w.step_ms
    first = ((ts_ms - w.size_ms) // w.step_ms + 1) * w.step_ms
    return list(range(first, last + 1, w.step_ms))


def window_end(start: int, w: WindowDef) -> int:
    """The exclusive end of the window that starts at ``start``."""
    return start + w.size_ms


def starts_closing(old_wm: int | None, new_wm: int, w: WindowDef) -> range:
    """Starts of the windows that a watermark advance from ``old_wm`` to ``new_wm`` closes.

    A window closes once the watermark reaches its end, so these are the windows whose
    end ``e`` satisfies ``old_wm < e <= new_wm``. With no previous watermark (``None``)
    the range is empty: the partition had seen no event, so there is no window state to
    close (callers only ever close windows they hold state for), and the first event's
    windows all end after the watermark it sets (see ``tables.watermark``).
    """
    if old_wm is None:
        return range(0)
    first = ((old_wm - w.size_ms) // w.step_ms + 1) * w.step_ms
    last = (new_wm - w.size_ms) // w.step_ms * w.step_ms
    return range(first, last + 1, w.step_ms)
