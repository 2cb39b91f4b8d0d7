"""Late events are counted and kept, never dropped; retention runs on event time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.kafka import produce_events, read_all
from tests.support.oracle import batch_results
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker
HOUR = 3_600_000


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _deliver(
    mode: str,
    path: Path,
    events: list[dict[str, Any]],
    env: dict[str, str],
    bootstrap: str,
    topic: str,
) -> None:
    if mode == "replay":
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "replay", str(path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        asyncio.run(produce_events(bootstrap, topic, events, "customer_id"))


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_late_events_are_counted_kept_and_kept_out_of_windows(
    mode: str,
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    on_time = list(
        generate(
            DatasetShape(
                events=3_000, keys=50, span_ms=2 * 86_400_000, disorder_ms=5 * 60_000, seed=5
            )
        )
    )
    newest = max(_ms(e["ts"]) for e in on_time)
    # Three hours behind the newest event is far beyond the 10m lateness.
    late = [
        {
            "customer_id": f"c{i:05d}",
            "ts": _iso(newest - 3 * HOUR - i * 1000),
            "amount": 2.5,
            "quantity": 1,
        }
        for i in range(25)
    ]
    events = on_time + late
    path = tmp_path / "with-late.csv"
    write(iter(events), path)

    spec = make_spec(windows='{ size = "1h" }', lateness="10m", retention="30d")
    env = kappa_env(spec, partitions=2)
    worker = start_worker(env)
    worker.wait_ready(partitions=2)
    topic = f"test-input-{unique}"
    _deliver(mode, path, events, env, kafka_settings.bootstrap, topic)
    wait_processed([worker], kafka_settings.bootstrap, topic)

    late_keys = frozenset((e["customer_id"], _ms(e["ts"])) for e in late)
    want_totals, want_windows = batch_results(path, [("1h", HOUR, HOUR)], late=late_keys)
    totals, windows, _ = api_results(
        [worker], set(want_totals), newest - 10 * 86_400_000, newest + 86_400_000
    )
    assert totals == want_totals  # late events count in the totals...
    assert windows == want_windows  # ...and in no window

    kept = asyncio.run(read_all(kafka_settings.bootstrap, f"kappa.t{unique}.v1.late"))
    kept_events = {
        (body["key"], body["event_ms"]) for body in (orjson.loads(record.value) for record in kept)
    }
    assert kept_events == late_keys
    assert all(orjson.loads(r.value)["reason"] == "behind the watermark" for r in kept)
    _, body = worker.get("/api/status")
    assert body["counts"]["late_events"] == len(late)


def test_old_history_keeps_its_windows_and_retention_runs_on_event_time(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    """Events from 2015: Faust's wall-clock windows would expire them all at once."""
    shape = DatasetShape(
        events=4_000,
        keys=20,
        start=datetime(2015, 3, 1, tzinfo=UTC),
        span_ms=10 * 86_400_000,
        disorder_ms=60_000,
        seed=3,
    )
    events = list(generate(shape))
    path = tmp_path / "old.jsonl.gz"
    write(iter(events), path)
    csv_path = tmp_path / "old.csv"  # the DuckDB oracle reads the same events as CSV
    write(iter(events), csv_path)

    retention = 2 * 86_400_000
    spec = make_spec(windows='{ size = "1h" }', lateness="5m", retention="2d")
    env = kappa_env(spec, partitions=1)
    worker = start_worker(env)
    worker.wait_ready(partitions=1)
    topic = f"test-input-{unique}"
    _deliver("replay", path, events, env, kafka_settings.bootstrap, topic)
    wait_processed([worker], kafka_settings.bootstrap, topic)

    watermark = max(_ms(e["ts"]) for e in events) - 5 * 60_000
    want_totals, want_windows = batch_results(csv_path, [("1h", HOUR, HOUR)])
    retained = {k: v for k, v in want_windows.items() if k[2] + HOUR + retention > watermark}
    totals, windows, _ = api_results(
        [worker], set(want_totals), _ms(events[0]["ts"]) - 86_400_000, watermark + 86_400_000
    )
    assert totals == want_totals
    assert windows == retained
    assert len(retained) < len(want_windows), "retention should have expired early windows"
    assert min(k[2] for k in windows) < int(datetime(2015, 3, 31, tzinfo=UTC).timestamp() * 1000)
    # Expired windows' final results live on in the output topic.
    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    assert finals == {k: v for k, v in want_windows.items() if k[2] + HOUR <= watermark}
