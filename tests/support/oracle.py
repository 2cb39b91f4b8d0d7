"""The independent batch computation: DuckDB SQL over the same history file.

It shares no code with kappa. Event times are parsed by DuckDB, windows are assigned
with integer arithmetic in SQL, and DuckDB groups and computes counts, minima and
maxima. Sums are exact: DuckDB's ``sum`` over DOUBLE is a plain running sum, and its
compensated ``fsum``/``kahan_sum`` is not correctly rounded either (DuckDB 2.0.1 sums
2**53, 1.0 and 2**-60 to 2**53 with all three; the exact sum rounds to 2**53 + 2). So
DuckDB hands each group's values over as a list and the sum is ``math.fsum`` of them,
the correctly rounded sum. The mean is that sum divided by the count of non-null values
(kappa documents the same definitions).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

VALUES = ("amount", "quantity")
HOUR = 3_600_000


def _load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    late: frozenset[tuple[str, int]],
    null_values: tuple[str, ...] = (),
) -> None:
    con.execute(
        """
        CREATE TABLE raw AS
        SELECT customer_id AS k,
               epoch_ms(CAST(ts AS TIMESTAMPTZ)) AS t,
               amount, quantity
        FROM read_csv(?, header = true, auto_detect = false, nullstr = ?,
                      columns = {'customer_id': 'VARCHAR', 'ts': 'VARCHAR',
                                 'amount': 'DOUBLE', 'quantity': 'DOUBLE'})
        """,
        [str(path), ["", *null_values]],
    )
    con.execute("CREATE TABLE late (k VARCHAR, t BIGINT)")
    if late:
        con.executemany("INSERT INTO late VALUES (?, ?)", sorted(late))


def _metrics() -> str:
    parts = ["count(*) AS n"]
    for v in VALUES:
        parts += [
            f"list({v}) FILTER (WHERE {v} IS NOT NULL) AS {v}_values",
            f"min({v}) AS {v}_min",
            f"max({v}) AS {v}_max",
        ]
    return ", ".join(parts)


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    n, *rest = row
    values = {}
    for i, v in enumerate(VALUES):
        xs, lo, hi = rest[3 * i : 3 * i + 3]
        total = math.fsum(xs) if xs else None
        mean = None if total is None else total / len(xs)
        values[v] = {"sum": total, "min": lo, "max": hi, "mean": mean}
    return {"count": n, "values": values}


def batch_results(
    path: Path,
    windows: list[tuple[str, int, int]],
    late: frozenset[tuple[str, int]] = frozenset(),
    null_values: tuple[str, ...] = (),
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str, int], dict[str, Any]]]:
    """Totals per key, and every window (key, window name, start) -> result.

    ``windows`` are (name, size_ms, step_ms). ``late`` holds (key, event ms) of events
    the lateness policy keeps out of windows; they still count in the totals. The CSV's
    empty fields are NULL, and so are ``null_values`` (DuckDB's ``nullstr``).
    """
    con = duckdb.connect()
    _load(con, path, late, null_values)
    totals = {
        row[0]: _shape(row[1:])
        for row in con.execute(f"SELECT k, {_metrics()} FROM raw GROUP BY k").fetchall()
    }
    result: dict[tuple[str, str, int], dict[str, Any]] = {}
    for name, size, step in windows:
        rows = con.execute(
            f"""
            WITH on_time AS (SELECT raw.* FROM raw ANTI JOIN late USING (k, t)),
            assigned AS (
                SELECT k, s, amount, quantity
                FROM on_time,
                     unnest(generate_series(
                         (t - (t % {step})) - ({size} - {step}) // {step} * {step},
                         t - (t % {step}),
                         {step})) AS g(s)
                WHERE s <= t AND t < s + {size}
            )
            SELECT k, s, {_metrics()} FROM assigned GROUP BY k, s
            """
        ).fetchall()
        for row in rows:
            result[(row[0], name, row[1])] = _shape(row[2:])
    return totals, result


def session_results(
    path: Path, name: str, gap_ms: int, late: frozenset[tuple[str, int]] = frozenset()
) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Every session (key, ``name``, start) -> result: each key's on-time events in time
    order, numbered by how many of them (itself included) are more than ``gap_ms`` after
    the event before: a running count of session starts."""
    con = duckdb.connect()
    _load(con, path, late)
    rows = con.execute(
        f"""
        WITH on_time AS (SELECT raw.* FROM raw ANTI JOIN late USING (k, t)),
        marked AS (
            SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY k ORDER BY t) <= {gap_ms}
                           THEN 0 ELSE 1 END AS starts
            FROM on_time
        ),
        numbered AS (
            SELECT *, sum(starts) OVER (PARTITION BY k ORDER BY t
                                        RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n
            FROM marked
        )
        SELECT k, min(t), {_metrics()} FROM numbered GROUP BY k, n
        """
    ).fetchall()
    return {(row[0], name, row[1]): _shape(row[2:]) for row in rows}


def zoned_days(
    path: Path, name: str, zone: str
) -> tuple[dict[tuple[str, str, int], dict[str, Any]], dict[int, int]]:
    """Every (key, ``name``, start) -> result of the days of time zone ``zone``, and
    each day's start -> end: DuckDB's ``time_bucket`` with a time zone, which starts a
    bucket at local midnight, and local-time arithmetic for the next midnight."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    _load(con, path, frozenset())
    con.execute(
        """
        CREATE TABLE days AS
        SELECT *, time_bucket(INTERVAL '1 day', make_timestamp(t * 1000)::TIMESTAMPTZ, ?) AS day
        FROM raw
        """,
        [zone],
    )
    rows = con.execute(f"SELECT k, epoch_ms(day) AS s, {_metrics()} FROM days GROUP BY k, s")
    results = {(row[0], name, row[1]): _shape(row[2:]) for row in rows.fetchall()}
    ends = con.execute(
        "SELECT DISTINCT epoch_ms(day), epoch_ms(timezone(?, timezone(?, day) + INTERVAL 1 DAY))"
        " FROM days",
        [zone, zone],
    ).fetchall()
    return results, {start: end for start, end in ends}


def derived_results(
    path: Path,
    windows: list[tuple[str, int, int]],
    derive: dict[str, str],
    key: str,
    where: str,
    dead: str,
    values: tuple[str, str],
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str, int], dict[str, Any]], int, int]:
    """``batch_results`` of a pipeline with derived fields: DuckDB computes ``derive``
    (name -> SQL, as the spec writes it), the key (SQL) and ``where`` over the CSV's
    rows, typed as the spec types them (``ts`` a TIMESTAMP, ``amount`` and ``quantity``
    DOUBLE), leaving out the rows that ``dead`` (SQL) says kappa dead-letters, and
    aggregates the two derived ``values``. Returns totals, windows, the number of
    filtered rows and of dead rows."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        """
        CREATE TABLE typed AS
        SELECT customer_id, CAST(CAST(ts AS TIMESTAMPTZ) AS TIMESTAMP) AS ts,
               TRY_CAST(amount AS DOUBLE) AS amount, TRY_CAST(quantity AS DOUBLE) AS quantity,
               coalesce(amount <> '' AND TRY_CAST(amount AS DOUBLE) IS NULL, FALSE)
               OR coalesce(quantity <> '' AND TRY_CAST(quantity AS DOUBLE) IS NULL, FALSE)
               AS non_numeric
        FROM read_csv(?, header = true, auto_detect = false,
                      columns = {'customer_id': 'VARCHAR', 'ts': 'VARCHAR',
                                 'amount': 'VARCHAR', 'quantity': 'VARCHAR'})
        """,
        [str(path)],
    )
    (non_numeric, dead_rows) = con.execute(
        f"SELECT count(*) FILTER (WHERE non_numeric),"
        f" count(*) FILTER (WHERE NOT non_numeric AND ({dead})) FROM typed"
    ).fetchone() or (0, 0)
    derived = ", ".join(f"({sql}) AS {name}" for name, sql in derive.items())
    con.execute(
        f"""
        CREATE TABLE computed AS
        SELECT *, {key} AS k, epoch_ms(ts) AS t, ({where}) IS TRUE AS kept
        FROM (SELECT *, {derived}
              FROM (SELECT * FROM typed WHERE NOT non_numeric AND ({dead}) IS NOT TRUE))
        """
    )
    (filtered,) = con.execute(
        "SELECT count(*) FILTER (WHERE NOT kept) FROM computed"
    ).fetchone() or (0,)
    # Named as _metrics and _shape name the two value columns.
    con.execute(
        f"CREATE TABLE raw AS SELECT k, t, {values[0]} AS amount, {values[1]} AS quantity"
        " FROM computed WHERE kept"
    )
    con.execute("CREATE TABLE late (k VARCHAR, t BIGINT)")
    totals = {
        row[0]: _renamed(_shape(row[1:]), values)
        for row in con.execute(f"SELECT k, {_metrics()} FROM raw GROUP BY k").fetchall()
    }
    result: dict[tuple[str, str, int], dict[str, Any]] = {}
    for name, size, step in windows:
        assert size == step, "tumbling windows only"
        rows = con.execute(
            f"SELECT k, t - (t % {size}) AS s, {_metrics()} FROM raw GROUP BY k, s"
        ).fetchall()
        for row in rows:
            result[(row[0], name, row[1])] = _renamed(_shape(row[2:]), values)
    return totals, result, filtered, non_numeric + dead_rows


def _renamed(shaped: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``_shape``'s result with the value fields named ``names``, in order."""
    return {**shaped, "values": dict(zip(names, shaped["values"].values(), strict=True))}
