"""Producers kappa does not control, and the check that what the workers hold equals
DuckDB's computation over the same events, for the repartition hop's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from agents.partitions import default_partition
from app.datagen import write
from tests.support.kafka import read_all
from tests.support.oracle import batch_results
from tests.support.results import (
    api_results,
    key_differences,
    topic_finals,
    wait_processed,
    window_differences,
)
from tests.support.times import DAY, iso, ms
from tests.support.worker import WorkerProcess

# (event index, event) -> (record key or None, explicit partition or None)
Placement = Callable[[int, dict[str, Any]], tuple[bytes | None, int | None]]
CLOSER_AFTER_MS = 40 * DAY


async def produce_placed(
    bootstrap: str,
    topic: str,
    events: Iterable[dict[str, Any]],
    place: Placement,
    **options: Any,
) -> int:
    """Produce ``events`` keyed and partitioned as ``place`` says; the producer sees a
    grown topic within a second (its metadata is refreshed that often). ``options`` are
    more of AIOKafkaProducer's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=10,
        acks="all",
        metadata_max_age_ms=1000,
        **options,
    )
    await producer.start()
    sent = 0
    try:
        for index, event in enumerate(events):
            key, partition = place(index, event)
            await producer.send(topic, key=key, value=orjson.dumps(event), partition=partition)
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def closers(events: list[dict[str, Any]], partitions: int) -> list[dict[str, Any]]:
    """One event per state partition, far after every other event, so that each
    partition's watermark passes every window of ``events`` and closes it."""
    newest = max(ms(e["ts"]) for e in events)
    found: dict[int, str] = {}
    index = 0
    while len(found) < partitions:
        key = f"closer-{index}"
        found.setdefault(default_partition(key.encode(), partitions), key)
        index += 1
    at = iso(newest + CLOSER_AFTER_MS)
    return [
        {"customer_id": key, "ts": at, "amount": 1.0, "quantity": 1.0}
        for _, key in sorted(found.items())
    ]


def assert_hop_equals_batch(
    workers: list[WorkerProcess],
    bootstrap: str,
    unique: str,
    events: list[dict[str, Any]],
    path: Path,
    windows: list[tuple[str, int, int]],
    version: int = 1,
) -> None:
    """Every key's totals, every window and every final result of ``version`` equal
    DuckDB's over ``events`` (written to ``path``), and nothing went to its dead-letter
    topic."""
    topic = f"test-input-{unique}"
    wait_processed(workers, bootstrap, topic)
    write(iter(events), path)
    want_totals, want_windows = batch_results(path, windows)
    times = [ms(e["ts"]) for e in events]
    totals, got, final = api_results(
        workers, set(want_totals), min(times) - 2 * DAY, max(times) + 2 * DAY
    )
    assert totals == want_totals, key_differences(totals, want_totals)
    assert got.keys() == want_windows.keys(), window_differences(got, want_windows)
    assert got == want_windows
    finals = topic_finals(bootstrap, f"kappa.t{unique}.v{version}.window-results")
    assert finals, "no window closed"
    assert finals == {k: v for k, v in got.items() if final[k]}
    assert asyncio.run(read_all(bootstrap, f"kappa.t{unique}.v{version}.dead-letter")) == []
