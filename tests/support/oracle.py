"""The independent batch computation: DuckDB SQL over the same history file.

It shares no code with kappa. Event times are parsed by DuckDB, windows are assigned
with integer arithmetic in SQL, and mean is sum / count of non-null values (kappa
documents the same definition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

VALUES = ("amount", "quantity")
HOUR = 3_600_000


def _load(con: duckdb.DuckDBPyConnection, path: Path, late: frozenset[tuple[str, int]]) -> None:
    con.execute(
        """
        CREATE TABLE raw AS
        SELECT customer_id AS k,
               epoch_ms(CAST(ts AS TIMESTAMPTZ)) AS t,
               amount, quantity
        FROM read_csv(?, header = true, auto_detect = false,
                      columns = {'customer_id': 'VARCHAR', 'ts': 'VARCHAR',
                                 'amount': 'DOUBLE', 'quantity': 'DOUBLE'})
        """,
        [str(path)],
    )
    con.execute("CREATE TABLE late (k VARCHAR, t BIGINT)")
    if late:
        con.executemany("INSERT INTO late VALUES (?, ?)", sorted(late))


def _metrics(prefix: str = "") -> str:
    parts = ["count(*) AS n"]
    for v in VALUES:
        parts += [
            f"sum({prefix}{v}) AS {v}_sum",
            f"min({prefix}{v}) AS {v}_min",
            f"max({prefix}{v}) AS {v}_max",
            f"sum({prefix}{v}) / count({prefix}{v}) AS {v}_mean",
        ]
    return ", ".join(parts)


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    n, *rest = row
    values = {}
    for i, v in enumerate(VALUES):
        s, lo, hi, mean = rest[4 * i : 4 * i + 4]
        values[v] = {"sum": s, "min": lo, "max": hi, "mean": mean}
    return {"count": n, "values": values}


def batch_results(
    path: Path, windows: list[tuple[str, int, int]], late: frozenset[tuple[str, int]] = frozenset()
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str, int], dict[str, Any]]]:
    """Totals per key, and every window (key, window name, start) -> result.

    ``windows`` are (name, size_ms, step_ms). ``late`` holds (key, event ms) of events
    the lateness policy keeps out of windows; they still count in the totals.
    """
    con = duckdb.connect()
    _load(con, path, late)
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
