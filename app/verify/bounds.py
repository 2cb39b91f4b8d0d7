"""Expected values that are not one exact number: what ``kappa verify`` compares a
sketch's answer with (the ``p50``, ``p90``, ``p99`` metrics, tables/quantiles.py), and a
``count_distinct`` over its per-record bound (tables/distinct.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.distinct import distinct_limit
from tables.quantiles import MIN_MAGNITUDE, RELATIVE_ACCURACY


@dataclass(frozen=True, eq=False)
class WithinRelative:
    """Equal to any number within ``relative_error`` of ``exact`` (and to 0 for an exact
    value closer to 0 than the sketch tells apart). A dataclass, so that ``--json``
    shows both fields of a difference."""

    exact: float
    relative_error: float = RELATIVE_ACCURACY

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool) or not isinstance(other, int | float):
            return False
        if abs(self.exact) < MIN_MAGNITUDE:
            return other == 0
        # The bound, plus a few ulps for the rounding of the bucket's value.
        return abs(other - self.exact) <= self.relative_error * abs(self.exact) * (1 + 1e-12)

    __hash__ = None  # type: ignore[assignment]  # equal to many numbers: not hashable

    def __repr__(self) -> str:
        return f"{self.exact!r} ± {self.relative_error:.0%}"


def within(exact: Any) -> WithinRelative | None:
    """A quantile as verify expects it: None stays None (no values)."""
    return None if exact is None else WithinRelative(float(exact))


@dataclass(frozen=True, eq=False)
class OverBound:
    """A ``count_distinct`` of more values than a record keeps (``limit``): kappa shows
    it as null, so only ``None`` is equal. ``--json`` shows the exact count and the
    limit."""

    exact: int
    limit: int

    def __eq__(self, other: object) -> bool:
        return other is None

    __hash__ = None  # type: ignore[assignment]  # equal to None, not to itself: not hashable

    def __repr__(self) -> str:
        return f"null ({self.exact} distinct values, over the bound of {self.limit})"


def bounded_distinct(exact: Any, n_values: int) -> int | OverBound | None:
    """A ``count_distinct`` as verify expects it, for a spec of ``n_values`` value fields."""
    limit = distinct_limit(n_values)
    return OverBound(int(exact), limit) if exact is not None and exact > limit else exact
