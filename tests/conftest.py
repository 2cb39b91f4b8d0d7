"""Shared fixtures: a real Kafka broker for the session, unique names per test.

The broker is the project's own (``kappa kafka start`` under KAPPA_HOME), or the
cluster in KAPPA_BOOTSTRAP_SERVERS. If neither comes up the tests that need it fail,
they never skip.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.ports import free_port
from app.settings import KappaSettings
from tests.support.harness import Harness
from tests.support.postgres import SinkProcess
from tests.support.worker import WorkerProcess, worker_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[KappaSettings]:
    settings = KappaSettings()
    if settings.uses_external_cluster:
        from app.broker.local import _broker_count

        brokers = asyncio.run(_broker_count(settings.bootstrap))
        assert brokers > 0, f"no broker answers at {settings.bootstrap}"
        yield settings
        return
    from app.broker.local import LocalKafka

    broker = LocalKafka(settings)
    broker.start()
    try:
        yield settings
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


SPEC_TEMPLATE = """
name = "{name}"
version = {version}
input_topic = "{topic}"
key = "customer_id"
time_field = "ts"
values = ["amount", "quantity"]
metrics = ["count", "sum", "min", "max", "mean"]
windows = [{windows}]
lateness = "{lateness}"
retention = "{retention}"
"""


@pytest.fixture
def make_spec(tmp_path: Path, unique: str) -> Callable[..., Path]:
    def make(
        windows: str = '{ size = "1h" }',
        lateness: str = "10m",
        retention: str = "30d",
        name: str | None = None,
        extra: str = "",
        version: int = 1,
    ) -> Path:
        path = tmp_path / f"pipeline-v{version}.toml"
        path.write_text(
            SPEC_TEMPLATE.format(
                name=name or f"t{unique}",
                version=version,
                topic=f"test-input-{unique}",
                windows=windows,
                lateness=lateness,
                retention=retention,
            )
            + extra
        )
        return path

    return make


@pytest.fixture
def kappa_env(kafka_settings: KappaSettings, tmp_path: Path) -> Callable[..., dict[str, str]]:
    """Environment for a kappa subprocess: the test's broker, its own home and port."""

    def make(spec: Path, partitions: int = 1, **extra: str) -> dict[str, str]:
        return worker_env(
            {
                "KAPPA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap,
                "KAPPA_HOME": str(tmp_path / "home"),
                "KAPPA_PIPELINE": str(spec),
                "KAPPA_PARTITIONS": str(partitions),
                "KAPPA_WEB_PORT": str(free_port()),
                "KAPPA_LOG_LEVEL": "info",
                "PYTHONPATH": str(ROOT),
            },
            **extra,
        )

    return make


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def running_worker(
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> Callable[..., tuple[WorkerProcess, dict[str, str]]]:
    """A worker for ``spec`` that owns all its partitions, and its environment."""

    def start(
        spec: Path, partitions: int = 1, **extra: str
    ) -> tuple[WorkerProcess, dict[str, str]]:
        env = kappa_env(spec, partitions=partitions, **extra)
        worker = start_worker(env)
        worker.wait_ready(partitions=partitions)
        return worker, env

    return start


@pytest.fixture
def kappa(
    kafka_settings: KappaSettings,
    tmp_path: Path,
    unique: str,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
) -> Harness:
    return Harness(kafka_settings, tmp_path, unique, make_spec, kappa_env, start_worker)


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], SinkProcess]]:
    """``kappa sink postgres`` processes, stopped at the end of the test."""
    sinks: list[SinkProcess] = []

    def start(env: dict[str, str]) -> SinkProcess:
        sink = SinkProcess(env, tmp_path / f"sink-{len(sinks)}.log").start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL: the one in KAPPA_POSTGRES_URL, or the project's local server
    (``kappa postgres start`` under KAPPA_HOME), stopped at the end if started here. If
    none comes up the tests that need it fail, they never skip."""
    settings = KappaSettings()
    if settings.postgres_url is not None:
        yield settings.resolved_postgres_url
        return
    from app.postgres.local import LocalPostgres

    server = LocalPostgres(settings)
    was_running = server.status().running
    server.start()
    try:
        yield settings.resolved_postgres_url
    finally:
        if not was_running:
            server.stop()
