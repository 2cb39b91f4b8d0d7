"""How far a worker is in rebuilding its tables from their changelogs, for status."""

from __future__ import annotations

from typing import Any


def recovery_status(app: Any) -> dict[str, Any]:
    """Faust's recovery counters: changelog records still to read for the partitions this
    worker owns (before it processes them) and for its standby replicas."""
    recovery = app.tables.recovery
    active = recovery.active_remaining()
    remaining = sum(max(n, 0) for n in active.values())
    # From Faust's start of recovery: the counts are 0 until it has read the changelogs'
    # end offsets, a moment later.
    in_progress = bool(app.in_recovery)
    # Faust's own estimate, from the time it has taken per changelog record so far.
    eta = recovery._estimated_active_remaining_secs(remaining) if in_progress else None
    return {
        "in_progress": in_progress,
        "remaining_records": remaining,
        "by_changelog": {
            f"{tp.topic}:{tp.partition}": max(n, 0) for tp, n in sorted(active.items()) if n > 0
        },
        "standby_remaining_records": sum(max(n, 0) for n in recovery.standby_remaining().values()),
        "eta_s": None if eta is None else round(eta, 1),
    }
