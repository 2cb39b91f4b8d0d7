"""Event-time helpers for tests, written apart from kappa's own parser."""

from __future__ import annotations

from datetime import UTC, datetime

HOUR = 3_600_000
DAY = 24 * HOUR


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def starts_holding(ts: int, size: int, step: int) -> list[int]:
    """Every multiple ``s`` of ``step`` with ``s <= ts < s + size``, walking down from ts."""
    s = ts - ts % step  # Python's % is never negative for a positive step
    out = []
    while s > ts - size:
        out.append(s)
        s -= step
    return out
