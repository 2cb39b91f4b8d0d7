"""Reading an input field as the type ``fields`` declares for it (docs/pipelines.md).

Missing, null, empty and null-marker values are NULL, as for value fields. A value
that is not of its type raises ``ValueError`` saying what the field needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from agents.spec import short_repr
from agents.sql_values import INT64_MAX, INT64_MIN

_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _double(value: Any) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            pass
        else:
            # float() reads "1_000", "inf" and "nan"; a double field takes finite numbers.
            if math.isfinite(number) and not (isinstance(value, str) and "_" in value):
                return number
    raise ValueError(f"must be a finite number, got {short_repr(value)}")


def _bigint(value: Any) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and _INTEGER.fullmatch(value)
    ):
        number = int(value)
    if number is not None and INT64_MIN <= number <= INT64_MAX:
        return number
    raise ValueError(f"must be a whole number within BIGINT's range, got {short_repr(value)}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"must be text (or an integer, read as its digits), got {short_repr(value)}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"must be true or false, got {short_repr(value)}")


READERS: dict[str, Callable[[Any], Any]] = {
    "DOUBLE": _double,
    "BIGINT": _bigint,
    "VARCHAR": _text,
    "BOOLEAN": _boolean,
}
