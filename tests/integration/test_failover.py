"""Scale-out under failure: a killed worker's partitions move to the survivor, and a
lost state dir is rebuilt from the changelogs, with its progress in status."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from app.datagen import DatasetShape, generate, write
from tests.support.harness import Harness
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


def test_a_killed_workers_partitions_move_to_the_survivor_with_standbys(kappa: Harness) -> None:
    path, events = _history(kappa.tmp_path, 20_000, 200, seed=31)
    spec = kappa.make_spec(windows='{ size = "1h" }', retention="30d")
    fast = {"KAPPA_STANDBY_REPLICAS": "1", "KAPPA_SESSION_TIMEOUT": "8"}
    a = kappa.start_worker(kappa.env(spec, partitions=4, KAPPA_WORKER_NAME="a", **fast))
    a.wait_ready(partitions=4)
    b = kappa.start_worker(kappa.env(spec, partitions=4, KAPPA_WORKER_NAME="b", **fast))
    a.wait_until(lambda: len(a.get("/api/status")[1]["partitions_owned"]) == 2, 90, "a rebalance")
    b.wait_ready(partitions=2)
    run_kappa(a.env, "replay", str(path))
    a.wait_until(lambda: _events_processed([a, b]) >= len(events) // 2, 120, "half the events")

    b.kill()
    # The group notices within the session timeout; a takes b's partitions over from
    # its standby replicas and goes on from b's last checkpoint.
    a.wait_ready(partitions=4, timeout=90)
    assert_equals_batch([a], kappa.settings.bootstrap, kappa.unique, path, events, WINDOWS)


def test_a_deleted_state_dir_is_rebuilt_from_the_changelogs_with_progress_in_status(
    kappa: Harness,
) -> None:
    # Many keys, so that the changelogs hold enough records to watch their recovery.
    path, events = _history(kappa.tmp_path, 30_000, 30_000, seed=32)
    env = kappa.env(kappa.make_spec(windows='{ size = "1h" }', retention="30d"), partitions=2)
    first = kappa.start_worker(env)
    first.wait_ready(partitions=2)
    run_kappa(env, "replay", str(path))
    first.wait_until(lambda: _events_processed([first]) == len(events), 180, "every event")
    assert first.stop() == 0
    state = Path(env["KAPPA_HOME"]) / "state"
    assert any(state.rglob("*.sst")) or any(state.rglob("*.log")), "no RocksDB files"
    shutil.rmtree(state)

    second = kappa.start_worker(env)
    seen: list[dict[str, Any]] = []

    def recovered() -> bool:
        status, body = second.get("/api/status")
        if status != 200:
            return False
        seen.append(body["recovery"])
        return (
            len(body["partitions_owned"]) == 2
            and not body["rebalancing"]
            and not body["recovery"]["in_progress"]
        )

    second.wait_until(recovered, 180, "the state to be rebuilt")
    in_progress = [r for r in seen if r["in_progress"]]
    assert in_progress, f"status never showed the recovery: {seen[:3]}"
    # The counts are 0 for a moment, until Faust has read the changelogs' end offsets.
    assert any(r["remaining_records"] > 0 for r in in_progress)
    assert seen[-1]["remaining_records"] == 0
    assert_equals_batch([second], kappa.settings.bootstrap, kappa.unique, path, events, WINDOWS)


async def _delete_changelogs_and_truncate(kappa: Harness, truncate_to: int) -> None:
    """The changelogs are lost; with ``truncate_to``, retention has also removed the
    input's first records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kappa.settings.bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
        changelogs = [t for t in topics if kappa.unique in t and "changelog" in t]
        assert len(changelogs) == 4, changelogs  # keys, windows, closed, meta
        await admin.delete_topics(changelogs)
        for _ in range(60):  # deletion completes in the background
            if not set(changelogs) & set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
        if truncate_to:
            topic = kappa.topic
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
    kappa: Harness,
) -> None:
    rows = list(generate(DatasetShape(events=6_000, keys=100, span_ms=5 * DAY, seed=33)))
    history, live = rows[:5_000], rows[5_000:]
    env = kappa.env(kappa.make_spec(windows='{ size = "1h" }', retention="30d"), partitions=2)
    first = kappa.start_worker(env)
    first.wait_ready(partitions=2)
    topic = kappa.topic
    asyncio.run(produce_events(kappa.settings.bootstrap, topic, history, "customer_id"))
    first.wait_until(lambda: _events_processed([first]) == len(history), 120, "the history")
    assert first.stop() == 0
    shutil.rmtree(Path(env["KAPPA_HOME"]) / "state")
    asyncio.run(_delete_changelogs_and_truncate(kappa, truncate_to=100 * input_truncated))

    second = kappa.start_worker(env)
    second.wait_ready(partitions=2)
    asyncio.run(produce_events(kappa.settings.bootstrap, topic, live, "customer_id"))
    if input_truncated:
        assert second.proc is not None
        assert second.proc.wait(timeout=120) != 0
        log = second.log_path.read_text()
        assert "the tables hold no state for it" in log
        assert "what to do: restore the changelog topics" in log
        return
    everything = kappa.tmp_path / "all.csv"
    write(iter(rows), everything)
    assert_equals_batch([second], kappa.settings.bootstrap, kappa.unique, everything, rows, WINDOWS)
    _, body = second.get("/api/status")
    assert body["counts"]["gap_records_read_back_since_start"] == len(history)
