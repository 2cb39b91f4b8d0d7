"""The query API's parameters: parsed, range-checked, and refused with a message that says
what to send instead (the views answer ``BadParameter`` with 400 and that message)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from agents.errors import KappaError
from agents.spec import PipelineSpec
from tables.times import datetime_to_ms
from tables.windows import PanedKind, Sessions, WindowKind

MAX_WINDOWS = 10_000  # window instances one request may list, per window


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


def _shortest_length(window: WindowKind) -> int:
    if isinstance(window, PanedKind):
        return window.size_ms
    assert isinstance(window, Sessions), "a window is paned or sessions"
    return window.gap_ms + 1


def window_range(
    spec: PipelineSpec, query: Mapping[str, str], watermark: int
) -> tuple[list[WindowKind], int, int]:
    """The windows (``window``, default all) and the [from, to) range of starts asked
    for; by default the retention period up to the watermark (for a session: its
    shortest length, the gap, stands for a size)."""
    name = query.get("window")
    windows = [w for w in spec.windows if name in (None, w.name)]
    if not windows:
        known = ", ".join(w.name for w in spec.windows) or "none"
        raise BadParameter(f"window={name!r} is not one of this pipeline's windows ({known})")
    largest = max(_shortest_length(w) for w in windows)
    end = time_param(query, "to", watermark + spec.lateness_ms + largest)
    start = time_param(query, "from", end - spec.retention_ms - 2 * largest)
    if end <= start:
        raise BadParameter("`to` must be after `from`")
    # A key's sessions are as many as it has had within the retention, whatever the range.
    for window in (w for w in windows if isinstance(w, PanedKind)):
        if (end - start) // window.step_ms > MAX_WINDOWS:
            raise BadParameter(
                f"from..to spans more than {MAX_WINDOWS} {window.name} windows; narrow the range"
            )
    return windows, start, end
