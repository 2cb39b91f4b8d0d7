"""``kappa sink postgres`` against a real PostgreSQL: the version's tables equal DuckDB's
answer over the same events, exactly once, whatever is killed with ``kill -9`` on the
way (the sink, PostgreSQL itself, a worker), and a record that fits no row goes to the
dead-letter table while the sink keeps going."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from agents.batch_sender import Headers
from agents.partitions import expected_partition
from agents.spec import load_spec
from app.datagen import generate, write
from app.kafka_client import read_partition
from app.ports import free_port
from app.postgres.local import LocalPostgres
from app.settings import KappaSettings
from app.sink.schema import SinkTables
from tables.claims import WRITER_HEADER
from tables.records import KeyRecord
from tests.conftest import ROOT
from tests.support.datasets import CRASH, HOURLY
from tests.support.harness import Harness
from tests.support.oracle import batch_results
from tests.support.postgres import (
    SinkProcess,
    totals_in,
    wait_sink_caught_up,
    windows_in,
)
from tests.support.results import topic_finals, wait_processed

pytestmark = pytest.mark.broker

REPLAY_RATE = "2000"  # slow enough that the kills land while the replay produces


def _sink_env(kappa: Harness, postgres_url: str, **extra: str) -> dict[str, str]:
    settings = {
        "KAPPA_SESSION_TIMEOUT": "8",
        "KAPPA_POSTGRES_URL": postgres_url,
        "KAPPA_POSTGRES_SCHEMA": f"t{kappa.unique}",
        "KAPPA_SINK_METRICS_PORT": "0",
        "KAPPA_SINK_BATCH_ROWS": "500",  # many transactions, so a kill lands between two
        "KAPPA_SINK_MAX_BACKOFF": "2",
    }
    env = kappa.env(kappa.make_spec(windows='{ size = "1h" }'), partitions=2, **(settings | extra))
    return env


def _rows_written(postgres_url: str, schema: str, table: str) -> int:
    try:
        with psycopg.connect(postgres_url, connect_timeout=5) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def _assert_tables_equal_batch(
    kappa: Harness, postgres_url: str, history: Any, sink: SinkProcess, all_finals: bool = True
) -> None:
    schema, name = f"t{kappa.unique}", f"t{kappa.unique}"
    wait_sink_caught_up(postgres_url, schema, kappa.settings.bootstrap, name, 1, sink)
    want_totals, want_windows = batch_results(history, HOURLY)
    totals = totals_in(postgres_url, schema, f"{name}_v1_totals")
    assert totals == want_totals
    finals = windows_in(postgres_url, schema, f"{name}_v1_windows")
    assert finals, "no window closed"
    # Every final window in PostgreSQL is DuckDB's; the open ones are not final yet.
    assert finals == {k: want_windows[k] for k in finals}
    if all_finals:  # and every final result the worker emitted is there, once
        assert finals == topic_finals(kappa.settings.bootstrap, f"kappa.{name}.v1.window-results")
    # And the views point at the only version.
    assert totals_in(postgres_url, schema, f"{name}_totals") == want_totals
    assert windows_in(postgres_url, schema, f"{name}_windows") == finals


@pytest.mark.parametrize("victim", ["sink", "postgres", "worker"])
def test_kill_minus_nine_then_the_tables_equal_duckdb_exactly_once(
    victim: str, kappa: Harness, postgres_url: str
) -> None:
    events = list(generate(CRASH))
    history = kappa.tmp_path / "history.csv"
    write(iter(events), history)
    env = _sink_env(kappa, postgres_url)
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    sink = SinkProcess(env, kappa.tmp_path / "sink.log").start()
    replaying = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "replay", str(history), "--rate", REPLAY_RATE],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    schema, name = f"t{kappa.unique}", f"t{kappa.unique}"
    try:
        worker.wait_until(
            lambda: (
                _rows_written(postgres_url, schema, f"{name}_v1_totals") > 0
                and _rows_written(postgres_url, schema, f"{name}_v1_windows") > 500
            ),
            180,
            "the sink to write rows",
        )
        assert replaying.poll() is None, "the replay ended before the kill"
        if victim == "sink":
            sink.kill()
            sink = SinkProcess(env, kappa.tmp_path / "sink-2.log").start()
        elif victim == "postgres":
            _kill_postgres_and_restart(postgres_url)
        else:
            worker.kill()
            worker = kappa.start_worker(env)
            worker.wait_ready(partitions=2)
        _, stderr = replaying.communicate(timeout=300)
        assert replaying.returncode == 0, stderr.decode(errors="replace")
        wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
        _assert_tables_equal_batch(kappa, postgres_url, history, sink)
        if victim == "postgres":  # it said so, retried, and came back
            log = sink.log_tail(400)
            assert "PostgreSQL failed the sink's transaction or is unreachable" in log
            assert "Nothing is lost" in log
            assert "PostgreSQL is back" in log
    finally:
        sink.stop()
        if replaying.poll() is None:
            replaying.kill()


def _kill_postgres_and_restart(postgres_url: str) -> None:
    """``kill -9`` the project's local server (the test's own), then start it again."""
    settings = KappaSettings()
    assert settings.postgres_url is None, "the PostgreSQL kill needs the project's local server"
    server = LocalPostgres(settings)
    server.kill()
    server.start()


def test_a_record_that_fits_no_row_goes_to_the_dead_letters(
    kappa: Harness, postgres_url: str, start_sink: Callable[[dict[str, str]], SinkProcess]
) -> None:
    events = list(generate(CRASH))[:3000]
    history = kappa.tmp_path / "history.csv"
    write(iter(events), history)
    metrics_port = free_port()
    env = _sink_env(kappa, postgres_url, KAPPA_SINK_METRICS_PORT=str(metrics_port))
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    name = f"t{kappa.unique}"
    results = f"kappa.{name}.v1.window-results"
    bad = [
        b"not json",
        b'["a list"]',
        b'{"key": "k\\u0000nul", "window": "1h", "start_ms": 0, "end_ms": 3600000}',
        b'{"key": "k", "window": "1h", "start_ms": 0, "end_ms": 3600000, "count": "many"}',
        b'{"key": "k", "window": "1h", "start_ms": 99999999999999999999, "end_ms": 1}',
    ]
    asyncio.run(_produce(kappa.settings.bootstrap, results, bad))
    sink = start_sink(env)
    subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(history)], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    _assert_tables_equal_batch(kappa, postgres_url, history, sink, all_finals=False)
    with psycopg.connect(postgres_url) as conn:
        letters = conn.execute(
            sql.SQL("SELECT value, reason FROM {} ORDER BY kafka_offset").format(
                sql.Identifier(f"t{kappa.unique}", f"{name}_v1_dead_letters")
            )
        ).fetchall()
    assert [bytes(value) for value, _ in letters] == bad
    reasons = [reason for _, reason in letters]
    assert "not JSON" in reasons[0]
    assert "not an object" in reasons[1]
    assert "NUL" in reasons[2]
    assert "count must be a 64-bit integer" in reasons[3]
    assert "start_ms must be a 64-bit integer" in reasons[4]
    assert sink.alive()
    # Its metrics say the same: the dead letters, rows written, no lag, PostgreSQL up.
    samples, families = _scrape(metrics_port)
    version = {"pipeline": name, "version": "1"}

    def sample(metric: str, **labels: str) -> float:
        return samples[(metric, frozenset({**version, **labels}.items()))]

    assert sample("kappa_sink_dead_letters_total") == len(bad)
    assert sample("kappa_sink_rows_written_total", table="totals") >= len(
        totals_in(postgres_url, f"t{kappa.unique}", f"{name}_v1_totals")
    )
    assert sample("kappa_sink_transaction_seconds_count") > 0
    assert sample("kappa_sink_postgres_up") == 1
    # docs/metrics.md lists exactly the families the sink serves.
    documented = re.findall(r"`(kappa_sink_[a-z_]+)`", (ROOT / "docs/metrics.md").read_text())
    assert {m for m in families if m.startswith("kappa_sink_")} == set(documented)
    lags = [v for (metric, _), v in samples.items() if metric == "kappa_sink_lag_records"]
    assert len(lags) == 4  # 2 partitions of 2 topics
    assert not any(lags)


def _scrape(port: int) -> tuple[dict[tuple[str, frozenset[tuple[str, str]]], float], set[str]]:
    """Every sample of the sink's /metrics page, by name and labels; and the names of its
    families (a counter's with ``_total``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        families = list(text_string_to_metric_families(response.read().decode()))
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in families
        for s in family.samples
    }
    names = {
        f.name + ("_total" if f.type == "counter" else "")
        for f in families
        if not f.name.endswith("_created")  # prometheus-client's creation times
    }
    return samples, names


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await _produce_to(bootstrap, topic, 0, [(b"bad", value, []) for value in values])


