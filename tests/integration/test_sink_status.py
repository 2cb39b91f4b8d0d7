"""``GET /api/sink`` (the dashboard's sink panel) against a real PostgreSQL and broker:
"none" without views, "unreachable" when PostgreSQL does not answer, and each version's
lag equal to the topics' end offsets minus the offsets the sink stored in PostgreSQL,
both read back here without kappa."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime

import psycopg
import pytest
from psycopg import sql

from app.datagen import generate, write
from app.kafka_client import offset_ranges
from app.ports import free_port
from tests.support.datasets import ON_TIME, TO_SHUFFLE
from tests.support.harness import Harness
from tests.support.postgres import SinkProcess, wait_sink_caught_up
from tests.support.results import wait_processed

pytestmark = pytest.mark.broker


def _replay(env: dict[str, str], history: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", history], env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")


def _ends(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": bootstrap}, topics))
    return {(t, p): end for t, ps in ranges.items() for p, (_, end) in ps.items()}


def _stored(url: str, schema: str) -> dict[tuple[str, int], int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT topic, partition, next_offset FROM {}").format(
                sql.Identifier(schema, "sink_offsets")
            )
        ).fetchall()
    return {(str(r[0]), int(r[1])): int(r[2]) for r in rows}


def test_the_sink_endpoint_says_none_unreachable_and_each_versions_lag(
    kappa: Harness, postgres_url: str
) -> None:
    schema = name = f"t{kappa.unique}"
    env = kappa.env(
        kappa.make_spec(windows='{ size = "1h" }'),
        partitions=2,
        KAPPA_POSTGRES_URL=postgres_url,
        KAPPA_POSTGRES_SCHEMA=schema,
        KAPPA_SINK_METRICS_PORT="0",
    )
    first, second = (kappa.tmp_path / "first.csv", kappa.tmp_path / "second.csv")
    write(generate(ON_TIME), first)
    write(generate(TO_SHUFFLE), second)
    # A PostgreSQL that does not answer is a state, said with its cause, not an error.
    unanswered = f"postgresql://kappa@127.0.0.1:{free_port()}/kappa"
    down = kappa.start_worker(env | {"KAPPA_POSTGRES_URL": unanswered})
    down.wait_ready(partitions=2)
    code, body = down.get("/api/sink")
    assert code == 200, body
    assert body["state"] == "unreachable", body
    assert body["error"], body
    down.stop()

    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)

    # PostgreSQL answers, but no sink has made the pipeline's views: no sink.
    code, body = worker.get("/api/sink")
    assert code == 200, body
    assert (body["state"], body["views_version"], body["versions"]) == ("none", None, [])
    assert datetime.fromisoformat(body["checked_at"]).utcoffset() is not None

    _replay(env, str(first))
    sink = SinkProcess(env, kappa.tmp_path / "sink.log").start()
    try:
        wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
        wait_sink_caught_up(postgres_url, schema, kappa.settings.bootstrap, name, 1, sink)
    finally:
        sink.stop()
    code, body = worker.get("/api/sink")
    assert code == 200, body
    assert (body["state"], body["views_version"]) == ("ok", 1)
    assert [(v["version"], v["views"], v["started"], v["lag_total"]) for v in body["versions"]] == [
        (1, True, True, 0)
    ]

    # With the sink stopped, more events: the lag is what PostgreSQL has not got.
    _replay(env, str(second))
    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    topics = [f"kappa.{name}.v1.window-results", f"kappa.{name}.v1-keys-changelog"]
    stored = _stored(postgres_url, schema)
    assert {t for t, _ in stored} == set(topics), stored
    want: dict[str, dict[str, int]] = {}

    def settled() -> bool:  # the keys changelog is written as the worker stores a batch
        nonlocal want
        ends = _ends(kappa.settings.bootstrap, topics)
        want = {
            t: {str(p): n - stored.get((t, p), 0) for (tt, p), n in ends.items() if tt == t}
            for t in topics
        }
        return bool(worker.get("/api/sink")[1]["versions"][0]["lag"] == want)

    worker.wait_until(settled, 60, "the endpoint's lag to equal the offsets read back")
    version = worker.get("/api/sink")[1]["versions"][0]
    assert version["lag_total"] == sum(n for ps in want.values() for n in ps.values()) > 0

    # A query that cannot finish (the offsets table locked by another session) is said as
    # PostgreSQL not answering, with its cause, within the survey's statement timeout.
    with psycopg.connect(postgres_url) as locker:
        locker.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(schema, "sink_offsets")
            )
        )
        code, body = worker.get("/api/sink")
        assert code == 200, body
        assert (body["state"], body["versions"]) == ("unreachable", []), body
        assert "statement timeout" in body["error"], body
    code, body = worker.get("/api/sink")
    assert (code, body["state"]) == (200, "ok"), body
