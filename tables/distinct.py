"""``count_distinct`` of a value field: the exact number of distinct non-NULL values
(pure, no I/O).

Values are floats (agents/events.py), compared as SQL compares them: ``-0.0`` is ``0.0``.
Each field keeps the exact set, in two parts, chosen by measurement (docs/pipelines.md):

- integral values in the int64 range, the usual case (ids, codes, counts), in a
  pyroaring ``BitMap64``, shifted by 2**63 so that negative ones fit: a few bytes per
  value where they are dense (2 bytes each in a block of 65536 holding many), about 12
  where they are spread out;
- any other value in a sorted list of floats (8 bytes each, about 20 in JSON).

A hash (HyperLogLog, or a 64-bit hash of the value) would be smaller but not exact: two
values can share a hash, and then they count once.

The state is canonical: the roaring bitmap is serialised from a copy built afresh from
its values, after ``run_optimize``, which gives each container its smallest form (the
form of a container whose run and plain forms are as small depends on its history: a
run container read from a state stays one, a fresh one does not become one), and the
other values are sorted. Merging is set union: exact,
associative and commutative.

The bound: a record (a key's totals, a window's pane) goes to its changelog as one Kafka
record of at most 1 MB (agents/batch_sender.py), and a larger one can never be sent.
So a record keeps at most ``DISTINCT_VALUES_PER_RECORD`` values, shared equally by its
value fields (``distinct_limit``). A field that has more is *over*: its set is dropped,
its ``count_distinct`` is ``None``, and it stays over, since a set only grows. Over is a
function of the values (more than the limit in their union), so the state stays
canonical under any merge order.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, ClassVar

from pyroaring import BitMap64

_SHIFT = 1 << 63  # int64 -> uint64, order kept
_LOW, _HIGH = -(2.0**63), 2.0**63
# The worst case measured is about 30 bytes of state per value (integers spread over
# 2**53 in the bitmap's base64; floats such as -1.2345678901234567e-300 in JSON): 750 KB,
# below the 1 MB record with room for the record's other metrics.
DISTINCT_VALUES_PER_RECORD = 25_000


def distinct_limit(n_values: int) -> int:
    """The most distinct values one value field of a record keeps exactly."""
    return DISTINCT_VALUES_PER_RECORD // max(n_values, 1)


class DistinctSets:
    """Per value field, the set of its distinct non-NULL values."""

    __slots__ = ("_ints", "_limit", "_others", "_over")
    stamped: ClassVar[bool] = False  # needs no event stamps

    def __init__(self, ints: list[BitMap64], others: list[set[float]], over: list[bool]) -> None:
        self._ints = ints
        self._others = others
        self._over = over  # per field: more values than the limit, its sets dropped
        self._limit = distinct_limit(len(ints))

    @classmethod
    def empty(cls, n_values: int) -> DistinctSets:
        return cls(
            [BitMap64() for _ in range(n_values)],
            [set() for _ in range(n_values)],
            [False] * n_values,
        )

    def add_rows(self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Any]) -> None:
        for j, (ints, others) in enumerate(zip(self._ints, self._others, strict=True)):
            if self._over[j]:
                continue
            whole = []
            for row in rows:
                v = row[j]
                if v is None:
                    continue
                if v.is_integer() and _LOW <= v < _HIGH:
                    whole.append(int(v) + _SHIFT)
                else:
                    others.add(v)
            ints.update(whole)
            self._bound(j)

    def merge(self, other: DistinctSets) -> None:
        if len(other._ints) != len(self._ints):
            raise ValueError("merging distinct sets of different value fields")
        for j, over in enumerate(other._over):
            if over:
                self._drop(j)
            elif not self._over[j]:
                self._ints[j] |= other._ints[j]
                self._others[j] |= other._others[j]
                self._bound(j)

    def _bound(self, j: int) -> None:
        """Drop field ``j``'s sets once they hold more values than the limit."""
        if len(self._ints[j]) + len(self._others[j]) > self._limit:
            self._drop(j)

    def _drop(self, j: int) -> None:
        self._over[j] = True
        self._ints[j] = BitMap64()
        self._others[j] = set()

    def field(self, j: int) -> dict[str, int | None]:
        if self._over[j]:
            return {"count_distinct": None}
        return {"count_distinct": len(self._ints[j]) + len(self._others[j])}

    def to_state(self) -> list[Any]:
        """``[[roaring as base64, [other values, sorted]], ...]`` per value field; ``None``
        for a field over the limit."""
        state: list[Any] = []
        for ints, others, over in zip(self._ints, self._others, self._over, strict=True):
            if over:
                state.append(None)
                continue
            packed = base64.b64encode(_canonical(ints).serialize()).decode() if ints else ""
            state.append([packed, sorted(others)])
        return state

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> DistinctSets:
        ints, others, over = [], [], []
        for field in obj:
            packed, values = ("", ()) if field is None else field
            ints.append(BitMap64.deserialize(base64.b64decode(packed)) if packed else BitMap64())
            others.append({float(v) for v in values})
            over.append(field is None)
        return cls(ints, others, over)


def _canonical(ints: BitMap64) -> BitMap64:
    """``ints`` in the containers its values alone give (``run_optimize`` of a fresh copy)."""
    fresh = BitMap64(ints.to_array())
    fresh.run_optimize()
    return fresh
