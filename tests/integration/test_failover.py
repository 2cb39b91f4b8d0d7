"""Scale-out under failure: a killed worker's partitions move to the survivor, and a
lost state dir is rebuilt from the changelogs, with its progress in status."""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.invariant import assert_equals_batch
from tests.support.kafka import produce_events
from tests.support.times import DAY, HOUR
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker
WINDOWS = [("1h", HOUR, HOUR)]


def _history(
    tmp_path: Path, events: int, keys: int, seed: int
) -> tuple[Path, list[dict[str, Any]]]:
    rows = list(generate(DatasetShape(events=events, keys=keys, span_ms=5 * DAY, seed=seed)))
    path = tmp_path / "history.csv"
    write(iter(rows), path)
    return path, rows


def _events_processed(workers: list[WorkerProcess]) -> int:
    return sum(int(w.get("/api/status")[1]["counts"]["events_since_start"]) for w in workers)


def test_a_killed_workers_partitions_move_to_the_survivor_with_standbys(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    path, events = _history(tmp_path, 20_000, 200, seed=31)
    spec = make_spec(windows='{ size = "1h" }', retention="30d")
    fast = {"KAPPA_STANDBY_REPLICAS": "1", "KAPPA_SESSION_TIMEOUT": "8"}
    a = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="a", **fast))
    a.wait_ready(partitions=4)
    b = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="b", **fast))
    a.wait_until(lambda: len(a.get("/api/status")[1]["partitions_owned"]) == 2, 90, "a rebalance")
    b.wait_ready(partitions=2)
    run_kappa(a.env, "replay", str(path))
    a.wait_until(lambda: _events_processed([a, b]) >= len(events) // 2, 120, "half the events")

    assert b.proc is not None
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(timeout=30)
    # The group notices within the session timeout; a takes b's partitions over from
    # its standby replicas and goes on from b's last checkpoint.
    a.wait_ready(partitions=4, timeout=90)
    assert_equals_batch([a], kafka_settings.bootstrap, unique, path, events, WINDOWS)


def test_a_deleted_state_dir_is_rebuilt_from_the_changelogs_with_progress_in_status(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    # Many keys, so that the changelogs hold enough records to watch their recovery.
    path, events = _history(tmp_path, 30_000, 30_000, seed=32)
    env = kappa_env(make_spec(windows='{ size = "1h" }', retention="30d"), partitions=2)
    first = start_worker(env)
    first.wait_ready(partitions=2)
    run_kappa(env, "replay", str(path))
    first.wait_until(lambda: _events_processed([first]) == len(events), 180, "every event")
    assert first.stop() == 0
    state = Path(env["KAPPA_HOME"]) / "state"
    assert any(state.rglob("*.sst")) or any(state.rglob("*.log")), "no RocksDB files"
    shutil.rmtree(state)

    second = start_worker(env)
    seen: list[dict[str, Any]] = []

    def recovered() -> bool:
        status, body = second.get("/api/status")
        if status != 200:
            return False
        seen.append(body["recovery"])
        return len(body["partitions_owned"]) == 2 and not body["recovery"]["in_progress"]

    second.wait_until(recovered, 180, "the state to be rebuilt")
    in_progress = [r for r in seen if r["in_progress"]]
    assert in_progress, f"status never showed the recovery: {seen[:3]}"
    assert all(r["remaining_records"] > 0 for r in in_progress)
    assert seen[-1]["remaining_records"] == 0
    assert_equals_batch([second], kafka_settings.bootstrap, unique, path, events, WINDOWS)


async def _delete_changelogs_and_truncate(bootstrap: str, unique: str, truncate_to: int) -> None:
    """The changelogs are lost; with ``truncate_to``, retention has also removed the
    input's first records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        changelogs = [t for t in await admin.list_topics() if unique in t and "changelog" in t]
        assert len(changelogs) == 3, changelogs
        await admin.delete_topics(changelogs)
        for _ in range(60):  # deletion completes in the background
            if not set(changelogs) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
        if truncate_to:
            topic = f"test-input-{unique}"
            (described,) = await admin.describe_topics([topic])
            await admin.delete_records(
                {
                    TopicPartition(topic, p["partition"]): RecordsToDelete(truncate_to)
                    for p in described["partitions"]
                },
                timeout_ms=30_000,
            )
    finally:
        await admin.close()


@pytest.mark.parametrize("input_truncated", [False, True], ids=["log complete", "log truncated"])
def test_lost_changelogs_are_recomputed_from_the_log_or_refused_loudly(
    input_truncated: bool,
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    rows = list(generate(DatasetShape(events=6_000, keys=100, span_ms=5 * DAY, seed=33)))
    history, live = rows[:5_000], rows[5_000:]
    env = kappa_env(make_spec(windows='{ size = "1h" }', retention="30d"), partitions=2)
    first = start_worker(env)
    first.wait_ready(partitions=2)
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, history, "customer_id"))
    first.wait_until(lambda: _events_processed([first]) == len(history), 120, "the history")
    assert first.stop() == 0
    shutil.rmtree(Path(env["KAPPA_HOME"]) / "state")
    asyncio.run(
        _delete_changelogs_and_truncate(kafka_settings.bootstrap, unique, 100 * input_truncated)
    )

    second = start_worker(env)
    second.wait_ready(partitions=2)
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, live, "customer_id"))
    if input_truncated:
        assert second.proc is not None
        assert second.proc.wait(timeout=120) != 0
        log = second.log_path.read_text()
        assert "the tables hold no state for it" in log
        assert "what to do: restore the changelog topics" in log
        return
    everything = tmp_path / "all.csv"
    write(iter(rows), everything)
    assert_equals_batch([second], kafka_settings.bootstrap, unique, everything, rows, WINDOWS)
    _, body = second.get("/api/status")
    assert body["counts"]["gap_records_read_back_since_start"] == len(history)