def test_a_write_after_another_workers_claim_never_reaches_the_tables(
    kappa: Harness, postgres_url: str, start_sink: Callable[[dict[str, str]], SinkProcess]
) -> None:
    """A key record a worker writes to the ``keys`` changelog after another worker claimed
    the partition (a zombie's late write: sent here by hand, tagged with a token no claim
    names, as the zombie's producer would send it) is skipped by the sink, which then
    resumes after the claims and knows the owner from PostgreSQL alone."""
    events = list(generate(CRASH))[:2000]
    history = kappa.tmp_path / "history.csv"
    write(iter(events), history)
    env = _sink_env(kappa, postgres_url)
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(history)], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    sink = start_sink(env)
    _assert_tables_equal_batch(kappa, postgres_url, history, sink, all_finals=False)
    assert sink.stop() == 0
    # The zombie's record: a key's real record with one more, huge, event in its totals.
    changelog = SinkTables.of(load_spec(env["KAPPA_PIPELINE"]), "unused").source_topics[1]
    key = str(events[0]["customer_id"])
    partition = expected_partition(key, 2)
    options = {"bootstrap_servers": kappa.settings.bootstrap}
    stored = asyncio.run(read_partition(options, changelog, partition)) or []
    value = next(r.value for r in reversed(stored) if r.key == orjson.dumps(key))
    record = KeyRecord.from_state(orjson.loads(value))
    record.totals.add([1e6, 1.0])
    late = (orjson.dumps(key), orjson.dumps(record.to_state()), [(WRITER_HEADER, b"13")])
    asyncio.run(_produce_to(kappa.settings.bootstrap, changelog, partition, [late]))
    sink = start_sink(env)
    _assert_tables_equal_batch(kappa, postgres_url, history, sink, all_finals=False)
    assert "skipped 1 record(s)" in sink.log_tail(400)


async def _produce_to(
    bootstrap: str, topic: str, partition: int, records: list[tuple[bytes, bytes, Headers]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(
                topic, key=key, value=value, partition=partition, headers=headers
            )
    finally:
        await producer.stop()
