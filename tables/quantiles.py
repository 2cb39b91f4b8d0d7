"""``p50``, ``p90`` and ``p99`` of a value field: approximate quantiles from a DDSketch,
within a relative error of 1 % (pure, no I/O).

A quantile ``q`` of ``n`` values is the value of rank ``ceil(q * n)`` in ascending order
(SQL's ``percentile_disc``, DuckDB's ``quantile_disc``). The sketch answers a value
within ``RELATIVE_ACCURACY`` of it: ``|answer - exact| <= 0.01 * |exact|``. Values
closer to 0 than ``MIN_MAGNITUDE`` (about 2.3e-308) count as 0.

Each value goes to the bucket that ddsketch's ``LogarithmicMapping`` gives its
magnitude (bucket k holds ``(gamma**(k-1), gamma**k]``, ``gamma = 1.0202``), one set of
buckets per sign, plus a count of zeros; a bucket answers for any value in it within the
relative accuracy. kappa keeps the buckets sparse, as sorted ``[bucket, count]`` pairs,
instead of ddsketch's dense store (whose bytes depend on the order values came in):
merging adds counts, which is exact, associative and commutative, and the state is
canonical. The cost is one pair per occupied bucket: at most about 116 buckets per
factor of 10 between the smallest and the largest magnitude, whatever the count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
QUANTILES = {"p50": 50, "p90": 90, "p99": 99}  # metric -> percent
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
MIN_MAGNITUDE: float = _MAPPING.min_possible


class Sketch:
    """One value field's buckets: positive and negative magnitudes, and zeros."""

    __slots__ = ("negative", "positive", "zeros")

    def __init__(self, positive: Counter[int], negative: Counter[int], zeros: int) -> None:
        self.positive = positive
        self.negative = negative
        self.zeros = zeros

    def add(self, values: Sequence[float]) -> None:
        key = _MAPPING.key
        for v in values:
            if v > MIN_MAGNITUDE:
                self.positive[key(v)] += 1
            elif v < -MIN_MAGNITUDE:
                self.negative[key(-v)] += 1
            else:
                self.zeros += 1

    def merge(self, other: Sketch) -> None:
        self.positive.update(other.positive)
        self.negative.update(other.negative)
        self.zeros += other.zeros

    def quantile(self, percent: int) -> float | None:
        """The sketch's value for rank ``ceil(percent / 100 * n)``; None for no values."""
        n = self.zeros + self.positive.total() + self.negative.total()
        if not n:
            return None
        rank = -(-percent * n // 100)  # ceil, in integers: no rounding at the boundary
        seen = 0
        for k in sorted(self.negative, reverse=True):  # the most negative first
            seen += self.negative[k]
            if seen >= rank:
                return -_MAPPING.value(k)
        seen += self.zeros
        if seen >= rank:
            return 0.0
        for k in sorted(self.positive):
            seen += self.positive[k]
            if seen >= rank:
                return float(_MAPPING.value(k))
        raise AssertionError("rank beyond the count")  # rank <= n by construction

    def to_state(self) -> list[Any]:
        return [
            self.zeros,
            [[k, self.positive[k]] for k in sorted(self.positive)],
            [[k, self.negative[k]] for k in sorted(self.negative)],
        ]

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> Sketch:
        zeros, positive, negative = obj
        return cls(
            Counter({int(k): int(c) for k, c in positive}),
            Counter({int(k): int(c) for k, c in negative}),
            int(zeros),
        )


class QuantileSketches:
    """Per value field, its ``Sketch``."""

    __slots__ = ("_sketches",)
    stamped: ClassVar[bool] = False  # needs no event stamps

    def __init__(self, sketches: list[Sketch]) -> None:
        self._sketches = sketches

    @classmethod
    def empty(cls, n_values: int) -> QuantileSketches:
        return cls([Sketch(Counter(), Counter(), 0) for _ in range(n_values)])

    def add_rows(self, rows: Sequence[Sequence[float | None]], stamps: Sequence[Any]) -> None:
        for j, sketch in enumerate(self._sketches):
            sketch.add([v for row in rows if (v := row[j]) is not None])

    def merge(self, other: QuantileSketches) -> None:
        if len(other._sketches) != len(self._sketches):
            raise ValueError("merging quantile sketches of different value fields")
        for mine, theirs in zip(self._sketches, other._sketches, strict=True):
            mine.merge(theirs)

    def field(self, j: int) -> dict[str, float | None]:
        sketch = self._sketches[j]
        return {name: sketch.quantile(percent) for name, percent in QUANTILES.items()}

    def to_state(self) -> list[Any]:
        return [sketch.to_state() for sketch in self._sketches]

    @classmethod
    def from_state(cls, obj: Sequence[Any]) -> QuantileSketches:
        return cls([Sketch.from_state(state) for state in obj])
