"""Tumbling windows: ``{ size = "1h" }``, one window per event, back to back."""

from __future__ import annotations

from dataclasses import dataclass

from tables.windows.aligned import AlignedWindows


@dataclass(frozen=True, slots=True)
class Tumbling(AlignedWindows):
    """Windows ``[k*size, (k+1)*size)`` (or local days): named by their size, ``1h``."""

    def starts(self, ts_ms: int) -> list[int]:
        if self.zone is None:
            return [ts_ms // self.size_ms * self.size_ms]  # the one window, at once
        return AlignedWindows.starts(self, ts_ms)
