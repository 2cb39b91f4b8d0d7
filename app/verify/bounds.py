"""An expected value that is right within a bound: what ``kappa verify`` compares a
sketch's answer with (the ``p50``, ``p90``, ``p99`` metrics, tables/quantiles.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
