"""Event-time windows (pure, no I/O): one module per window kind on the seam of
``base.WindowKind``; see docs/architecture.md for how to add a kind."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from tables.windows.aligned import AlignedWindows
from tables.windows.base import PanedKind, WindowKind
from tables.windows.calendar import DAY_MS
from tables.windows.hopping import Hopping
from tables.windows.session import Sessions
from tables.windows.tumbling import Tumbling

__all__ = [
    "DAY_MS",
    "AlignedWindows",
    "Hopping",
    "PanedKind",
    "Sessions",
    "Tumbling",
    "WindowKind",
    "aligned_window",
]


def aligned_window(
    name: str, size_ms: int, step_ms: int, zone: ZoneInfo | None = None
) -> AlignedWindows:
    """The tumbling (``step == size``) or hopping (``step < size``) windows so defined."""
    kind = Tumbling if step_ms == size_ms else Hopping
    return kind(name, size_ms, step_ms, zone)
