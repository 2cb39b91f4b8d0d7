"""Any producer's partitioning: records not on their key's partition reach it through
the version's repartition hop, and the results equal DuckDB's.

An input of 3 partitions (the version's N) gets its events from producers kappa does not
control: with a null record key (the producer spreads them), with the record key set to
another field than the pipeline's key, and with a custom partitioner (round-robin by
explicit partition, so about a third of the records are on their key's partition and
take the direct lane, the rest the hop). Nothing is dead-lettered; every key's totals,
every window and every final result equal DuckDB SQL over the same events.

The lateness exceeds the events' span: the hop interleaves records of different input
partitions in any order, so lateness would depend on that order. One closer event per
state partition, produced once everything else is applied, closes every window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.datasets import HOURLY
from tests.support.hop import Placement, assert_hop_equals_batch, closers, produce_placed
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

PARTITIONS = 3
SHAPE = DatasetShape(events=6_000, keys=120, span_ms=2 * 86_400_000, seed=181)

PLACEMENTS: dict[str, Placement] = {
    "null key": lambda _i, _e: (None, None),
    "key of another field": lambda _i, e: (str(e["ts"]).encode(), None),
    "round-robin partitioner": lambda i, _e: (None, i % PARTITIONS),
}


@pytest.mark.parametrize("producer", sorted(PLACEMENTS))
def test_any_producers_partitioning_equals_batch_computation(
    producer: str,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    bootstrap = kafka_settings.bootstrap
    topic = f"test-input-{unique}"
    worker, _ = running_worker(make_spec(lateness="10d", retention="400d"), partitions=PARTITIONS)
    events: list[dict[str, Any]] = list(generate(SHAPE))
    place = PLACEMENTS[producer]
    asyncio.run(produce_placed(bootstrap, topic, events, place))
    wait_processed([worker], bootstrap, topic)
    last = closers(events, PARTITIONS)
    asyncio.run(produce_placed(bootstrap, topic, last, place))
    assert_hop_equals_batch(
        [worker], bootstrap, unique, events + last, tmp_path / "events.csv", HOURLY
    )
    _, body = worker.get("/api/status")
    assert body["hop"]["records_sent_since_start"] > 0, body["hop"]
    assert body["counts"]["dead_letters_since_start"] == 0
