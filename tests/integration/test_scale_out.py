"""Two workers share a pipeline's partitions, and either answers for any key."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker


def test_partitions_are_shared_and_queries_are_routed_to_the_owner(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    spec = make_spec()
    a = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="a"))
    a.wait_ready(partitions=4)
    b = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="b"))

    def shared() -> bool:
        owned = [set(w.get("/api/status")[1]["partitions_owned"]) for w in (a, b)]
        return all(owned) and owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == {0, 1, 2, 3}

    a.wait_until(shared, 90, "the second worker to take over some partitions")
    events = list(generate(DatasetShape(events=1_000, keys=40, seed=12)))
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([a, b], kafka_settings.bootstrap, topic)

    expected = Counter(e["customer_id"] for e in events)
    for worker in (a, b):
        for key, count in expected.items():
            status, body = worker.get(f"/api/keys/{key}")
            assert status == 200, body
            assert body["totals"]["count"] == count
            status, body = worker.get(f"/api/keys/{key}/windows?window=1h")
            assert status == 200, body
            assert sum(w["count"] for w in body["windows"]) == count
        status, body = worker.get("/api/keys/nobody-at-all")
        assert status == 404, body

    _, status_a = a.get("/api/status")
    owners = status_a["owners"]
    assert set(owners) == {a.base, b.base}
    assert sorted(p for ps in owners.values() for p in ps) == [0, 1, 2, 3]
