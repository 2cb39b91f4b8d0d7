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
