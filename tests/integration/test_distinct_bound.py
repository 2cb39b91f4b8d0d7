"""``count_distinct`` past its per-record bound, through a real broker and worker.

One key gets more distinct values than its record may keep (tables/distinct.py,
``DISTINCT_VALUES_PER_RECORD``), spread over the 2**53 integers so that, kept whole, its
totals and its window would each be well over the 1 MB a changelog record may be. Before
the bound, the worker retried that batch forever and processed nothing after it. Now
the key's ``count_distinct`` is null (over the bound), its other metrics and every other
key's are exact, and ``kappa verify`` agrees (exit 0). Expected values come from a plain
Python fold over the records read back from the input topic.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.exit_codes import ExitCode
from app.settings import KappaSettings
from tables.distinct import distinct_limit
from tests.support.kafka import produce_events, read_all
from tests.support.results import results_over, wait_processed
from tests.support.times import iso
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

METRICS_LINE = 'metrics = ["count", "sum", "min", "max", "mean"]'
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
VALUES = ("amount", "quantity")


def events_over_the_bound(limit: int) -> list[dict[str, Any]]:
    """``hot``: 2 * limit events, each with two new values spread over 2**53 (about 29
    bytes each in the bitmap's base64: 1.45 MB for the two fields). Small keys before
    and after it on the same partition, repeating values, some NULL. All within 25 s of
    event time, less than the lateness: no event is late, all are in one day's window."""
    rng = random.Random(15)
    events: list[dict[str, Any]] = []
    for i in range(2 * limit):
        events.append(
            {
                "customer_id": "hot",
                "ts": iso(START_MS + i),
                "amount": rng.randrange(1 << 53),
                "quantity": -rng.randrange(1 << 53),
            }
        )
    for i in range(300):
        key = f"small-{i % 6}"
        event: dict[str, Any] = {"customer_id": key, "ts": iso(START_MS + i * 80)}
        event |= {"amount": (i % 17) + 0.25 * (i % 3), "quantity": None if i % 5 == 0 else i}
        events.insert(rng.randrange(len(events) + 1), event)
    return events


def fold(records: list[Any], limit: int) -> dict[str, dict[str, Any]]:
    """Each key's count, and per value its distinct non-null values, counted with a
    Python set; None where there are more than ``limit`` (the documented outcome)."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        event = orjson.loads(record.value)
        by_key[event["customer_id"]].append(event)
    out = {}
    for key, events in by_key.items():
        values = {}
        for name in VALUES:
            distinct = len({e[name] for e in events if e[name] is not None})
            values[name] = {"count_distinct": None if distinct > limit else distinct}
        out[key] = {"count": len(events), "values": values}
    return out


def test_a_key_over_the_bound_gets_a_null_count_and_the_others_stay_exact(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    spec = make_spec(windows='{ size = "1d" }', lateness="1m")
    text = spec.read_text()
    assert METRICS_LINE in text
    spec.write_text(text.replace(METRICS_LINE, 'metrics = ["count", "count_distinct"]'))
    worker, env = running_worker(spec, partitions=1)
    topic = f"test-input-{unique}"
    limit = distinct_limit(len(VALUES))
    events = events_over_the_bound(limit)
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    expected = fold(asyncio.run(read_all(kafka_settings.bootstrap, topic)), limit)
    assert expected["hot"]["values"]["amount"]["count_distinct"] is None
    totals, windows, _ = results_over([worker], set(expected), events)
    assert totals == expected
    day = (START_MS // 86_400_000) * 86_400_000
    assert windows[("hot", "1d", day)]["values"] == expected["hot"]["values"]
    small = {k: r for k, r in totals.items() if k != "hot"}
    assert len(small) == 6
    assert all(isinstance(r["values"]["amount"]["count_distinct"], int) for r in small.values())

    done = kappa_cli(env, "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, report["differences"][:5]
    assert report["keys"]["compared"] == report["keys"]["equal"] == len(expected)
