"""The batch anchor: DuckDB computing the same aggregation over the same file, on one
thread.

It times the test suite's oracle (tests.support.oracle), the SQL that the equivalence
tests check kappa's results against: read the CSV.gz file, then per key the count and
the sum, min, max and mean of both values, and the workload's windows, each result
kept as a DuckDB table (nothing is fetched into Python).
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from bench.workloads import Workload
from tests.support import oracle


def duckdb_seconds(data: Path, workload: Workload) -> float:
    """DuckDB's single-thread time from reading ``data`` to holding every result."""
    con = duckdb.connect()
    try:
        con.execute("SET threads = 1")
        window = (workload.name, workload.size_ms, workload.step_ms)
        began = time.perf_counter()
        oracle.compute(con, data, [window])
        return time.perf_counter() - began
    finally:
        con.close()
