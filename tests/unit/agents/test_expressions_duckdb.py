"""kappa's SQL expressions against DuckDB, row by row, for the same SQL text.

The oracle is DuckDB evaluating the expression text itself on one row at a time, with
division by zero an error (``ieee_floating_point_ops = false``), as kappa has it: where
DuckDB raises or gives a number that is not finite, kappa must find the value
uncomputable; everywhere else it must give DuckDB's value. Number literals with a
fraction are written with an exponent (``2.5e0``), which DuckDB reads as a DOUBLE, as
kappa reads every such literal (docs/pipelines.md).

The same rows also check the SQL kappa hands DuckDB in ``kappa verify``
(``Compiled.sql`` and ``Compiled.error_sql``), over the whole table at once.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.expression_types import Compiled, SqlType
from agents.expressions import compile_expression
from agents.sql_values import Uncomputable, timestamp

COLUMNS: dict[str, SqlType] = {
    "a": "DOUBLE",
    "b": "DOUBLE",
    "n": "BIGINT",
    "m": "BIGINT",
    "s": "VARCHAR",
    "u": "VARCHAR",
    "f": "BOOLEAN",
    "ts": "TIMESTAMP",
}
DDL = "a DOUBLE, b DOUBLE, n BIGINT, m BIGINT, s VARCHAR, u VARCHAR, f BOOLEAN, ts TIMESTAMP"
UNCOMPUTABLE = "uncomputable"

# Values that meet at the edges: zeros (division), halves (rounding), near-equal doubles,
# and letters in both cases.
doubles = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 0.5, -2.5, 1.005, 2.675, 1e15 + 0.5, 0.1, 3.0]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
bigints = st.one_of(
    st.none(),
    st.sampled_from([0, 1, -1, 2, 3, -7, 2**62, -(2**63), 2**63 - 1]),
    st.integers(-1000, 1000),
)
texts = st.one_of(st.none(), st.sampled_from(["", "paid", "PAID", "Paid", "x", "é", "ÉA"]))
times = st.integers(-62_135_596_800_000 + 86_400_000, 253_402_300_799_999 - 86_400_000)
rows = st.fixed_dictionaries(
    {
        "a": doubles,
        "b": doubles,
        "n": bigints,
        "m": bigints,
        "s": texts,
        "u": texts,
        "f": st.one_of(st.none(), st.booleans()),
        "ts": times,
    }
)


def _leaf(kind: str) -> st.SearchStrategy[str]:
    literal = {
        "num": st.one_of(
            st.integers(0, 9).map(str),
            st.sampled_from(["0.5e0", "2.5e0", "1e-1", "0e0"]),
        ),
        "bool": st.sampled_from(["TRUE", "FALSE"]),
        "text": st.sampled_from(["'paid'", "'PAID'", "''", "'é'"]),
    }[kind]
    column = {
        "num": st.sampled_from(["a", "b", "n", "m"]),
        "bool": st.just("f"),
        "text": st.sampled_from(["s", "u"]),
    }[kind]
    return st.one_of(column, column, literal, st.just("NULL"))


def expressions(kind: str, depth: int) -> st.SearchStrategy[str]:
    """SQL text of type ``kind`` (num, bool, text), at most ``depth`` operators deep.
    Integer literals are small, so that no tree of literals alone overflows DuckDB's
    INTEGER literals (kappa's are BIGINT)."""
    if depth == 0:
        return _leaf(kind)
    sub = {k: expressions(k, depth - 1) for k in ("num", "bool", "text")}
    num, boolean, text = sub["num"], sub["bool"], sub["text"]
    case = st.tuples(boolean, sub[kind], sub[kind]).map(
        lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"
    )
    coalesce = st.tuples(sub[kind], sub[kind]).map(lambda t: f"COALESCE({t[0]}, {t[1]})")
    common = [case, coalesce]
    if kind == "num":
        bigint = st.sampled_from(["n", "m", "CAST(a AS BIGINT)", "hour(ts)", "3"])
        options = [
            st.tuples(num, st.sampled_from(["+", "-", "*", "/"]), num).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(bigint, bigint).map(lambda t: f"({t[0]} % {t[1]})"),
            num.map(lambda x: f"(-{x})"),
            num.map(lambda x: f"ABS({x})"),
            st.tuples(num, st.integers(0, 3)).map(lambda t: f"ROUND({t[0]}, {t[1]})"),
            # to tens or more: kappa refuses it on a BIGINT, so the operand is a DOUBLE
            st.tuples(num, st.integers(-2, -1)).map(
                lambda t: f"ROUND(CAST({t[0]} AS DOUBLE), {t[1]})"
            ),
            num.map(lambda x: f"CAST({x} AS BIGINT)"),
            num.map(lambda x: f"CAST({x} AS DOUBLE)"),
            *(st.just(function) for function in DATE_FUNCTIONS),
        ]
    elif kind == "bool":
        comparison = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])
        options = [
            st.tuples(num, comparison, num).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(text, comparison, text).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(boolean, st.sampled_from(["AND", "OR"]), boolean).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            boolean.map(lambda x: f"(NOT {x})"),
            st.tuples(sub[kind], st.sampled_from(["IS NULL", "IS NOT NULL"])).map(
                lambda t: f"({t[0]} {t[1]})"
            ),
            st.tuples(num, st.sampled_from(["IS NULL", "IS NOT NULL"])).map(
                lambda t: f"({t[0]} {t[1]})"
            ),
            st.tuples(text, st.lists(text, min_size=1, max_size=3)).map(
                lambda t: f"({t[0]} IN ({', '.join(t[1])}))"
            ),
            st.tuples(num, num, num).map(lambda t: f"({t[0]} BETWEEN {t[1]} AND {t[2]})"),
        ]
    else:
        options = [
            text.map(lambda x: f"LOWER({x})"),
            text.map(lambda x: f"UPPER({x})"),
            st.sampled_from(["n", "m", "hour(ts)"]).map(lambda x: f"CAST({x} AS VARCHAR)"),
            boolean.map(lambda x: f"CAST({x} AS VARCHAR)"),
        ]
    return st.one_of(_leaf(kind), *options, *common)


