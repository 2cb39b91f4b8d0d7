"""What a compiled SQL expression is (``agents.expressions`` compiles them): its types,
apart from the compiler so that a worker whose spec has no expression never loads
sqlglot (about 16 MB of its memory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SqlType = Literal["DOUBLE", "BIGINT", "VARCHAR", "BOOLEAN", "TIMESTAMP", "NULL"]
Row = Mapping[str, Any]
Run = Callable[[Row], Any]


class ExpressionError(ValueError):
    """An expression that cannot be used; the message says where and what to write."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A checked expression: its type, its closure and its DuckDB SQL."""

    type: SqlType
    run: Run
    sql: str
    error_sql: str
    fields: frozenset[str]  # the fields it reads
