"""Tumbling windows: ``{ size = "1h" }``, one window per event, back to back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tables.windows.aligned import AlignedWindows


@dataclass(frozen=True, slots=True)
class Tumbling(AlignedWindows):
    """Windows ``[k*size, (k+1)*size)`` (or local days): named by their size, ``1h``. Each
    window is its own pane."""

    def starts(self, ts_ms: int) -> list[int]:
        if self.zone is None:
            return [ts_ms // self.size_ms * self.size_ms]  # the one window, at once
        return AlignedWindows.starts(self, ts_ms)

    def pane(self, ts_ms: int) -> int | None:
        if self.zone is None:
            return ts_ms // self.size_ms * self.size_ms
        starts = AlignedWindows.starts(self, ts_ms)
        return starts[0] if starts else None

    def panes(self, start: int) -> Sequence[int]:
        return (start,)

    def pane_bounds(self, last_closed: int) -> tuple[int, int]:
        return last_closed, last_closed
