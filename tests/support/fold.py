"""A result folded in plain Python from its rows, written apart from kappa's aggregates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def folded_result(rows: Sequence[Sequence[float | None]], names: Sequence[str]) -> dict[str, Any]:
    """The count of ``rows`` and, per value field ``names[i]`` (column i; NULLs left
    out), the correctly rounded sum (``math.fsum``), the minimum, maximum and mean."""
    values = {}
    for i, name in enumerate(names):
        xs = [x for row in rows if (x := row[i]) is not None]
        total = math.fsum(xs) if xs else None
        values[name] = {
            "sum": total,
            "min": min(xs) if xs else None,
            "max": max(xs) if xs else None,
            "mean": None if total is None else total / len(xs),
        }
    return {"count": len(rows), "values": values}
