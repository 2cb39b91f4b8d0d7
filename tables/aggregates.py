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

The other metrics are kept by extras, each only when a metric asks for it:
``first`` and ``last`` (``tables.first_last``), for which every ``add`` takes each
event's stamp, its event time and offset; ``count_distinct`` (``tables.distinct``);
``p50``, ``p90``, ``p99``, approximate (``tables.quantiles``). Their
state is appended to ``to_state`` in one object, so an aggregate without them keeps the
same bytes.

Values must be finite (validated upstream). A sum whose running total leaves the float
range raises ``OverflowError`` (as ``math.fsum`` does) and leaves the aggregate unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, get_args

from tables.distinct import DistinctSets
from tables.first_last import FirstLast, Stamp
from tables.quantiles import QuantileSketches

Metric = Literal[
    "count", "sum", "min", "max", "mean", "first", "last", "count_distinct", "p50", "p90", "p99"
]
KNOWN_METRICS: tuple[Metric, ...] = get_args(Metric)
METRICS = KNOWN_METRICS[:5]  # the default: count and the exact folds
ORDER_METRICS: tuple[Metric, ...] = ("first", "last")  # need each event's stamp
_VALUE_METRICS = METRICS[1:]  # in the order results list them


class Extra(Protocol):
    """What an aggregate keeps for metrics beyond the flat cells, per value field."""

    stamped: ClassVar[bool]  # needs each event's stamp

    def add_rows(self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Stamp]) -> None: ...
    def merge(self, other: Any) -> None: ...
    def field(self, j: int) -> Mapping[str, Any]: ...
    def to_state(self) -> list[Any]: ...


class ExtraKind(NamedTuple):
    metrics: tuple[Metric, ...]
    empty: Callable[[int], Extra]
    from_state: Callable[[Sequence[Any]], Extra]


# By their name in the state, in the order the state lists them.
EXTRAS: dict[str, ExtraKind] = {
    "first_last": ExtraKind(ORDER_METRICS, FirstLast.empty, FirstLast.from_state),
    "distinct": ExtraKind(("count_distinct",), DistinctSets.empty, DistinctSets.from_state),
    "quantiles": ExtraKind(
        ("p50", "p90", "p99"), QuantileSketches.empty, QuantileSketches.from_state
    ),
}


