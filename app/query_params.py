"""The query API's parameters: parsed, range-checked, and refused with a message that says
what to send instead (the views answer ``BadParameter`` with 400 and that message)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agents.errors import KappaError
from tables.times import datetime_to_ms


class BadParameter(KappaError):
    """A query parameter that cannot be used; the API answers 400 with the message."""


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParameter(f"{name}={value} is out of range; use {low}..{high}")
    return value


def parse_query_time(raw: str) -> int:
    """Epoch milliseconds, or ISO-8601 (naive means UTC, as for event times)."""
    if raw.lstrip("-").isdigit():
        return int(raw)
    return datetime_to_ms(datetime.fromisoformat(raw))


def time_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        return parse_query_time(raw)
    except ValueError as exc:
        raise BadParameter(
            f"{name}={raw!r} is not a time; use ISO-8601 (2024-05-01T12:00:00Z) or epoch "
            f"milliseconds ({exc})"
        ) from None
