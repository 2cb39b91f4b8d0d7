"""``kappa replay --order-by-time`` turns a shuffled file into an in-order stream."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.oracle import batch_results
from tests.support.results import api_results, wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker
HOUR = 3_600_000


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_order_by_time_sorts_a_shuffled_file_in_bounded_runs(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    events = list(generate(DatasetShape(events=3_000, keys=40, seed=6)))
    random.Random(1).shuffle(events)  # hours out of order: most would be late as is
    path = tmp_path / "shuffled.csv"
    write(iter(events), path)

    env = kappa_env(make_spec(windows='{ size = "1h" }', lateness="10m"), partitions=2)
    worker = start_worker(env)
    worker.wait_ready(partitions=2)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "replay",
            str(path),
            "--order-by-time",
            "--sort-chunk-rows",
            "500",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")

    want_totals, want_windows = batch_results(path, [("1h", HOUR, HOUR)])
    times = [_ms(e["ts"]) for e in events]
    totals, windows, _ = api_results(
        [worker], set(want_totals), min(times) - HOUR, max(times) + HOUR
    )
    assert totals == want_totals
    assert windows == want_windows
    assert worker.get("/api/status")[1]["counts"]["late_events"] == 0


def test_parquet_history_with_timestamp_columns_replays_like_csv(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    events = list(generate(DatasetShape(events=2_000, keys=30, seed=9)))
    csv_path = tmp_path / "events.csv"
    write(iter(events), csv_path)
    table = pa.table(
        {
            "customer_id": [e["customer_id"] for e in events],
            "ts": pa.array(
                [datetime.fromisoformat(e["ts"]) for e in events], type=pa.timestamp("ms", tz="UTC")
            ),
            "amount": pa.array([e["amount"] for e in events], type=pa.float64()),
            "quantity": pa.array([e["quantity"] for e in events], type=pa.int32()),
        }
    )
    parquet_path = tmp_path / "events.parquet"
    pq.write_table(table, parquet_path, row_group_size=500)

    env = kappa_env(make_spec(windows='{ size = "1h" }'), partitions=1)
    worker = start_worker(env)
    worker.wait_ready(partitions=1)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(parquet_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2,000 events produced" in done.stdout
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")

    want_totals, want_windows = batch_results(csv_path, [("1h", HOUR, HOUR)])
    times = [_ms(e["ts"]) for e in events]
    totals, windows, _ = api_results(
        [worker], set(want_totals), min(times) - HOUR, max(times) + HOUR
    )
    assert totals == want_totals
    assert windows == want_windows