@functools.lru_cache(maxsize=64)
def extras_for(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The extras that ``metrics`` need (cached: asked for each new key and window)."""
    return tuple(name for name, kind in EXTRAS.items() if set(kind.metrics) & set(metrics))


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
_EMPTY_FIELD = (0, None, None, 0.0)  # a field's cells before its first value


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

    __slots__ = ("_cells", "_extras", "_stamped")

    def __init__(self, cells: list[Any], extras: dict[str, Extra] | None = None) -> None:
        self._cells = cells
        self._extras = extras or {}
        # Without extras (the usual case, and a new window's), no generator is built.
        self._stamped = bool(extras) and any(extra.stamped for extra in self._extras.values())

    @classmethod
    def empty(cls, n_values: int, metrics: Sequence[str] = ()) -> Agg:
        """An aggregate of no events, with the extras that ``metrics`` need."""
        names = extras_for(tuple(metrics))
        if not names:  # every new key and window of the usual metrics
            return cls([0, *_EMPTY_FIELD * n_values])
        return cls(
            [0, *_EMPTY_FIELD * n_values], {name: EXTRAS[name].empty(n_values) for name in names}
        )

    @property
    def stamped(self) -> bool:
        """Whether ``add`` needs each event's stamp (for ``first`` and ``last``)."""
        return self._stamped

    @property
    def count(self) -> int:
        count: int = self._cells[0]
        return count

    @property
    def width(self) -> int:
        """The number of value fields."""
        return (len(self._cells) - 1) // _WIDTH

    def add(self, values: Sequence[float | None], stamp: Stamp | None = None) -> None:
        """Add one event, given its value fields in order (``None`` for NULL), and its
        stamp when the aggregate is ``stamped``."""
        cells = self._cells
        if _WIDTH * len(values) + 1 != len(cells):
            raise ValueError(f"expected {self.width} values, got {len(values)}")
        marks: tuple[Stamp, ...] = ()
        if stamp is not None:
            marks = (stamp,)
        elif self._stamped:
            raise ValueError("first and last need each event's stamp (time, offset)")
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
        for extra in self._extras.values():
            extra.add_rows((values,), marks)
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

    def add_rows(
        self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Stamp] | None = None
    ) -> None:
        """Add a group of events at once: one exact-sum step per field, not per value.
        ``stamps``, one per row, are needed when the aggregate is ``stamped``."""
        if len(rows) == 1:
            self.add(rows[0], None if stamps is None else stamps[0])
            return
        width = self.width
        for row in rows:
            if len(row) != width:
                raise ValueError(f"expected {width} values, got {len(row)}")
        if self._stamped and (stamps is None or len(stamps) != len(rows)):
            raise ValueError("first and last need each event's stamp (time, offset)")
        columns = list(zip(*rows, strict=True)) if rows else [()] * width
        present = [[v for v in column if v is not None] for column in columns]
        cells = self._cells
        # Sums first: the only step that can fail, and it leaves self untouched.
        sums = [
            _plus(cells[_WIDTH * j + 4], column) if column else None
            for j, column in enumerate(present)
        ]
        for extra in self._extras.values():
            extra.add_rows(rows, stamps or ())
        cells[0] += len(rows)
        for j, column in enumerate(present):
            if column:
                # + 0.0 turns -0.0 into +0.0, keeping min/max canonical.
                low, high = min(column) + 0.0, max(column) + 0.0
                self._take(_WIDTH * j + 1, len(column), low, high, sums[j])

    def merge(self, other: Agg) -> None:
        """Fold in the aggregate of other events (of the same fields): exact, and the
        state depends only on the multiset of events, whatever the merge order. How
        hopping windows combine their panes."""
        if other.width != self.width or other._extras.keys() != self._extras.keys():
            raise ValueError("merging aggregates of different value fields or metrics")
        cells, theirs = self._cells, other._cells
        sums = [
            _plus(cells[at + 3], _terms(theirs[at + 3])) if theirs[at] else None
            for at in range(1, len(cells), _WIDTH)
        ]
        for name, extra in self._extras.items():
            extra.merge(other._extras[name])
        cells[0] += theirs[0]
        for j, total in enumerate(sums):
            at = _WIDTH * j + 1
            if theirs[at]:
                self._take(at, theirs[at], theirs[at + 1], theirs[at + 2], total)

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

    @classmethod
    def merged(cls, aggs: Sequence[Agg]) -> Agg:
        """One aggregate of the events of all of ``aggs`` (at least one), leaving them
        unchanged; a single one is returned itself, to be read only."""
        if len(aggs) == 1:
            return aggs[0]
        first = aggs[0]
        out = cls(
            [0, *_EMPTY_FIELD * first.width],
            {name: EXTRAS[name].empty(first.width) for name in first._extras},
        )
        for agg in aggs:
            out.merge(agg)
        return out

    def to_state(self) -> list[Any]:
        """``[count, [n, min, max, [partials...]], ...]``, one list per value field.

        JSON-able, and canonical: it depends only on the multiset of events added.
        """
        cells = self._cells
        state: list[Any] = [
            cells[0],
            *(
                [cells[at], cells[at + 1], cells[at + 2], _terms(cells[at + 3])]
                for at in range(1, len(cells), _WIDTH)
            ),
        ]
        if self._extras:
            state.append({name: extra.to_state() for name, extra in self._extras.items()})
        return state

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> Agg:
        """The aggregate that ``to_state`` described (after a JSON round trip, too)."""
        cells: list[Any] = [int(obj[0])]
        fields, extras = (obj[1:-1], obj[-1]) if isinstance(obj[-1], dict) else (obj[1:], {})
        for n, mn, mx, terms in fields:
            cells += (
                int(n),
                None if mn is None else float(mn),
                None if mx is None else float(mx),
                _packed([float(x) for x in terms]),
            )
        return cls(cells, {name: EXTRAS[name].from_state(extras[name]) for name in extras})

    def _keeps(self, metric: str) -> bool:
        return any(metric in EXTRAS[name].metrics for name in self._extras)

    def result(self, value_names: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
        """The requested metrics, e.g. ``{"count": 3, "values": {"amount": {"sum": 1.5}}}``.

        ``"count"`` is present only if requested, ``"values"`` only if a value metric is.
        """
        if len(value_names) != self.width:
            raise ValueError(f"expected {self.width} value names, got {len(value_names)}")
        cells = self._cells
        with_count, wanted = _plan(tuple(metrics))
        extras = self._extras.values()
        if missing := [m for m in wanted if m not in _VALUE_METRICS and not self._keeps(m)]:
            raise ValueError(f"{missing} are kept only by an aggregate made for them")
        every = wanted == _VALUE_METRICS and not extras  # found holds just the wanted
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
                for extra in extras:
                    found |= extra.field(j)
                fields[name] = found if every else {m: found[m] for m in wanted}
            out["values"] = fields
        return out


@functools.lru_cache(maxsize=64)
def _plan(metrics: tuple[str, ...]) -> tuple[bool, tuple[str, ...]]:
    """Whether ``count`` is wanted, and the value metrics wanted, in order."""
    unknown = set(metrics).difference(KNOWN_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {KNOWN_METRICS}")
    return "count" in metrics, tuple(m for m in metrics if m != "count")
