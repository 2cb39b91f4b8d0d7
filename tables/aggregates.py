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

In memory an aggregate is flat: one list of a few ints and floats per field, the sum a
float when one float holds the exact total (the usual case) and a tuple of its terms only
when it needs more. ``to_state`` writes the terms as a list either way.

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


Sum = float | tuple[float, ...]
_WIDTH = 4  # cells per value field: non-null count, min, max, exact sum


def _packed(terms: list[float]) -> Sum:
    """An exact sum as kept in an ``Agg``: a float when its expansion has at most one
    term (``0.0`` for the empty one: a one-term expansion is never zero), a tuple of the
    terms only when the total needs more than one float."""
    if len(terms) > 1:
        return tuple(terms)
    return terms[0] if terms else 0.0


def _terms(total: Sum) -> list[float]:
    """The expansion that ``_packed`` packed."""
    if isinstance(total, tuple):
        return list(total)
    return [total] if total else []


def _plus(total: Sum, values: Sequence[float]) -> Sum:
    """``total`` with ``values`` added, exactly: TwoSum for the usual one value added to
    a one-term total, ``exact_terms`` otherwise."""
    if not isinstance(total, tuple) and len(values) == 1:
        return _packed(_two_terms((total, values[0]) if total else values))
    return _packed(exact_terms([*_terms(total), *values]))


class Agg:
    """Count, and per value field: non-null count, exact sum, min and max.

    Flat: one list of cells, ``[count, n, min, max, sum, n, min, max, sum, ...]``, with
    each sum a float and a tuple of exact-sum terms only for a total that needs them.
    """

    __slots__ = ("_cells",)

    def __init__(self, cells: list[Any]) -> None:
        self._cells = cells

    @classmethod
    def empty(cls, n_values: int) -> Agg:
        return cls([0, *[0, None, None, 0.0] * n_values])

    @property
    def count(self) -> int:
        count: int = self._cells[0]
        return count

    @property
    def width(self) -> int:
        """The number of value fields."""
        return (len(self._cells) - 1) // _WIDTH

    def add(self, values: Sequence[float | None]) -> None:
        """Add one event, given its value fields in order (``None`` for NULL)."""
        cells = self._cells
        if _WIDTH * len(values) + 1 != len(cells):
            raise ValueError(f"expected {self.width} values, got {len(values)}")
        # Sums first: the only step that can fail, and it leaves self untouched.
        sums: list[Sum | None] = []
        at = 4
        for v in values:
            if v is None:
                sums.append(None)
            else:
                total = cells[at]
                if total.__class__ is float:  # one term or none: TwoSum, the usual step
                    sums.append(_packed(_two_terms((total, v) if total else (v,))))
                else:
                    sums.append(_plus(total, (v,)))
            at += _WIDTH
        cells[0] += 1
        at = 1
        for v, total in zip(values, sums, strict=True):
            if v is not None:
                v += 0.0  # -0.0 -> +0.0, keeping min/max canonical
                cells[at] += 1
                if cells[at + 1] is None or v < cells[at + 1]:
                    cells[at + 1] = v
                if cells[at + 2] is None or v > cells[at + 2]:
                    cells[at + 2] = v
                cells[at + 3] = total
            at += _WIDTH

    def add_rows(self, rows: Sequence[Sequence[float | None]]) -> None:
        """Add a group of events at once: one exact-sum step per field, not per value."""
        if len(rows) == 1:
            self.add(rows[0])
            return
        width = self.width
        for row in rows:
            if len(row) != width:
                raise ValueError(f"expected {width} values, got {len(row)}")
        columns = list(zip(*rows, strict=True)) if rows else [()] * width
        present = [[v for v in column if v is not None] for column in columns]
        cells = self._cells
        # Sums first: the only step that can fail, and it leaves self untouched.
        sums = [
            _plus(cells[_WIDTH * j + 4], column) if column else None
            for j, column in enumerate(present)
        ]
        cells[0] += len(rows)
        for j, column in enumerate(present):
            if column:
                # + 0.0 turns -0.0 into +0.0, keeping min/max canonical.
                low, high = min(column) + 0.0, max(column) + 0.0
                self._take(_WIDTH * j + 1, len(column), low, high, sums[j])

    def _take(self, at: int, n: int, low: float, high: float, total: Sum | None) -> None:
        cells = self._cells
        cells[at] += n
        mn = cells[at + 1]
        if mn is None or low < mn:
            cells[at + 1] = low
        mx = cells[at + 2]
        if mx is None or high > mx:
            cells[at + 2] = high
        cells[at + 3] = total

    def merge(self, other: Agg) -> None:
        """Add every event ``other`` holds (an aggregate of the same fields), as if added
        one by one: counts add, minima and maxima meet, and the exact sums' terms merge
        into the expansion of the exact total, so the sum stays correctly rounded and
        ``to_state`` canonical. How hopping windows combine their panes."""
        cells, theirs = self._cells, other._cells
        if len(cells) != len(theirs):
            raise ValueError(f"expected {self.width} value fields, got {other.width}")
        # Sums first: the only step that can fail, and it leaves self untouched.
        sums = [
            _plus(cells[at + 3], _terms(theirs[at + 3])) if theirs[at] else None
            for at in range(1, len(cells), _WIDTH)
        ]
        cells[0] += theirs[0]
        for at, total in zip(range(1, len(cells), _WIDTH), sums, strict=True):
            if total is not None:
                self._take(at, theirs[at], theirs[at + 1], theirs[at + 2], total)

    @classmethod
    def merged(cls, aggs: Sequence[Agg]) -> Agg:
        """One aggregate of the events of all of ``aggs`` (at least one), leaving them
        unchanged; a single one is returned itself, to be read only."""
        if len(aggs) == 1:
            return aggs[0]
        out = cls(list(aggs[0]._cells))
        for agg in aggs[1:]:
            out.merge(agg)
        return out

    def to_state(self) -> list[Any]:
        """``[count, [n, min, max, [partials...]], ...]``, one list per value field.

        JSON-able, and canonical: it depends only on the multiset of events added.
        """
        cells = self._cells
        return [
            cells[0],
            *(
                [cells[at], cells[at + 1], cells[at + 2], _terms(cells[at + 3])]
                for at in range(1, len(cells), _WIDTH)
            ),
        ]

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> Agg:
        """The aggregate that ``to_state`` described (after a JSON round trip, too)."""
        cells: list[Any] = [int(obj[0])]
        for n, mn, mx, terms in obj[1:]:
            cells += (
                int(n),
                None if mn is None else float(mn),
                None if mx is None else float(mx),
                _packed([float(x) for x in terms]),
            )
        return cls(cells)

    def result(self, value_names: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
        """The requested metrics, e.g. ``{"count": 3, "values": {"amount": {"sum": 1.5}}}``.

        ``"count"`` is present only if requested, ``"values"`` only if a value metric is.
        """
        if len(value_names) != self.width:
            raise ValueError(f"expected {self.width} value names, got {len(value_names)}")
        cells = self._cells
        with_count, wanted = _plan(tuple(metrics))
        out: dict[str, Any] = {"count": cells[0]} if with_count else {}
        if wanted:
            fields = {}
            for j, name in enumerate(value_names):
                at = _WIDTH * j + 1
                n = cells[at]
                total = cells[at + 3]
                if isinstance(total, tuple):
                    total = math.fsum(total)
                elif not n:
                    total = None
                found = {
                    "sum": total,
                    "min": cells[at + 1],
                    "max": cells[at + 2],
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
