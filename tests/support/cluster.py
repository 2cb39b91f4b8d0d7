"""A Kafka cluster of a test's own, run with the project's tooling, that the test may
stop, restart and kill brokers of without touching the suite's broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.broker.local import LocalKafka
from app.settings import KappaSettings


@contextmanager
def own_cluster(
    kafka_settings: KappaSettings, tmp_path: Path, nodes: int, port: int
) -> Iterator[tuple[LocalKafka, str]]:
    """The cluster and its bootstrap servers; stopped on exit.

    Choose ``port`` below Linux's ephemeral range (32768 and up): while a broker is
    down, any outgoing connection on the machine could otherwise be given its port, and
    the broker could not start again."""
    if kafka_settings.uses_external_cluster:
        pytest.fail("this test needs the project's own broker tooling")
    cluster = LocalKafka(
        KappaSettings(
            home=tmp_path / "cluster",
            kafka_port=port,
            kafka_nodes=nodes,
            cache_dir=kafka_settings.cache_dir.resolve(),
        )
    )
    cluster.start()
    try:
        yield cluster, ",".join(f"127.0.0.1:{cluster.port(n)}" for n in range(nodes))
    finally:
        cluster.stop(timeout=60)
