"""The batch anchor: DuckDB computing the same aggregation over the same file, on one
thread.

From reading the CSV.gz file to holding every result as a DuckDB table (nothing is
fetched into Python): per key the count and the sum, min, max and mean of both values,
and the same per window of the workload (per session for a sessions workload: each
key's events in time order, a new session where the previous event is more than the gap
before, with ``lag()``). It is the query a batch engine would run, with
DuckDB's own aggregates: its ``sum`` is a plain running sum, not the correctly rounded
sum kappa keeps (the test suite's oracle adds ``math.fsum`` for that), so the anchor
measures a batch engine's speed, not its exactness. The generated events are never
late, so every event counts in its windows, as in kappa.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from bench.workloads import Workload

VALUES = ("amount", "quantity")
METRICS = ", ".join(
    ["count(*) AS n"]
    + [f"{f}({v}) AS {v}_{f}" for v in VALUES for f in ("sum", "min", "max", "avg")]
)


def _reader(data: Path) -> str:
    """DuckDB's reader of the four fields read: the CSV's, or the wide records' JSON
    Lines (whose other 16 fields it skips)."""
    columns = (
        "{'customer_id': 'VARCHAR', 'ts': 'VARCHAR', 'amount': 'DOUBLE', 'quantity': 'DOUBLE'}"
    )
    if ".jsonl" in data.suffixes:
        return f"read_json(?, format = 'newline_delimited', columns = {columns})"
    return f"read_csv(?, header = true, auto_detect = false, columns = {columns})"


def load_events(con: duckdb.DuckDBPyConnection, data: Path) -> None:
    """Table ``events``: k, t (epoch ms) and the values, read from ``data``."""
    con.execute("SET TimeZone = 'UTC'")  # a naive time is UTC, as kappa reads it
    con.execute(
        f"""
        CREATE TABLE events AS
        SELECT customer_id AS k, epoch_ms(CAST(ts AS TIMESTAMPTZ)) AS t, amount, quantity
        FROM {_reader(data)}
        """,
        [str(data)],
    )


def compute(con: duckdb.DuckDBPyConnection, data: Path, workload: Workload) -> None:
    """Tables ``totals`` (k and the metrics) and ``windows`` (k, start, the metrics)."""
    load_events(con, data)
    con.execute(f"CREATE TABLE totals AS SELECT k, {METRICS} FROM events GROUP BY k")
    if workload.sessions:
        con.execute(
            f"""
            CREATE TABLE windows AS
            SELECT k, min(t) AS start, {METRICS}
            FROM ({numbered_sessions(workload.gap_ms)}) GROUP BY k, session_no
            """
        )
        return
    # An event at t is in the windows starting at its step's start and at the
    # size / step - 1 steps before it (the workloads' sizes are whole steps).
    step = workload.step_ms
    con.execute(
        f"""
        CREATE TABLE windows AS
        SELECT k, start, {METRICS}
        FROM (SELECT k, t - t % {step} - i * {step} AS start, amount, quantity
              FROM events, range({workload.size_ms // step}) AS r(i))
        GROUP BY k, start
        """
    )


def numbered_sessions(gap_ms: int) -> str:
    """The ``events`` table's rows, each with its key's session number (``session_no``):
    the running count, in time order, of the key's events more than ``gap_ms`` after
    the event before (the first event starts one)."""
    return f"""
        SELECT *, sum(starts) OVER (PARTITION BY k ORDER BY t) AS session_no
        -- RANGE (the default frame): events at the same time share a number
        FROM (SELECT *, coalesce(t - lag(t) OVER (PARTITION BY k ORDER BY t) > {gap_ms},
                                 true)::INTEGER AS starts
              FROM events)"""


def duckdb_seconds(data: Path, workload: Workload) -> float:
    """DuckDB's single-thread time from reading ``data`` to holding every result."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        began = time.perf_counter()
        compute(con, data, workload)
        return time.perf_counter() - began
    finally:
        con.close()
