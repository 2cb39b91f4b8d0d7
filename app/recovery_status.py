"""How far a worker is in rebuilding its tables from their changelogs, for status and
metrics."""

from __future__ import annotations

from typing import Any


def remaining_by_changelog(app: Any) -> dict[tuple[str, int], int]:
    """Changelog records still to read, per (changelog topic, partition), for the
    partitions this worker owns; only those with records left."""
    active = app.tables.recovery.active_remaining()
    return {(tp.topic, tp.partition): n for tp, n in sorted(active.items()) if n > 0}


def standby_remaining(app: Any) -> int:
    """Changelog records still to read for this worker's standby replicas."""
    return sum(max(n, 0) for n in app.tables.recovery.standby_remaining().values())


def recovery_status(app: Any) -> dict[str, Any]:
    """Faust's recovery counters: changelog records still to read for the partitions this
    worker owns (before it processes them) and for its standby replicas."""
    by_changelog = remaining_by_changelog(app)
    remaining = sum(by_changelog.values())
    # From Faust's start of recovery: the counts are 0 until it has read the changelogs'
    # end offsets, a moment later.
    in_progress = bool(app.in_recovery)
    # Faust's own estimate, from the time it has taken per changelog record so far.
    recovery = app.tables.recovery
    eta = recovery._estimated_active_remaining_secs(remaining) if in_progress else None
    return {
        "in_progress": in_progress,
        "remaining_records": remaining,
        "by_changelog": {f"{topic}:{p}": n for (topic, p), n in by_changelog.items()},
        "standby_remaining_records": standby_remaining(app),
        "eta_s": None if eta is None else round(eta, 1),
    }
