"""An input topic whose partition count changes under a running version.

The version keeps its state in the input's count at its creation. Grown under a
running worker, the input stops the worker with the cause and the fix, before any
record of a new partition is applied, stored or dead-lettered (no loop of failed
batches); a restart of the same version is refused with the same message. A new version
on the same topic would take its 6 partitions but find the records produced before the
growth on their keys' partitions for 2, so the fix named is a new version on a new topic.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.kafka import grow_topic, produce_events, read_all
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

# More than one metadata refresh (10 s), a rebalance and a clean stop on a busy machine.
STOP_TIMEOUT_S = 180


def test_an_input_grown_under_a_running_version_stops_it_with_the_cause_and_the_fix(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    bootstrap = kafka_settings.bootstrap
    topic = f"test-input-{unique}"
    env = kappa_env(make_spec(), partitions=2)
    worker = start_worker(env)
    worker.wait_ready(partitions=2)
    events = list(generate(DatasetShape(events=600, keys=30, seed=18)))
    asyncio.run(produce_events(bootstrap, topic, events, "customer_id"))
    wait_processed([worker], bootstrap, topic)
    expected = Counter(str(e["customer_id"]) for e in events)  # a plain fold
    for key, count in expected.items():
        status, body = worker.get(f"/api/keys/{key}")
        assert (status, body["totals"]["count"]) == (200, count), body

    asyncio.run(grow_topic(bootstrap, topic, 6))
    assert worker.proc is not None
    code = worker.proc.wait(timeout=STOP_TIMEOUT_S)
    log = worker.log_path.read_text(errors="replace")
    assert code != 0, log[-3000:]
    assert f"the input topic {topic} has grown to 6 partitions" in log
    assert "keeps its state in 2" in log
    assert "bump `version` and set `input_topic`" in log
    assert "Unrecognized partition" not in log
    assert "a batch failed" not in log
    assert asyncio.run(read_all(bootstrap, f"kappa.t{unique}.v1.dead-letter")) == []

    refused = kappa_cli(env, "worker", timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "has grown to 6 partitions" in refused.stderr
    assert "what to do: the records produced before the growth" in refused.stderr
    assert "create a new input topic with 6 partitions" in refused.stderr
