"""How far a worker is in rebuilding its tables from their changelogs, for status and
metrics."""

from __future__ import annotations

from typing import Any

from tables.faust_store import recovery_eta_s, remaining_by_changelog, standby_remaining


def recovery_status(app: Any) -> dict[str, Any]:
    """Faust's recovery counters: changelog records still to read for the partitions this
    worker owns (before it processes them) and for its standby replicas."""
    by_changelog = remaining_by_changelog(app)
    remaining = sum(by_changelog.values())
    # From Faust's start of recovery: the counts are 0 until it has read the changelogs'
    # end offsets, a moment later.
    in_progress = bool(app.in_recovery)
    eta = recovery_eta_s(app, remaining) if in_progress else None
    return {
        "in_progress": in_progress,
        "remaining_records": remaining,
        "by_changelog": {f"{topic}:{p}": n for (topic, p), n in by_changelog.items()},
        "standby_remaining_records": standby_remaining(app),
        "eta_s": None if eta is None else round(eta, 1),
    }
