"""The run-time rules of kappa's SQL expressions, one value at a time, as DuckDB has them.

``agents.expressions`` builds an expression's closures from these; each rule here is
the one DuckDB applies to the same SQL (tests/unit/agents/test_expressions_duckdb.py
checks them against DuckDB row by row). A value that cannot be computed raises
``Uncomputable``; NULL is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Uncomputable(Exception):
    """A value that cannot be computed: a division by zero, a BIGINT overflow, a cast
    that fails, a result that is not a finite number."""


def bigint(value: int, what: str) -> int:
    """``value`` if it fits a BIGINT (64-bit), else Uncomputable naming ``what``."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    raise Uncomputable(f"{what} is {value}, beyond BIGINT's range")


def finite(value: float, what: str) -> float:
    """``value`` if it is a finite number, else Uncomputable naming ``what``."""
    if math.isfinite(value):
        return value
    raise Uncomputable(f"{what} is {value}, not a finite number")


def round_half_away(value: float) -> float:
    """C's ``round``: halves away from zero (Python's ``round`` goes to even)."""
    if not math.isfinite(value):
        return value
    magnitude = abs(value)
    whole = math.floor(magnitude)
    rounded = float(whole + 1 if magnitude - whole >= 0.5 else whole)  # exact: both doubles
    return math.copysign(rounded, value)


def round_digits(value: float, digits: int) -> float:
    """DuckDB's ``round(DOUBLE, digits)``: scale, round half away from zero, scale back;
    where that overflows, the value itself (digits >= 0) or 0 (digits < 0)."""
    if digits >= 0:
        modifier = 10.0**digits
        rounded = round_half_away(value * modifier) / modifier
        return rounded if math.isfinite(rounded) else value
    modifier = 10.0**-digits
    rounded = round_half_away(value / modifier) * modifier
    return rounded if math.isfinite(rounded) else 0.0


def double_to_bigint(value: float) -> int:
    """``CAST(DOUBLE AS BIGINT)``: halves to even (where ``ROUND`` takes them away from
    zero); NaN, infinities and values beyond BIGINT fail."""
    if not math.isfinite(value):
        raise Uncomputable(f"CAST({value!r} AS BIGINT) failed: not a finite number")
    rounded = round(value)
    if not INT64_MIN <= rounded <= INT64_MAX:
        raise Uncomputable(f"CAST({value!r} AS BIGINT) failed: beyond BIGINT's range")
    return rounded


def remainder(dividend: int, divisor: int) -> int:
    """BIGINT ``%``: the sign of the dividend, as in C (Python's ``%`` takes the divisor's)."""
    if divisor == 0:
        raise Uncomputable("division by zero")
    magnitude = abs(dividend) % abs(divisor)
    return magnitude if dividend >= 0 else -magnitude


def timestamp(ms: int) -> datetime:
    """The UTC time of epoch milliseconds ``ms`` (years 1 to 9999)."""
    return _EPOCH + timedelta(milliseconds=ms)


_DAY_MS = 86_400_000
# Each date part of an event time in epoch ms, UTC. Clock parts and weekdays are
# arithmetic on the ms (floor division keeps them right before 1970); calendar parts
# go through a datetime.
DATE_PARTS: dict[str, Callable[[int], int]] = {
    "year": lambda ms: timestamp(ms).year,
    "quarter": lambda ms: (timestamp(ms).month - 1) // 3 + 1,
    "month": lambda ms: timestamp(ms).month,
    "day": lambda ms: timestamp(ms).day,
    "dayofyear": lambda ms: timestamp(ms).timetuple().tm_yday,
    "dayofweek": lambda ms: (ms // _DAY_MS + 4) % 7,  # Sunday 0; 1970-01-01 was a Thursday
    "isodow": lambda ms: (ms // _DAY_MS + 3) % 7 + 1,  # Monday 1 .. Sunday 7
    "week": lambda ms: timestamp(ms).isocalendar().week,  # ISO 8601 week
    "hour": lambda ms: ms // 3_600_000 % 24,
    "minute": lambda ms: ms // 60_000 % 60,
    "second": lambda ms: ms // 1000 % 60,
}
DATE_PARTS["dow"] = DATE_PARTS["dayofweek"]
DATE_PARTS["doy"] = DATE_PARTS["dayofyear"]