DATE_FUNCTIONS = [
    "year(ts)",
    "quarter(ts)",
    "month(ts)",
    "day(ts)",
    "dayofyear(ts)",
    "dayofweek(ts)",
    "isodow(ts)",
    "week(ts)",
    "hour(ts)",
    "minute(ts)",
    "second(ts)",
    "EXTRACT(hour FROM ts)",
    "date_part('dow', ts)",
    "EXTRACT(doy FROM ts)",
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET ieee_floating_point_ops = false")
    con.execute(f"CREATE TABLE t (i INTEGER, {DDL})")
    return con


def _load(con: duckdb.DuckDBPyConnection, table: list[dict[str, Any]]) -> None:
    con.execute("DELETE FROM t")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [i, r["a"], r["b"], r["n"], r["m"], r["s"], r["u"], r["f"], timestamp(r["ts"])]
            for i, r in enumerate(table)
        ],
    )


def _duckdb_row(con: duckdb.DuckDBPyConnection, text: str, index: int) -> Any:
    """DuckDB's value of ``text`` on row ``index`` alone, or UNCOMPUTABLE."""
    try:
        found = con.execute(f"SELECT {text} FROM t WHERE i = {index}").fetchone()
    except (duckdb.InvalidInputException, duckdb.OutOfRangeException, duckdb.ConversionException):
        return UNCOMPUTABLE
    assert found is not None
    (value,) = found
    if isinstance(value, float) and not math.isfinite(value):
        return UNCOMPUTABLE
    return value


def _kappa(compiled: Compiled, row: dict[str, Any]) -> Any:
    try:
        return compiled.run(row)
    except Uncomputable:
        return UNCOMPUTABLE


def _same(kappa: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(kappa, float):
        # -0.0 == 0.0 in SQL too; otherwise the very same double.
        return kappa == expected
    return type(kappa) is type(expected) and kappa == expected


def check(con: duckdb.DuckDBPyConnection, text: str, table: list[dict[str, Any]]) -> None:
    compiled = compile_expression(text, COLUMNS)
    _load(con, table)
    kappa = [_kappa(compiled, row) for row in table]
    duck = [_duckdb_row(con, text, index) for index in range(len(table))]
    for index, (got, expected) in enumerate(zip(kappa, duck, strict=True)):
        assert _same(got, expected), f"{text} on {table[index]}: kappa {got!r}, DuckDB {expected!r}"
    # The SQL verify runs, with DuckDB's default division: the same values where kappa
    # computes one, and the error flag elsewhere.
    con.execute("SET ieee_floating_point_ops = true")
    verified = con.execute(
        f"SELECT {compiled.error_sql}, CASE WHEN {compiled.error_sql} THEN NULL"
        f" ELSE {compiled.sql} END FROM t ORDER BY i"
    ).fetchall()
    con.execute("SET ieee_floating_point_ops = false")
    for index, (error, value) in enumerate(verified):
        if kappa[index] == UNCOMPUTABLE:
            assert error, f"{compiled.error_sql} misses row {table[index]}"
        else:
            assert not error, f"{compiled.error_sql} flags row {table[index]}"
            assert _same(value, kappa[index]), f"{compiled.sql} on {table[index]}: {value!r}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["num", "bool", "text"]).flatmap(lambda kind: expressions(kind, 3)),
    st.lists(rows, min_size=1, max_size=6),
)
def test_generated_expressions_match_duckdb(
    con: duckdb.DuckDBPyConnection, text: str, table: list[dict[str, Any]]
) -> None:
    check(con, text, table)


NULL_ROWS: list[dict[str, Any]] = [
    {"a": 1.5, "b": None, "n": 2, "m": None, "s": None, "u": "paid", "f": None, "ts": 0},
    {"a": None, "b": 0.0, "n": None, "m": 0, "s": "PAID", "u": None, "f": True, "ts": 3_600_000},
    {"a": 2.5, "b": 0.0, "n": 7, "m": 0, "s": "paid", "u": "x", "f": False, "ts": -1},
]


@pytest.mark.parametrize(
    "text",
    [
        "a + b",
        "n + m",
        "a + n",
        "a / b",
        "n % m",
        "CASE WHEN b = 0 THEN NULL ELSE a / b END",
        "CASE WHEN f THEN 'yes' WHEN NOT f THEN 'no' END",
        "CASE s WHEN 'paid' THEN 1 WHEN 'PAID' THEN 2 ELSE 0 END",
        "COALESCE(a, b, 0)",
        "COALESCE(b, a / b)",
        "LOWER(s) = 'paid' AND a > 0",
        "f OR a > 1",
        "f AND b <> 0",
        "NOT f",
        "s IN ('paid', NULL)",
        "s IS NULL OR u IS NOT NULL",
        "ROUND(a) + ROUND(a, 1)",
        "CAST(a AS BIGINT)",
        "CAST(n AS VARCHAR)",
        "hour(ts) + 100 * dayofweek(ts)",
    ],
)
def test_null_rules_and_guards_match_duckdb(con: duckdb.DuckDBPyConnection, text: str) -> None:
    check(con, text, NULL_ROWS)
