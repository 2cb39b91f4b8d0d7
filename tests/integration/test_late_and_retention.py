"""Late events are counted and kept, never dropped; retention runs on event time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.datagen import generate, write
from app.settings import KappaSettings
from tests.support.datasets import OLD_HISTORY, ON_TIME
from tests.support.kafka import produce_events, read_all
from tests.support.oracle import batch_results
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.times import DAY, HOUR, iso, ms
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker


def _deliver(
    mode: str,
    path: Path,
    events: list[dict[str, Any]],
    env: dict[str, str],
    bootstrap: str,
    topic: str,
) -> None:
    if mode == "replay":
        run_kappa(env, "replay", str(path))
    else:
        asyncio.run(produce_events(bootstrap, topic, events, "customer_id"))


@pytest.mark.parametrize("mode", ["replay", "live"])
def test_late_events_are_counted_kept_and_kept_out_of_windows(
    mode: str,
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    on_time = list(generate(ON_TIME))
    newest = max(ms(e["ts"]) for e in on_time)
    # Three hours behind the newest event is far beyond the 10m lateness.
    late: list[dict[str, Any]] = [
        {
            "customer_id": f"c{i:05d}",
            "ts": iso(newest - 3 * HOUR - i * 1000),
            "amount": 0.1,  # not a binary fraction: the totals round
            "quantity": 1,
        }
        for i in range(25)
    ]
    events = on_time + late
    path = tmp_path / "with-late.csv"
    write(iter(events), path)

    spec = make_spec(windows='{ size = "1h" }', lateness="10m", retention="30d")
    worker, env = running_worker(spec, partitions=2)
    topic = f"test-input-{unique}"
    _deliver(mode, path, events, env, kafka_settings.bootstrap, topic)
    wait_processed([worker], kafka_settings.bootstrap, topic)

    late_keys = frozenset((e["customer_id"], ms(e["ts"])) for e in late)
    want_totals, want_windows = batch_results(path, [("1h", HOUR, HOUR)], late=late_keys)
    totals, windows, _ = api_results([worker], set(want_totals), newest - 10 * DAY, newest + DAY)
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
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    """Events from 2015: Faust's wall-clock windows would expire them all at once."""
    events = list(generate(OLD_HISTORY))
    path = tmp_path / "old.jsonl.gz"
    write(iter(events), path)
    csv_path = tmp_path / "old.csv"  # the DuckDB oracle reads the same events as CSV
    write(iter(events), csv_path)

    retention = 2 * DAY
    worker, env = running_worker(
        make_spec(windows='{ size = "1h" }', lateness="5m", retention="2d")
    )
    topic = f"test-input-{unique}"
    _deliver("replay", path, events, env, kafka_settings.bootstrap, topic)
    wait_processed([worker], kafka_settings.bootstrap, topic)

    watermark = max(ms(e["ts"]) for e in events) - 5 * 60_000
    want_totals, want_windows = batch_results(csv_path, [("1h", HOUR, HOUR)])
    retained = {k: v for k, v in want_windows.items() if k[2] + HOUR + retention > watermark}
    totals, windows, _ = api_results(
        [worker], set(want_totals), ms(events[0]["ts"]) - DAY, watermark + DAY
    )
    assert totals == want_totals
    assert windows == retained
    assert len(retained) < len(want_windows), "retention should have expired early windows"
    assert min(k[2] for k in windows) < int(datetime(2015, 3, 31, tzinfo=UTC).timestamp() * 1000)
    # Expired windows' final results live on in the output topic.
    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    assert finals == {k: v for k, v in want_windows.items() if k[2] + HOUR <= watermark}
