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
from tests.support.kafka import (
    create_topics,
    grow_topic,
    partition_counts,
    produce_events,
    read_all,
)
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

# More than one metadata refresh (10 s), a rebalance and a clean stop on a busy machine.
STOP_TIMEOUT_S = 180


def _produce_and_count(
    worker: WorkerProcess, bootstrap: str, topic: str, shape: DatasetShape
) -> None:
    """Produce ``shape``'s events keyed by their key; the worker counts each key's."""
    events = list(generate(shape))
    asyncio.run(produce_events(bootstrap, topic, events, "customer_id"))
    wait_processed([worker], bootstrap, topic)
    expected = Counter(str(e["customer_id"]) for e in events)  # a plain fold
    for key, count in expected.items():
        status, body = worker.get(f"/api/keys/{key}")
        assert (status, body["totals"]["count"]) == (200, count), body


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
    _produce_and_count(worker, bootstrap, topic, DatasetShape(events=600, keys=30, seed=18))

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


def test_a_versions_own_partition_count_sizes_its_topics_and_never_changes(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    bootstrap = kafka_settings.bootstrap
    topic = f"test-input-{unique}"
    prefix = f"kappa.t{unique}.v1"
    # KAPPA_PARTITIONS (1) is the default for a new input; the spec's count wins.
    worker = start_worker(kappa_env(make_spec(extra="partitions = 3\n"), partitions=1))
    worker.wait_ready(partitions=3)
    counts = asyncio.run(partition_counts(bootstrap))
    for own in (topic, f"{prefix}.window-results", f"{prefix}.late", f"{prefix}.dead-letter"):
        assert counts[own] == 3, (own, counts)
    changelogs = {
        name: n
        for name, n in counts.items()
        if name.startswith(f"{prefix}-") and name.endswith("-changelog")
    }
    assert changelogs, counts
    assert set(changelogs.values()) == {3}, changelogs
    _produce_and_count(worker, bootstrap, topic, DatasetShape(events=400, keys=25, seed=19))
    worker.stop()

    refused = kappa_cli(kappa_env(make_spec(extra="partitions = 5\n")), "worker", timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"asks for partitions = 5, but {prefix} was created with 3" in refused.stderr
    assert "what to do: to use 5 partitions, create a new version" in refused.stderr


def test_a_new_version_asking_another_count_than_its_inputs_is_refused(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    topic = f"test-input-{unique}"
    asyncio.run(create_topics(kafka_settings.bootstrap, [topic], 2))
    refused = kappa_cli(kappa_env(make_spec(extra="partitions = 4\n"), partitions=2), "worker")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"asks for partitions = 4, but the input topic {topic} has 2" in refused.stderr
    assert f"kappa.t{unique}.v1.window-results" not in asyncio.run(
        partition_counts(kafka_settings.bootstrap)
    )
