"""Derived fields and a filter through the real broker and worker: a replayed CSV with
bad values and live JSON, against DuckDB computing the same SQL text over the same
rows; then ``kappa verify`` on the version.

The spec derives two values (one a division, which is uncomputable where the quantity
is 0) and a key part (a CASE over the quantity), and its ``where`` drops about three
events in four (hours 0 to 5 of each day, and events without an amount, are kept).
"""

from __future__ import annotations

import asyncio
import random
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.datagen import DatasetShape, generate, write
from app.exit_codes import ExitCode
from app.settings import KappaSettings
from tests.support.kafka import produce_raw
from tests.support.oracle import derived_results
from tests.support.results import results_over, wait_processed
from tests.support.times import DAY, HOUR
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker

DERIVE = {
    "total": "amount + quantity",
    "ratio": "amount / quantity",
    "size": "CASE WHEN quantity IS NULL THEN 'none' WHEN quantity >= 100 THEN 'big'"
    " ELSE 'small' END",
}
WHERE = "hour(ts) < 6 OR amount IS NULL"
SPEC = """
name = "t{unique}"
version = 1
input_topic = "test-input-{unique}"
key = ["customer_id", "size"]
time_field = "ts"
values = ["total", "ratio"]
fields = {{ amount = "double", quantity = "double" }}
windows = [{{ size = "1h" }}]
lateness = "10m"
where = "{where}"
{derive}
"""


def _with_bad_values(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Some quantities 0 (a division by zero), some amounts not numbers, some values
    numeric strings (as CSV has them) and NULL."""
    rng = random.Random(seed)
    for event in events:
        draw = rng.random()
        if draw < 0.03:
            event["quantity"] = 0
        elif draw < 0.05:
            event["amount"] = "abc"
        elif draw < 0.15:
            event["quantity"] = str(event["quantity"]) if event["quantity"] is not None else None
    return events


def test_derived_values_key_and_filter_equal_duckdb_on_replay_and_live(
    kafka_settings: KappaSettings,
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    shape = DatasetShape(events=4_000, keys=30, span_ms=3 * DAY, disorder_ms=60_000, seed=17)
    events = _with_bad_values(list(generate(shape)), seed=18)
    history, live = events[: len(events) // 2], events[len(events) // 2 :]
    everything = tmp_path / "all.csv"
    write(iter(events), everything)
    derive = "\n".join(
        f'[[derive]]\nname = "{name}"\nexpr = "{sql}"\n' for name, sql in DERIVE.items()
    )
    spec = tmp_path / "derive.toml"
    spec.write_text(SPEC.format(unique=unique, where=WHERE, derive=derive))
    worker, env = running_worker(spec, partitions=2)

    history_file = tmp_path / "history.csv"
    write(iter(history), history_file)
    run_kappa(env, "replay", "--max-bad-rows", "100%", str(history_file))
    topic = f"test-input-{unique}"
    # Live producers key records with the event's key, derived part included (README).
    raw = [(_key(e).encode(), orjson.dumps(e)) for e in live]
    asyncio.run(produce_raw(kafka_settings.bootstrap, topic, raw))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    want_totals, want_windows, filtered, dead = derived_results(
        everything,
        [("1h", HOUR, HOUR)],
        {name: sql for name, sql in DERIVE.items()},
        key="customer_id || '|' || size",
        where=WHERE,
        dead="quantity = 0 AND amount IS NOT NULL",
        values=("total", "ratio"),
    )
    assert filtered > len(events) // 2, "the filter drops most events"
    assert {key.split("|")[1] for key in want_totals} == {"none", "big", "small"}
    totals, windows, _ = results_over([worker], set(want_totals), events)
    assert totals == want_totals
    assert windows == want_windows

    _, status = worker.get("/api/status")
    counts = status["counts"]
    assert counts["filtered_since_start"] == filtered
    # The replay dead-letters its own bad rows; the worker those of the live records.
    assert counts["dead_letters"] == dead
    with urllib.request.urlopen(worker.base + "/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    (sample,) = families["kappa_events_filtered"].samples
    assert sample.value == filtered

    done = kappa_cli(env, "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, report["differences"][:5]
    assert report["input"]["filtered"] == filtered
    # Verify reads the input topic: the live bad records (the replay kept its own out).
    live_dead = Counter(
        "bad_field" if e["amount"] == "abc" else "uncomputable"
        for e in live
        if e["amount"] == "abc" or (e["quantity"] == 0 and e["amount"] is not None)
    )
    assert report["input"]["bad"] == dict(live_dead)


def _key(event: dict[str, Any]) -> str:
    """The event's key as the spec derives it (a plain Python reading of DERIVE["size"])."""
    quantity = event["quantity"]
    size = "none" if quantity is None else "big" if float(quantity) >= 100 else "small"
    return f"{event['customer_id']}|{size}"
