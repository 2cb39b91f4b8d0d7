"""An input topic whose partition count changes under a running version.

The version keeps its state in N partitions, the input's count at its creation. Grown
under load (2 -> 6 while a producer writes with Kafka's default partitioner), the input
is followed: from the rebalance that the growth brings, every input record takes the
repartition hop to its key's state partition; a second worker started after the growth
takes its share of both the input and the state; a worker killed (SIGKILL) or frozen
(SIGSTOP past its session timeout, then SIGCONT), or the broker restarted, during the
growth loses and double counts nothing. Nothing is dead-lettered, no batch fails, and
every key's totals, every window and every final result equal DuckDB SQL over the same
events.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.cluster import own_cluster
from tests.support.datasets import HOURLY
from tests.support.hop import assert_hop_equals_batch, closers, produce_placed
from tests.support.kafka import create_topics, grow_topic, partition_counts, produce_events
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

GROWTH = DatasetShape(events=12_000, keys=150, span_ms=2 * 86_400_000, seed=182)
# A metadata refresh, a rebalance and a second worker's start on a busy machine.
GROWN_TIMEOUT_S = 180
# The restart test's own broker: below Linux's ephemeral range, as own_cluster asks, and
# no other test's port.
RESTART_PORT = 23092


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


def _input_owned(worker: WorkerProcess) -> list[int]:
    status, body = worker.get("/api/status")
    return list(body["partitions_owned"]) if status == 200 and not body["rebalancing"] else []


class Load:
    """GROWTH's events produced keyed by their key from a thread; ``reached(fraction)``
    waits until that share of them is being produced. The producer is idempotent and
    waits up to two minutes for a broker (its sends are retried across a restart, and
    none is written twice)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.events: list[dict[str, Any]] = list(generate(GROWTH))
        self._marks = {
            len(self.events) // 3: threading.Event(),
            2 * len(self.events) // 3: threading.Event(),
        }
        self._thread = threading.Thread(
            target=lambda: asyncio.run(
                produce_placed(
                    bootstrap,
                    topic,
                    self.events,
                    self._keyed,
                    enable_idempotence=True,
                    request_timeout_ms=120_000,
                )
            )
        )
        self._thread.start()

    def _keyed(self, index: int, event: dict[str, Any]) -> tuple[bytes | None, int | None]:
        if index in self._marks:
            self._marks[index].set()
        return str(event["customer_id"]).encode(), None

    def reached(self, thirds: int) -> None:
        assert self._marks[thirds * len(self.events) // 3].wait(timeout=120)

    def finish(self) -> None:
        self._thread.join(timeout=300)
        assert not self._thread.is_alive()


def _closed_and_equal(
    workers: list[WorkerProcess], bootstrap: str, unique: str, load: Load, tmp_path: Path
) -> None:
    """Once everything is applied, a closer per state partition, then DuckDB's answer."""
    topic = f"test-input-{unique}"
    wait_processed(workers, bootstrap, topic)
    last = closers(load.events, 2)
    asyncio.run(produce_events(bootstrap, topic, last, "customer_id"))
    assert_hop_equals_batch(
        workers, bootstrap, unique, load.events + last, tmp_path / "events.csv", HOURLY
    )
    for worker in workers:
        assert _failures_but_outages(worker.log_path.read_text(errors="replace")) == []


# A batch that fails because the broker is unreachable is dropped and read again, by
# design (a broker restart's outage); any other cause is a bug.
_OUTAGE_ERRORS = (
    "aiokafka.errors.KafkaConnectionError",
    "aiokafka.errors.NodeNotReadyError",
    "aiokafka.errors.KafkaTimeoutError",
    "aiokafka.errors.RequestTimedOutError",
)


def _failures_but_outages(log: str) -> list[str]:
    """The last line (the error) of each "a batch failed" traceback not caused by an
    unreachable broker."""
    found = []
    for failure in log.split("a batch failed")[1:]:
        traceback = failure.split("\n[20")[0].rstrip().splitlines()
        error = traceback[-1] if traceback else ""
        if not error.startswith(_OUTAGE_ERRORS):
            found.append(error)
    return found


def test_an_input_grown_under_load_is_followed_with_a_second_worker(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
    tmp_path: Path,
) -> None:
    bootstrap = kafka_settings.bootstrap
    topic = f"test-input-{unique}"
    spec = make_spec(lateness="10d", retention="400d")
    first = start_worker(kappa_env(spec, partitions=2, KAPPA_WORKER_NAME="a"))
    first.wait_ready(partitions=2)
    load = Load(bootstrap, topic)
    load.reached(1)
    asyncio.run(grow_topic(bootstrap, topic, 6))  # while the producer goes on
    first.wait_until(lambda: len(_input_owned(first)) == 6, GROWN_TIMEOUT_S, "the growth")
    second = start_worker(kappa_env(spec, partitions=2, KAPPA_WORKER_NAME="b"))
    second.wait_until(lambda: _input_owned(second) != [], GROWN_TIMEOUT_S, "its share")
    load.finish()
    assert asyncio.run(partition_counts(bootstrap))[topic] == 6

    workers = [first, second]
    _closed_and_equal(workers, bootstrap, unique, load, tmp_path)
    for worker in workers:
        assert worker.proc is not None
        assert worker.proc.poll() is None
        assert "Unrecognized partition" not in worker.log_path.read_text(errors="replace")
    _, body = second.get("/api/status")
    assert body["hop"]["partitions_owned"], body["hop"]  # it owns state partitions too


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


def _two_workers_in_growth(
    bootstrap: str,
    topic: str,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    after_growth: Callable[[], None] = lambda: None,
) -> tuple[WorkerProcess, WorkerProcess, Load]:
    """Two workers sharing the input (an 8 s session timeout) and the load, two thirds
    produced, with the input grown 2 -> 6 at one third and ``after_growth`` done at once."""
    spec = make_spec(lateness="10d", retention="400d")
    fast = {"KAPPA_SESSION_TIMEOUT": "8"}
    first = start_worker(kappa_env(spec, partitions=2, KAPPA_WORKER_NAME="a", **fast))
    first.wait_ready(partitions=2)
    second = start_worker(kappa_env(spec, partitions=2, KAPPA_WORKER_NAME="b", **fast))
    second.wait_until(lambda: _input_owned(second) != [], GROWN_TIMEOUT_S, "its share")
    load = Load(bootstrap, topic)
    load.reached(1)
    asyncio.run(grow_topic(bootstrap, topic, 6))
    after_growth()
    load.reached(2)
    return first, second, load


def test_a_worker_killed_during_growth_loses_and_double_counts_nothing(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
    tmp_path: Path,
) -> None:
    """Two workers; the input grows 2 -> 6 under load, and one worker is killed with
    SIGKILL while the other takes the growth: its hop records sent but not committed are
    sent again by the survivor, and fenced."""
    bootstrap = kafka_settings.bootstrap
    first, second, load = _two_workers_in_growth(
        bootstrap, f"test-input-{unique}", make_spec, kappa_env, start_worker
    )
    second.kill()
    first.wait_until(lambda: len(_input_owned(first)) == 6, GROWN_TIMEOUT_S, "the takeover")
    load.finish()
    _closed_and_equal([first], bootstrap, unique, load, tmp_path)


def test_a_zombie_during_growth_loses_and_double_counts_nothing(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
    tmp_path: Path,
) -> None:
    """Two workers; the input grows 2 -> 6 under load, and one worker is frozen with
    SIGSTOP past its session timeout while the other takes over every partition, then
    resumed with SIGCONT: what the zombie still sends from its old assignment (hop
    records, state, outputs) is fenced, its commits are refused, and it takes its share
    again."""
    bootstrap = kafka_settings.bootstrap
    first, second, load = _two_workers_in_growth(
        bootstrap, f"test-input-{unique}", make_spec, kappa_env, start_worker
    )
    with second.frozen():
        first.wait_until(lambda: len(_input_owned(first)) == 6, GROWN_TIMEOUT_S, "the takeover")
    second.wait_until(lambda: _input_owned(second) != [], GROWN_TIMEOUT_S, "its share again")
    load.finish()
    _closed_and_equal([first, second], bootstrap, unique, load, tmp_path)


def _broker_gone(worker: WorkerProcess) -> bool:
    """The worker's own queries to Kafka go unanswered."""
    status, body = worker.get("/api/status")
    return status == 200 and body["kafka_answered"] is False


def test_a_broker_restart_during_growth_loses_and_double_counts_nothing(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
    tmp_path: Path,
) -> None:
    """Two workers on a broker of the test's own; the input grows 2 -> 6 under load and
    the broker is stopped at once, before the workers have followed the growth, then
    started again on the same data while the producer and the workers keep running:
    they follow the growth after the restart, and nothing is lost, counted twice or
    dead-lettered."""
    with own_cluster(kafka_settings, tmp_path, nodes=1, port=RESTART_PORT) as (
        cluster,
        bootstrap,
    ):
        workers: list[WorkerProcess] = []

        def start(env: dict[str, str]) -> WorkerProcess:
            workers.append(start_worker(env))
            return workers[-1]

        def restart() -> None:
            cluster.stop()
            for worker in workers:
                worker.wait_until(
                    functools.partial(_broker_gone, worker), 60, "the worker to find it gone"
                )
            cluster.start()

        first, _, load = _two_workers_in_growth(
            bootstrap,
            f"test-input-{unique}",
            make_spec,
            functools.partial(kappa_env, KAPPA_BOOTSTRAP_SERVERS=bootstrap),
            start,
            after_growth=restart,
        )

        def shared() -> bool:
            owned = [_input_owned(worker) for worker in workers]
            return [] not in owned and sum(map(len, owned)) == 6

        first.wait_until(shared, GROWN_TIMEOUT_S, "the two workers to share the grown input")
        load.finish()
        assert asyncio.run(partition_counts(bootstrap))[f"test-input-{unique}"] == 6
        _closed_and_equal(workers, bootstrap, unique, load, tmp_path)
        for worker in workers:
            assert worker.proc is not None
            assert worker.proc.poll() is None, "a worker has exited"
            assert worker.stop() == 0  # cleanly, while its broker is up
