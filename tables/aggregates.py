"""A mergeable aggregate of one key, or of one key's window (pure, no I/O).

It keeps ``count`` (SQL ``COUNT(*)``) and, for each numeric value field, the non-null
count, an exact sum, the minimum and the maximum. ``None`` is SQL NULL: counted by
``count``, ignored by the other metrics, which are ``None`` for a field with no
non-null value.

The sum is exact whatever the order and batching of ``add`` and ``merge``: each field
keeps Shewchuk's non-overlapping partials (the algorithm behind ``math.fsum``), whose
exact total is the exact total of the values added. Its value is ``math.fsum(partials)``,
the correctly rounded sum, and the mean is that rounded sum divided by the non-null
count, so an independent oracle computes both as ``math.fsum(values)`` and
``math.fsum(values) / len(values)``.

Signed zeros are normalised to ``+0.0`` (a sum of zeros is ``+0.0``, as ``math.fsum``
gives), so that ``to_state`` is canonical: equal multisets of events give equal states,
however they were batched, ordered and merged.

Values must be finite (validated upstream). A sum whose running total leaves the float
range raises ``OverflowError`` (as ``math.fsum`` does) and leaves the aggregate unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

METRICS = ("count", "sum", "min", "max", "mean")
_VALUE_METRICS = frozenset(METRICS[1:])


def _plus(partials: list[float], x: float) -> list[float]:
    """New partials holding the exact total of ``partials`` plus ``x`` (Shewchuk's msum).

    ``partials`` is never modified, so aggregates may share partial lists.
    """
    if not x:
        return partials  # adds nothing, and keeps -0.0 out whatever fsum makes of it
    out = []
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            out.append(lo)
        x = hi
    if not math.isfinite(x):
        raise OverflowError("sum out of the float range")
    out.append(x)
    return out


def _canonical(partials: list[float]) -> list[float]:
    """The one expansion of the exact total: each term is the rounded rest, smallest first."""
    if len(partials) == 1 and partials[0]:
        return partials  # one non-zero term is its own expansion (by far the usual case)
    terms: list[float] = []
    # fsum is zero exactly when the exact total is (totals are multiples of 2**-1074).
    while top := math.fsum(partials):
        terms.append(top)
        partials = _plus(partials, -top)
    terms.reverse()
    return terms


class Agg:
    """Count, and per value field: non-null count, exact sum, min and max."""

    __slots__ = ("_max", "_min", "_n", "_partials", "count")

    def __init__(
        self,
        count: int,
        n: list[int],
        partials: list[list[float]],
        mins: list[float | None],
        maxs: list[float | None],
    ) -> None:
        self.count = count
        self._n = n
        self._partials = partials
        self._min = mins
        self._max = maxs

    @classmethod
    def empty(cls, n_values: int) -> Agg:
        return cls(
            0, [0] * n_values, [[] for _ in range(n_values)], [None] * n_values, [None] * n_values
        )

    def add(self, values: Sequence[float | None]) -> None:
        """Add one event, given its value fields in order (``None`` for NULL)."""
        if len(values) != len(self._n):
            raise ValueError(f"expected {len(self._n)} values, got {len(values)}")
        # Sums first: the only step that can fail, and it leaves self untouched.
        self._partials = [
            p if v is None else _plus(p, v) for p, v in zip(self._partials, values, strict=True)
        ]
        self.count += 1
        for j, v in enumerate(values):
            if v is None:
                continue
            v += 0.0  # -0.0 -> +0.0, keeping min/max canonical
            self._n[j] += 1
            mn = self._min[j]
            if mn is None or v < mn:
                self._min[j] = v
            mx = self._max[j]
            if mx is None or v > mx:
                self._max[j] = v

    def merge(self, other: Agg) -> None:
        """Add every event of ``other`` (which is left unchanged)."""
        if len(other._n) != len(self._n):
            raise ValueError(f"expected {len(self._n)} values, got {len(other._n)}")
        grown = []
        for p, q in zip(self._partials, other._partials, strict=True):
            for x in q:
                p = _plus(p, x)
            grown.append(p)
        self._partials = grown
        self.count += other.count
        for j, on in enumerate(other._n):
            self._n[j] += on
            mn, omn = self._min[j], other._min[j]
            if mn is None or (omn is not None and omn < mn):
                self._min[j] = omn
            mx, omx = self._max[j], other._max[j]
            if mx is None or (omx is not None and omx > mx):
                self._max[j] = omx

    def to_state(self) -> list[Any]:
        """``[count, [n, min, max, [partials...]], ...]``, one list per value field.

        JSON-able, and canonical: it depends only on the multiset of events added.
        """
        fields: list[Any] = [
            [n, mn, mx, _canonical(p)]
            for n, mn, mx, p in zip(self._n, self._min, self._max, self._partials, strict=True)
        ]
        return [self.count, *fields]

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> Agg:
        """The aggregate that ``to_state`` described (after a JSON round trip, too)."""
        fields = obj[1:]
        return cls(
            int(obj[0]),
            [int(f[0]) for f in fields],
            [[float(x) for x in f[3]] for f in fields],
            [None if f[1] is None else float(f[1]) for f in fields],
            [None if f[2] is None else float(f[2]) for f in fields],
        )

    def result(self, value_names: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
        """The requested metrics, e.g. ``{"count": 3, "values": {"amount": {"sum": 1.5}}}``.

        ``"count"`` is present only if requested, ``"values"`` only if a value metric is.
        """
        if len(value_names) != len(self._n):
            raise ValueError(f"expected {len(self._n)} value names, got {len(value_names)}")
        unknown = set(metrics).difference(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; known: {METRICS}")
        out: dict[str, Any] = {}
        if "count" in metrics:
            out["count"] = self.count
        wanted = [m for m in metrics if m in _VALUE_METRICS]
        if wanted:
            out["values"] = {name: self._field(j, wanted) for j, name in enumerate(value_names)}
        return out

    def _field(self, j: int, wanted: list[str]) -> dict[str, float | None]:
        n = self._n[j]
        total = math.fsum(self._partials[j]) if n else None
        found: dict[str, float | None] = {
            "sum": total,
            "min": self._min[j],
            "max": self._max[j],
            "mean": None if total is None else total / n,
        }
        return {m: found[m] for m in wanted}
