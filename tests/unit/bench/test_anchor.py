"""The benchmark's DuckDB anchor computes the same aggregation as the test suite's oracle.

The anchor uses DuckDB's own ``sum`` (a running sum), the oracle the correctly rounded
one, so sums and means are compared to a relative 1e-12; counts, minima and maxima
exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.datagen import DatasetShape, generate, write
from bench.anchor import VALUES, compute
from bench.wide import generate_wide
from bench.workloads import parse_workloads
from tests.support.oracle import batch_results, session_results


def _close(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, rel=1e-12)


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    """An anchor row's metrics (after its key columns), shaped as the oracle's."""
    n, *rest = row
    values = {}
    for i, name in enumerate(VALUES):
        total, low, high, mean = rest[4 * i : 4 * i + 4]
        values[name] = {
            "sum": _close(total),
            "min": low,
            "max": high,
            "mean": _close(mean),
        }
    return {"count": n, "values": values}


@pytest.mark.parametrize("text", ["keys7", "hopping7", "hopping1m", "wide7", "sessions3"])
def test_the_anchor_computes_the_oracles_totals_and_windows(tmp_path: Path, text: str) -> None:
    (workload,) = parse_workloads(text, 600)
    shape = DatasetShape(events=workload.events, keys=workload.keys, seed=3)
    path = tmp_path / "events.csv.gz"
    write(generate(shape), path)  # the oracle reads the narrow CSV of the same orders
    data = path
    if workload.wide:  # the anchor reads their wide records, times naive
        data = tmp_path / "events.jsonl.gz"
        write(generate_wide(shape), data)

    con = duckdb.connect()
    compute(con, data, workload)
    totals = {row[0]: _shape(row[1:]) for row in con.execute("SELECT * FROM totals").fetchall()}
    windows = {
        (row[0], row[1]): _shape(row[2:]) for row in con.execute("SELECT * FROM windows").fetchall()
    }

    window = ("w", workload.size_ms, workload.step_ms)
    expected_totals, expected_windows = batch_results(path, [] if workload.sessions else [window])
    if workload.sessions:
        expected_windows = session_results(path, "w", workload.gap_ms)
    assert expected_totals == totals
    assert expected_windows == {
        (key, "w", start): result for (key, start), result in windows.items()
    }
