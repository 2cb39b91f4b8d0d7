"""``first`` and ``last`` of a value field: the value at the earliest and at the latest
event time (pure, no I/O).

Ties in event time are broken by input order: the event's offset in its partition of the
version's input, on the worker's virtual scale (history records before live ones,
agents/history_seam.py). A key's events all come from one partition (misrouted records
are dead letters), so ``(event time, offset)`` orders them totally, replay after replay,
and ``kappa verify`` orders them the same way (``seq``). NULL values are left out, as
``min`` and ``max`` leave them out.

A mark is ``[time, offset, value]`` or ``None``. Since no two events share an offset,
the earliest and the latest mark of any set of events is one event's, whatever the
order and grouping of the merges: merging is exact, associative and commutative, and the
state is canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

Stamp = tuple[int, int]  # event time ms, offset in the key's partition
_NO_MARKS: list[Any] = [None, None]


class FirstLast:
    """Per value field, the first and the last mark: flat, ``[first, last, first, ...]``."""

    __slots__ = ("_marks",)
    stamped: ClassVar[bool] = True  # needs each event's stamp

    def __init__(self, marks: list[Any]) -> None:
        self._marks = marks

    @classmethod
    def empty(cls, n_values: int) -> FirstLast:
        return cls(_NO_MARKS * n_values)

    def add_rows(self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Stamp]) -> None:
        """Take a group of events: their value fields and their stamps, in any order."""
        marks = self._marks
        for j in range(len(marks) // 2):
            present = [
                (stamp, row[j])
                for row, stamp in zip(rows, stamps, strict=True)
                if row[j] is not None
            ]
            if present:
                self._take(j, min(present), max(present))

    def _take(self, j: int, low: tuple[Stamp, Any], high: tuple[Stamp, Any]) -> None:
        marks = self._marks
        # + 0.0 turns -0.0 into +0.0, as min and max do.
        first = [*low[0], low[1] + 0.0]
        last = [*high[0], high[1] + 0.0]
        old_first, old_last = marks[2 * j], marks[2 * j + 1]
        if old_first is None or first[:2] < old_first[:2]:
            marks[2 * j] = first
        if old_last is None or last[:2] > old_last[:2]:
            marks[2 * j + 1] = last

    def merge(self, other: FirstLast) -> None:
        """Fold in the marks of another set of events of the same key."""
        theirs = other._marks
        if len(theirs) != len(self._marks):
            raise ValueError("merging first/last marks of different value fields")
        for j in range(len(theirs) // 2):
            first, last = theirs[2 * j], theirs[2 * j + 1]
            if first is not None:
                self._take(j, ((first[0], first[1]), first[2]), ((last[0], last[1]), last[2]))

    def field(self, j: int) -> dict[str, float | None]:
        """``{"first": .., "last": ..}`` of value field ``j``; ``None`` without a value."""
        first, last = self._marks[2 * j], self._marks[2 * j + 1]
        return {
            "first": None if first is None else first[2],
            "last": None if last is None else last[2],
        }

    def to_state(self) -> list[Any]:
        """``[[first, last], ...]`` per value field, each mark ``[time, offset, value]``."""
        marks = self._marks
        return [[marks[i], marks[i + 1]] for i in range(0, len(marks), 2)]

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> FirstLast:
        marks: list[Any] = []
        for pair in obj:
            marks += (None if m is None else [int(m[0]), int(m[1]), float(m[2])] for m in pair)
        return cls(marks)
