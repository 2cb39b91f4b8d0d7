"""The exact aggregate of one key, or of one key's window (pure, no I/O).

It keeps ``count`` (SQL ``COUNT(*)``) and, for each numeric value field, the non-null
count, an exact sum, the minimum and the maximum. ``None`` is SQL NULL: counted by
``count``, ignored by the other metrics, which are ``None`` for a field with no
non-null value.

The sum is exact whatever the order and batching of ``add`` and ``add_rows``:
each field keeps the canonical expansion of its exact total (``exact_terms``:
non-overlapping terms, as Shewchuk's partials behind ``math.fsum``), built with a few
``math.fsum`` calls per group of values. Its value is ``math.fsum(terms)``,
the correctly rounded sum, and the mean is that rounded sum divided by the non-null
count, so an independent oracle computes both as ``math.fsum(values)`` and
``math.fsum(values) / len(values)``.

Signed zeros are normalised to ``+0.0`` (a sum of zeros is ``+0.0``, as ``math.fsum``
gives), so that ``to_state`` is canonical: equal multisets of events give equal states,
however they were batched and ordered.

Values must be finite (validated upstream). A sum whose running total leaves the float
range raises ``OverflowError`` (as ``math.fsum`` does) and leaves the aggregate unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal, get_args

Metric = Literal["count", "sum", "min", "max", "mean"]
METRICS: tuple[Metric, ...] = get_args(Metric)
_VALUE_METRICS = METRICS[1:]  # in the order results list them


def exact_terms(values: Sequence[float]) -> list[float]:
    """The canonical expansion of the exact total of ``values``: non-overlapping terms,
    smallest first, each the correctly rounded rest of the total.

    Every step is one ``math.fsum`` (C, exact then rounded) over the values and the terms
    taken so far, so a group of any size costs a few C passes instead of a Python loop per
    value. It depends only on the exact total, so equal multisets give equal expansions
    however they were split. Raises ``OverflowError`` (from ``fsum``) when the
    total leaves the float range.
    """
    if len(values) <= 2:
        return _two_terms(values)
    terms: list[float] = []
    rest = list(values)
    # fsum is zero exactly when the exact total is (totals are multiples of 2**-1074);
    # a zero total, -0.0 included, has the empty expansion.
    while top := math.fsum(rest):
        terms.append(top)
        rest.append(-top)
    terms.reverse()
    return terms


def _two_terms(values: Sequence[float]) -> list[float]:
    """``exact_terms`` of at most two values, by Knuth's TwoSum: one value added to a
    one-term total is by far the usual step, and this is several times faster."""
    if len(values) < 2:
        return [values[0] + 0.0] if values and values[0] else []
    a, b = values
    high = a + b
    if high - high:  # inf or nan: the total left the float range
        raise OverflowError("sum out of the float range")
    if not high:
        return []  # an exact cancellation, or zeros
    a_part = high - b
    low = (a - a_part) + (b - (high - a_part))
    return [low, high] if low else [high]


class Agg:
    """Count, and per value field: non-null count, exact sum, min and max."""

    __slots__ = ("_max", "_min", "_n", "_terms", "count")

    def __init__(
        self,
        count: int,
        n: list[int],
        terms: list[list[float]],
        mins: list[float | None],
        maxs: list[float | None],
    ) -> None:
        self.count = count
        self._n = n
        self._terms = terms  # per field: exact_terms of its sum, always canonical
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
        self._terms = [
            t if v is None else _two_terms((t[0], v)) if len(t) == 1 else exact_terms([*t, v])
            for t, v in zip(self._terms, values, strict=True)
        ]
        self.count += 1
        for j, v in enumerate(values):
            if v is not None:
                self._n[j] += 1
                v += 0.0  # -0.0 -> +0.0, keeping min/max canonical
                self._bound(j, v, v)

    def add_rows(self, rows: Sequence[Sequence[float | None]]) -> None:
        """Add a group of events at once: one exact-sum step per field, not per value."""
        if len(rows) == 1:
            self.add(rows[0])
            return
        width = len(self._n)
        for row in rows:
            if len(row) != width:
                raise ValueError(f"expected {width} values, got {len(row)}")
        columns = list(zip(*rows, strict=True)) if rows else [()] * width
        self._fold(len(rows), [[v for v in column if v is not None] for column in columns])

    def _fold(self, count: int, columns: list[list[float]]) -> None:
        # Sums first: the only step that can fail, and it leaves self untouched.
        terms = [
            exact_terms(t + column) if column else t
            for t, column in zip(self._terms, columns, strict=True)
        ]
        self._terms = terms
        self.count += count
        for j, column in enumerate(columns):
            if column:
                self._n[j] += len(column)
                # + 0.0 turns -0.0 into +0.0, keeping min/max canonical.
                self._bound(j, min(column) + 0.0, max(column) + 0.0)

    def _bound(self, j: int, low: float | None, high: float | None) -> None:
        mn = self._min[j]
        if mn is None or (low is not None and low < mn):
            self._min[j] = low
        mx = self._max[j]
        if mx is None or (high is not None and high > mx):
            self._max[j] = high

    def to_state(self) -> list[Any]:
        """``[count, [n, min, max, [partials...]], ...]``, one list per value field.

        JSON-able, and canonical: it depends only on the multiset of events added.
        """
        fields: list[Any] = [
            [n, mn, mx, terms]
            for n, mn, mx, terms in zip(self._n, self._min, self._max, self._terms, strict=True)
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
        with_count, wanted = _plan(tuple(metrics))
        out: dict[str, Any] = {"count": self.count} if with_count else {}
        if wanted:
            fields = {}
            for j, name in enumerate(value_names):
                n = self._n[j]
                total = math.fsum(self._terms[j]) if n else None
                found = {
                    "sum": total,
                    "min": self._min[j],
                    "max": self._max[j],
                    "mean": None if total is None else total / n,
                }
                fields[name] = found if wanted == _VALUE_METRICS else {m: found[m] for m in wanted}
            out["values"] = fields
        return out


@functools.lru_cache(maxsize=64)
def _plan(metrics: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """Whether ``count`` is wanted, and the value metrics wanted, in order."""
    unknown = set(metrics).difference(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {METRICS}")
    return "count" in metrics, tuple(m for m in metrics if m in _VALUE_METRICS)
