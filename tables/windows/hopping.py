"""Hopping windows: ``{ size = "1d", step = "1h" }``, windows of ``size`` starting every
``step``, so an event is in ``size / step`` of them (rounded up or down)."""

from __future__ import annotations

from dataclasses import dataclass

from tables.windows.aligned import AlignedWindows


@dataclass(frozen=True, slots=True)
class Hopping(AlignedWindows):
    """Windows ``[k*step, k*step + size)`` (or of local days): named ``1d/1h``."""
