"""``kappa kafka``: idempotent stop, clear errors when a broker cannot start, and the
three-node cluster."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.kafka_client import offset_ranges
from app.settings import KappaSettings
from tests.support.worker import kappa_cli


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KAPPA_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    return {**env, "KAPPA_HOME": str(tmp_path / "home"), **extra}


def test_stop_and_status_when_nothing_runs(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_KAFKA_PORT="39092")
    done = kappa_cli(env, "kafka", "stop")
    assert done.returncode == 0
    assert "no local kafka was running" in done.stdout
    assert kappa_cli(env, "kafka", "stop").returncode == 0  # idempotent
    done = kappa_cli(env, "kafka", "status")
    assert done.returncode == 1
    assert "stopped" in done.stdout


def test_missing_java_says_what_to_install(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_KAFKA_PORT="39092", PATH=str(tmp_path))
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 1
    assert "`java` is not on PATH" in done.stderr
    assert "KAPPA_BOOTSTRAP_SERVERS" in done.stderr


@pytest.mark.broker
def test_port_in_use_is_reported(kafka_settings: KappaSettings, tmp_path: Path) -> None:
    if kafka_settings.uses_external_cluster:
        pytest.fail("this test needs the project's own broker (unset KAPPA_BOOTSTRAP_SERVERS)")
    env = _env(
        tmp_path,
        KAPPA_KAFKA_PORT=str(kafka_settings.kafka_port),
        KAPPA_CACHE_DIR=str(kafka_settings.cache_dir.resolve()),
    )
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 1
    assert f"port {kafka_settings.kafka_port}" in done.stderr
    assert "KAPPA_KAFKA_PORT" in done.stderr


def test_external_cluster_starts_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_BOOTSTRAP_SERVERS="kafka.example:9092")
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 0
    assert "using the existing cluster at kafka.example:9092" in done.stdout


@pytest.mark.broker
def test_a_three_node_cluster_replicates_and_stops_cleanly(
    kafka_settings: KappaSettings, tmp_path: Path
) -> None:
    """The failover tests' cluster: three KRaft nodes, replication factor 3, min ISR 2."""
    if kafka_settings.uses_external_cluster:
        pytest.fail("this test needs the project's own broker tooling")
    env = _env(
        tmp_path,
        KAPPA_KAFKA_NODES="3",
        KAPPA_KAFKA_PORT="28292",
        KAPPA_CACHE_DIR=str(kafka_settings.cache_dir.resolve()),
    )
    started = kappa_cli(env, "kafka", "start")
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = "127.0.0.1:28292,127.0.0.1:28294,127.0.0.1:28296"
        assert f"bootstrap servers: {bootstrap}" in started.stdout
        assert kappa_cli(env, "kafka", "status").stdout.count("running") == 3

        async def replicas() -> list[int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic("replicated", 2, 3)])
                for _ in range(60):  # metadata reaches every broker a little later
                    (topic,) = await admin.describe_topics(["replicated"])
                    if len(topic["partitions"]) == 2:
                        break
                    await asyncio.sleep(0.5)
                return sorted(len(p["replicas"]) for p in topic["partitions"])
            finally:
                await admin.close()

        assert asyncio.run(replicas()) == [3, 3]
        assert asyncio.run(_partitions_seen_by_a_client(bootstrap, "replicated", 2)) == {0, 1}
    finally:
        stopped = kappa_cli(env, "kafka", "stop", timeout=120)
    assert "stopped 3 kafka node(s)" in stopped.stdout
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert left == []


async def _partitions_seen_by_a_client(bootstrap: str, topic: str, count: int) -> set[int]:
    """The partitions a fresh client finds; any node may answer, and a node learns of a
    new topic from the controller a moment after the creating node does."""
    for _ in range(60):
        ranges = await offset_ranges({"bootstrap_servers": bootstrap}, [topic])
        if len(ranges.get(topic, {})) == count:
            break
        await asyncio.sleep(0.5)
    return set(ranges.get(topic, {}))
