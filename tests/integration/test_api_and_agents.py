"""The query API's answers and errors, and a custom agent fed by both paths."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker


def test_api_pages_keys_and_rejects_bad_parameters(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, _ = running_worker(make_spec(), partitions=2)
    events = list(generate(DatasetShape(events=500, keys=37, seed=2)))
    topic = f"test-input-{unique}"
    produced_at = time.time()
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    pages, after = [], ""
    while True:
        status, body = worker.get(f"/api/keys?limit=10&after={after}")
        assert status == 200
        pages.append(body["keys"])
        if body["next"] is None:
            break
        after = body["next"]
    assert [len(p) for p in pages] == [10, 10, 10, 7]
    assert [k for p in pages for k in p] == sorted({e["customer_id"] for e in events})

    key = events[0]["customer_id"]
    bad = {
        "/api/keys?limit=0": 400,
        "/api/keys?limit=ten": 400,
        f"/api/keys/{key}/windows?window=2h": 400,
        f"/api/keys/{key}/windows?from=last-tuesday": 400,
        f"/api/keys/{key}/windows?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z": 400,
        f"/api/keys/{key}/windows?from=0&to=9000000000000": 400,  # too many windows
        "/api/keys/nobody": 404,
        "/api/keys/nobody/windows": 404,
    }
    for path, code in bad.items():
        status, body = worker.get(path)
        assert status == code, (path, body)
        assert isinstance(body["error"], str), path
        assert body["error"], path

    status, body = worker.get(f"/api/keys/{key}/windows?window=1h&from=2024-01-01&to=2024-01-02")
    assert status == 200
    assert all(w["window"] == "1h" for w in body["windows"])
    assert sum(w["count"] for w in body["windows"]) == sum(
        1 for e in events if e["customer_id"] == key and "2024-01-01" <= e["ts"] < "2024-01-02"
    )
    # Status answers request after request over the same Kafka clients.
    for _ in range(3):
        status, body = worker.get("/api/status")
        assert status == 200
        assert body["partitions_owned"] == [0, 1]
        assert set(body["watermarks"]) == {"0", "1"}
        assert sum(offset + 1 for offset in body["processed_offsets"].values()) == len(events)
        assert body["counts"]["dead_letters"] == 0
    batches = body["batches"]
    assert produced_at <= batches["first_started_at"] <= batches["last_stored_at"] <= time.time()
    # The hot path's stage counters (the benchmark's breakdown). Storing waited for
    # Kafka's acknowledgements, and that wait is part of storing.
    stages = body["stages"]
    assert set(stages) == {"fetch_s", "decode_s", "aggregate_s", "store_s", "ack_wait_s"}
    assert all(isinstance(seconds, float) and seconds >= 0 for seconds in stages.values())
    assert stages["store_s"] > 0
    assert stages["ack_wait_s"] <= stages["store_s"]


def test_custom_agent_gets_replayed_and_live_events(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, env = running_worker(
        make_spec(), partitions=2, KAPPA_AGENTS="agents.example_big_orders"
    )
    history = list(generate(DatasetShape(events=800, keys=10, seed=4)))
    live = list(generate(DatasetShape(events=400, keys=10, seed=5)))
    path = tmp_path / "history.csv"
    write(iter(history), path)
    run_kappa(env, "replay", str(path))
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, live, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    big = Counter(
        e["customer_id"] for e in history + live if e["amount"] is not None and e["amount"] >= 1000
    )
    assert big
    for key, count in big.items():

        def counted(key: str = key, count: int = count) -> bool:
            got: int = worker.get(f"/api/big-orders/{key}")[1]["big_orders"]
            return got == count

        worker.wait_until(counted, 30, f"big orders of {key}")
