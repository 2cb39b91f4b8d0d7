"""One window instance closed for 80,000 keys on one partition, through a real broker.

The closed instance lists its keys for expiry. Kept in one record, the list of these
keys is about 1.5 MB, more than Kafka accepts in a record (1 MB by default); and a
closing in steps rewrote it at every step. The worker then closed about 100 windows a
second and, once the list passed 1 MB, failed every store. Now the list is stored in
chunks (``tables.partition_state.BUCKET_CHUNK_BYTES``): every key's final result
reaches the output topic equal to DuckDB's, and the retention later expires them all.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import write
from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.oracle import batch_results
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.times import HOUR, iso
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
KEYS = 80_000


def one_event_per_key() -> list[dict[str, Any]]:
    """Every key's one event, times rising through the first hour; amounts in cents,
    quantities some NULL."""
    rng = random.Random(23)
    return [
        {
            "customer_id": f"customer-{i:07d}",
            "ts": iso(START_MS + i * (HOUR - 1) // KEYS),
            "amount": rng.randrange(1, 300_000) / 100,
            "quantity": None if i % 7 == 0 else rng.randrange(1, 9),
        }
        for i in range(KEYS)
    ]


def test_a_window_closed_for_80k_keys_on_one_partition_is_published_and_expires(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    spec = make_spec(windows='{ size = "1h" }', lateness="1m", retention="2h")
    worker, _ = running_worker(spec, partitions=1)
    topic = f"test-input-{unique}"
    events = one_event_per_key()
    # One more event, at 1h30: the watermark passes the hour, which closes for every key.
    at = iso(START_MS + 90 * 60_000)
    events.append({"customer_id": "closer", "ts": at, "amount": 1.25, "quantity": 1})
    path = tmp_path / "events.csv"
    write(iter(events), path)
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    _, want_windows = batch_results(path, [("1h", HOUR, HOUR)])
    closed = {w: r for w, r in want_windows.items() if w[2] == START_MS}
    assert len(closed) == KEYS
    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    assert finals == closed

    # At 4h the retention (2h after the hour's end) has passed: every result expires.
    later = {"customer_id": "closer", "ts": iso(START_MS + 4 * HOUR), "amount": 2.5}
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, [later], "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)
    sample = {f"customer-{i:07d}" for i in range(0, KEYS, KEYS // 40)} | {"customer-0079999"}
    _, windows, _ = api_results([worker], sample, START_MS - HOUR, START_MS + 5 * HOUR)
    assert windows == {}
