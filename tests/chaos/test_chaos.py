"""The chaos suite: seeded, randomized kills during a replay followed by live traffic,
then the invariant, asserted against DuckDB.

Two workers share four partitions. While the history is replayed and then live events
arrive, a seeded schedule ``kill -9``s one worker at a time, sometimes wiping its state
dir too, and restarts it; in the long mode it also kills and restarts a broker of a
three-broker cluster. Every wait is bounded.

    short (part of `make test`): KAPPA_CHAOS_RUNS=1, 3 kills per run
    long, on demand:             make chaos   (KAPPA_CHAOS_RUNS=10, 6 kills, broker kills)

KAPPA_CHAOS_SEED picks the first seed; a failing run names its seed, so it can be rerun.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.broker.local import LocalKafka
from app.datagen import DatasetShape, generate, write
from tests.support.cluster import own_cluster
from tests.support.harness import Harness
from tests.support.invariant import assert_equals_batch
from tests.support.kafka import produce_events
from tests.support.times import DAY, HOUR
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker
WINDOWS = [("1h", HOUR, HOUR)]
RUNS = int(os.environ.get("KAPPA_CHAOS_RUNS", "1"))
FIRST_SEED = int(os.environ.get("KAPPA_CHAOS_SEED", "1"))
LONG = os.environ.get("KAPPA_CHAOS_LONG", "") == "1"
KILLS = 6 if LONG else 3


@contextmanager
def _traffic(
    env: dict[str, str], history: Path, live: list[dict[str, Any]]
) -> Iterator[threading.Thread]:
    """Replays ``history`` with `kappa replay`, then sends ``live`` at about 300 events/s,
    so that live traffic goes on while the kills happen."""
    failures: list[str] = []

    def run() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "replay", str(history)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            failures.append(done.stdout + done.stderr)
            return
        bootstrap = env["KAPPA_BOOTSTRAP_SERVERS"]
        topic = env["KAPPA_TEST_TOPIC"]
        for start in range(0, len(live), 200):
            asyncio.run(produce_events(bootstrap, topic, live[start : start + 200], "customer_id"))
            time.sleep(0.6)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(timeout=600)
    assert not failures, failures[0]


def _answers(worker: WorkerProcess) -> Callable[[], bool]:
    return lambda: worker.get("/api/status")[0] == 200


def _wipe_state(worker: WorkerProcess) -> None:
    """The worker's own state dir (``<home>/state/<pipeline>/<worker name>``)."""
    name = worker.env["KAPPA_WORKER_NAME"]
    for directory in (Path(worker.env["KAPPA_HOME"]) / "state").glob(f"*/{name}"):
        shutil.rmtree(directory)


@pytest.mark.parametrize("seed", range(FIRST_SEED, FIRST_SEED + RUNS))
def test_chaos(
    seed: int,
    kappa: Harness,
) -> None:
    rng = random.Random(seed)
    rows = list(generate(DatasetShape(events=16_000, keys=150, span_ms=4 * DAY, seed=seed)))
    cut = 12_000
    everything, history = kappa.tmp_path / "all.csv", kappa.tmp_path / "history.csv"
    write(iter(rows), everything)
    write(iter(rows[:cut]), history)

    with ExitStack() as stack:
        cluster: LocalKafka | None = None
        bootstrap = kappa.settings.bootstrap
        extra = {"KAPPA_SESSION_TIMEOUT": "8", "KAPPA_STANDBY_REPLICAS": str(rng.randint(0, 1))}
        if LONG:
            cluster, bootstrap = stack.enter_context(
                own_cluster(kappa.settings, kappa.tmp_path, nodes=3, port=28592)
            )
            extra |= {"KAPPA_BOOTSTRAP_SERVERS": bootstrap, "KAPPA_REPLICATION_FACTOR": "3"}
        spec = kappa.make_spec(windows='{ size = "1h" }', retention="30d")
        workers = [
            kappa.start_worker(kappa.env(spec, partitions=4, KAPPA_WORKER_NAME=name, **extra))
            for name in ("a", "b")
        ]
        for worker in workers:
            worker.wait_until(_answers(worker), 90, "the API")
        env = {**workers[0].env, "KAPPA_TEST_TOPIC": kappa.topic}
        schedule: list[str] = []
        with _traffic(env, history, rows[cut:]) as traffic:
            for _ in range(KILLS):
                time.sleep(rng.uniform(1.0, 5.0))
                if LONG and cluster is not None and rng.random() < 0.3:
                    node = rng.randrange(3)
                    schedule.append(f"broker {node}")
                    cluster.kill_nodes([node], signal.SIGKILL)
                    time.sleep(rng.uniform(1.0, 4.0))
                    cluster.start()
                    continue
                victim = rng.choice(workers)
                wipe = rng.random() < 0.3
                schedule.append(
                    f"worker {victim.env['KAPPA_WORKER_NAME']}{' + state' if wipe else ''}"
                )
                victim.kill()
                if wipe:
                    _wipe_state(victim)
                time.sleep(rng.uniform(0.5, 4.0))
                victim.start()
            traffic.join(timeout=600)
        print(f"seed {seed}: {', '.join(schedule)}")

        def all_owned() -> bool:
            owned = [set(w.get("/api/status")[1]["partitions_owned"]) for w in workers]
            return owned[0] | owned[1] == {0, 1, 2, 3} and not owned[0] & owned[1]

        workers[0].wait_until(all_owned, 120, f"the partitions to settle (seed {seed})")
        assert_equals_batch(workers, bootstrap, kappa.unique, everything, rows, WINDOWS)
