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
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate, write
from tests.support.cluster import own_cluster
from tests.support.harness import Harness
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


def _worker(kappa: Harness, bootstrap: str, **extra: str) -> WorkerProcess:
    """A worker on the test's own cluster, owning both partitions."""
    worker = kappa.start_worker(
        kappa.env(kappa.make_spec(), partitions=2, KAPPA_BOOTSTRAP_SERVERS=bootstrap, **extra)
    )
    worker.wait_ready(partitions=2)
    return worker


def test_a_worker_rides_out_a_restart_of_the_broker(kappa: Harness) -> None:
    path, rows = _rows(kappa.tmp_path, seed=41)
    topic = kappa.topic
    with own_cluster(kappa.settings, kappa.tmp_path, nodes=1, port=28392) as (cluster, bootstrap):
        worker = _worker(kappa, bootstrap)
        asyncio.run(produce_events(bootstrap, topic, rows[:4_000], "customer_id"))
        cluster.stop()
        time.sleep(5)  # the worker's clients see the broker gone and start retrying
        cluster.start()
        asyncio.run(produce_events(bootstrap, topic, rows[4_000:], "customer_id"))
        assert_equals_batch([worker], bootstrap, kappa.unique, path, rows, WINDOWS)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker has exited"


def test_losing_one_broker_of_three_mid_stream_loses_nothing(kappa: Harness) -> None:
    path, rows = _rows(kappa.tmp_path, seed=42)
    topic = kappa.topic
    with own_cluster(kappa.settings, kappa.tmp_path, nodes=3, port=28492) as (cluster, bootstrap):
        worker = _worker(kappa, bootstrap, KAPPA_REPLICATION_FACTOR="3")

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
        assert_equals_batch([worker], bootstrap, kappa.unique, path, rows, WINDOWS)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker has exited"
