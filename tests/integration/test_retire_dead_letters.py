"""A version's dead letters and late events outlive it: `kappa retire` lists them with
their counts, refuses to delete them unseen, and `--export DIR` keeps them as JSON Lines
with their reasons."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from agents.outputs import LATE_REASON
from app.datagen import BAD_ROWS, DatasetShape, generate, with_bad_rows, write
from tests.support.harness import Harness
from tests.support.kafka import cluster_names, produce_events
from tests.support.results import wait_processed
from tests.support.worker import kappa_cli, run_kappa

pytestmark = pytest.mark.broker

EVENTS = 300
BAD_EVERY = 50


def test_retire_keeps_dead_letters_and_late_events(kappa: Harness) -> None:
    name, unique, tmp_path = f"t{kappa.unique}", kappa.unique, kappa.tmp_path
    bootstrap = kappa.settings.bootstrap
    env = kappa.env(kappa.make_spec(lateness="10m"))
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=1)
    # A replay with bad rows: they go to this version's dead-letter topic.
    history = tmp_path / "history.csv"
    rows = list(with_bad_rows(generate(DatasetShape(events=EVENTS, seed=3)), BAD_EVERY))
    write(iter(rows), history)
    bad = [row for row in rows if row in BAD_ROWS]
    assert len(bad) == EVENTS // BAD_EVERY
    run_kappa(env, "replay", str(history), "--max-bad-rows", str(len(bad)))
    # Live events two hours behind the newest: behind the watermark, so late.
    newest = max(datetime.fromisoformat(row["ts"]) for row in rows if row not in BAD_ROWS)
    late = [
        {"customer_id": f"c{i:05d}", "ts": (newest - timedelta(hours=2)).isoformat(), "amount": i}
        for i in range(1, 4)
    ]
    asyncio.run(produce_events(bootstrap, f"test-input-{unique}", late, "customer_id"))
    wait_processed([worker], bootstrap, f"test-input-{unique}")
    assert worker.stop() == 0

    dead_letter_topic, late_topic = f"kappa.{name}.v1.dead-letter", f"kappa.{name}.v1.late"
    refused = kappa_cli(env, "retire", name, "1")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert f"{len(bad)} dead letters in {dead_letter_topic} (" in refused.stdout
    assert f"{len(late)} late events in {late_topic} ({LATE_REASON} {len(late)})" in refused.stdout
    assert "--export DIR" in refused.stderr
    assert {dead_letter_topic, late_topic} <= set(asyncio.run(cluster_names(bootstrap))[0])

    exported = tmp_path / "kept"
    done = kappa_cli(env, "retire", name, "1", "--export", str(exported), answer="y\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not {dead_letter_topic, late_topic} & set(asyncio.run(cluster_names(bootstrap))[0])

    dead = [orjson.loads(line) for line in (exported / f"{dead_letter_topic}.jsonl").open("rb")]
    # Each bad row once, with its reason in the line and in the original headers: the
    # generator's three kinds of bad row, twice each, are three reasons, twice each.
    assert len(dead) == len(bad)
    reasons = Counter(line["reason"] for line in dead)
    assert sorted(reasons.values()) == sorted(Counter(map(orjson.dumps, bad)).values())
    assert all(line["headers"]["kappa.reason"] == line["reason"] for line in dead)
    kept_late = [orjson.loads(line) for line in (exported / f"{late_topic}.jsonl").open("rb")]
    assert sorted(orjson.loads(line["value"])["event"]["amount"] for line in kept_late) == [
        event["amount"] for event in late
    ]
    assert {line["reason"] for line in kept_late} == {LATE_REASON}
    assert all(line["timestamp"].endswith("Z") for line in dead + kept_late)
    assert datetime.fromisoformat(dead[0]["timestamp"]).tzinfo == UTC
