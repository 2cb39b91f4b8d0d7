"""``kappa replay --order-by-time`` turns a shuffled file into an in-order stream."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from app.datagen import generate, write
from app.settings import KappaSettings
from tests.support.datasets import PARQUET, TO_SHUFFLE
from tests.support.oracle import batch_results
from tests.support.results import api_results, wait_processed
from tests.support.times import HOUR, ms
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker


def _assert_matches_batch(
    worker: WorkerProcess, csv_path: Path, events: list[dict[str, Any]]
) -> None:
    """The worker's totals and 1h windows equal DuckDB's over the same events."""
    want_totals, want_windows = batch_results(csv_path, [("1h", HOUR, HOUR)])
    times = [ms(e["ts"]) for e in events]
    totals, windows, _ = api_results(
        [worker], set(want_totals), min(times) - HOUR, max(times) + HOUR
    )
    assert totals == want_totals
    assert windows == want_windows


def test_order_by_time_sorts_a_shuffled_file_in_bounded_runs(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    events = list(generate(TO_SHUFFLE))
    random.Random(1).shuffle(events)  # hours out of order: most would be late as is
    path = tmp_path / "shuffled.csv"
    write(iter(events), path)

    worker, env = running_worker(make_spec(windows='{ size = "1h" }', lateness="10m"), partitions=2)
    run_kappa(env, "replay", str(path), "--order-by-time", "--sort-chunk-rows", "500")
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")

    _assert_matches_batch(worker, path, events)
    assert worker.get("/api/status")[1]["counts"]["late_events"] == 0


def test_parquet_history_with_timestamp_columns_replays_like_csv(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = list(generate(PARQUET))
    csv_path = tmp_path / "events.csv"
    write(iter(events), csv_path)
    table = pa.table(
        {
            "customer_id": [e["customer_id"] for e in events],
            "ts": pa.array(
                [datetime.fromisoformat(e["ts"]) for e in events], type=pa.timestamp("ms", tz="UTC")
            ),
            "amount": pa.array([e["amount"] for e in events], type=pa.float64()),
            "quantity": pa.array([e["quantity"] for e in events], type=pa.float64()),
        }
    )
    parquet_path = tmp_path / "events.parquet"
    pq.write_table(table, parquet_path, row_group_size=500)

    worker, env = running_worker(make_spec(windows='{ size = "1h" }'))
    assert "2,000 events produced" in run_kappa(env, "replay", str(parquet_path))
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")

    _assert_matches_batch(worker, csv_path, events)
