"""Workers ride out broker failures: a restart of the only broker, and the loss of one
broker of three (replication factor 3, min ISR 2) in the middle of live traffic.

Each test runs its own cluster with the project's tooling, so that it can stop and kill
brokers without touching the suite's broker.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.cluster import own_cluster
from tests.support.invariant import assert_equals_batch
from tests.support.kafka import produce_events
from tests.support.times import DAY, HOUR
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker
WINDOWS = [("1h", HOUR, HOUR)]


def _rows(tmp_path: Path, seed: int) -> tuple[Path, list[dict[str, Any]]]:
    rows = list(generate(DatasetShape(events=8_000, keys=100, span_ms=3 * DAY, seed=seed)))
    path = tmp_path / "all.csv"
    write(iter(rows), path)
    return path, rows


def test_a_worker_rides_out_a_restart_of_the_broker(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    path, rows = _rows(tmp_path, seed=41)
    topic = f"test-input-{unique}"
    with own_cluster(kafka_settings, tmp_path, nodes=1, port=39392) as (cluster, bootstrap):
        env = kappa_env(make_spec(), partitions=2, KAPPA_BOOTSTRAP_SERVERS=bootstrap)
        worker = start_worker(env)
        worker.wait_ready(partitions=2)
        asyncio.run(produce_events(bootstrap, topic, rows[:4_000], "customer_id"))
        cluster.stop()
        time.sleep(5)  # the worker's clients see the broker gone and start retrying
        cluster.start()
        asyncio.run(produce_events(bootstrap, topic, rows[4_000:], "customer_id"))
        assert_equals_batch([worker], bootstrap, unique, path, rows, WINDOWS)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker has exited"


def test_losing_one_broker_of_three_mid_stream_loses_nothing(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    path, rows = _rows(tmp_path, seed=42)
    topic = f"test-input-{unique}"
    with own_cluster(kafka_settings, tmp_path, nodes=3, port=39492) as (cluster, bootstrap):
        env = kappa_env(
            make_spec(),
            partitions=2,
            KAPPA_BOOTSTRAP_SERVERS=bootstrap,
            KAPPA_REPLICATION_FACTOR="3",
        )
        worker = start_worker(env)
        worker.wait_ready(partitions=2)

        def live() -> None:  # about 2k events/s, as a live source would send them
            for start in range(0, len(rows), 200):
                asyncio.run(
                    produce_events(bootstrap, topic, rows[start : start + 200], "customer_id")
                )
                time.sleep(0.1)

        producer = threading.Thread(target=live)
        producer.start()
        time.sleep(1.5)
        cluster.kill_nodes([1], signal.SIGKILL)
        producer.join(timeout=300)
        assert not producer.is_alive()
        assert_equals_batch([worker], bootstrap, unique, path, rows, WINDOWS)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker has exited"
