"""A real ``kappa worker`` counts events produced with aiokafka into RocksDB tables."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.worker import WorkerProcess

pytestmark = __import__("pytest").mark.broker


def test_worker_counts_events_exactly(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, _ = running_worker(make_spec(), partitions=2)

    rng = random.Random(7)
    base = 1_700_000_000_000
    events = [
        {
            "customer_id": f"c{rng.randrange(20)}",
            "ts": base + i * 1000,
            "amount": 1.0,
            "quantity": 1,
        }
        for i in range(500)
    ]
    asyncio.run(
        produce_events(kafka_settings.bootstrap, f"test-input-{unique}", events, "customer_id")
    )
    expected = Counter(event["customer_id"] for event in events)

    def all_counted() -> bool:
        return all(
            (got := worker.get(f"/api/keys/{key}"))[0] == 200 and got[1]["totals"]["count"] == count
            for key, count in expected.items()
        )

    worker.wait_until(all_counted, 60, "every key's count")
    for key, count in expected.items():
        status, body = worker.get(f"/api/keys/{key}")
        assert status == 200
        assert body["totals"]["count"] == count
    status, body = worker.get("/api/keys/no-such-customer")
    assert status == 404
    assert "error" in body
