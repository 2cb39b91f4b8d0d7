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

The state is canonical: the roaring bitmap is serialised after ``run_optimize``, which
gives each container its smallest form, a function of its values only (tested under
random merge orders), and the other values are sorted. Merging is set union: exact,
associative and commutative.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, ClassVar

from pyroaring import BitMap64

_SHIFT = 1 << 63  # int64 -> uint64, order kept
_LOW, _HIGH = -(2.0**63), 2.0**63


class DistinctSets:
    """Per value field, the set of its distinct non-NULL values."""

    __slots__ = ("_ints", "_others")
    stamped: ClassVar[bool] = False  # needs no event stamps

    def __init__(self, ints: list[BitMap64], others: list[set[float]]) -> None:
        self._ints = ints
        self._others = others

    @classmethod
    def empty(cls, n_values: int) -> DistinctSets:
        return cls([BitMap64() for _ in range(n_values)], [set() for _ in range(n_values)])

    def add_rows(self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Any]) -> None:
        for j, (ints, others) in enumerate(zip(self._ints, self._others, strict=True)):
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

    def merge(self, other: DistinctSets) -> None:
        if len(other._ints) != len(self._ints):
            raise ValueError("merging distinct sets of different value fields")
        for mine, theirs in zip(self._ints, other._ints, strict=True):
            mine |= theirs
        for found, more in zip(self._others, other._others, strict=True):
            found |= more

    def field(self, j: int) -> dict[str, int]:
        return {"count_distinct": len(self._ints[j]) + len(self._others[j])}

    def to_state(self) -> list[Any]:
        """``[[roaring as base64, [other values, sorted]], ...]`` per value field."""
        state = []
        for ints, others in zip(self._ints, self._others, strict=True):
            ints.run_optimize()
            packed = base64.b64encode(ints.serialize()).decode() if ints else ""
            state.append([packed, sorted(others)])
        return state

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> DistinctSets:
        ints, others = [], []
        for packed, values in obj:
            ints.append(BitMap64.deserialize(base64.b64decode(packed)) if packed else BitMap64())
            others.append({float(v) for v in values})
        return cls(ints, others)
