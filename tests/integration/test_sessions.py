"""Session windows through a real broker and worker: the sessions the API lists and the
finals of the results topic equal a plain Python fold over the records read back from
the input topic, and ``kappa verify``'s DuckDB answer (``lag()`` over each key's events).

The fold marks late events per partition in offset order (behind the newest time before
them minus the lateness), then cuts each key's on-time events, in time order, where one
is more than the gap after the previous one. The events arrive up to 5 minutes out of
time order, within the 10-minute lateness, so sessions merge on arrival; a key has about
one event every 48 minutes over two days, so a 30-minute gap gives many sessions.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.datagen import generate
from app.exit_codes import ExitCode
from app.settings import KappaSettings
from tests.support.datasets import ON_TIME
from tests.support.kafka import produce_events, read_all
from tests.support.results import results_over, topic_finals, wait_processed
from tests.support.times import ms
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

GAP = 30 * 60_000
LATENESS = 10 * 60_000
NAME = "session/30m"


Session = tuple[int, int, float | None]  # end, count, sum of the amounts
WindowId = tuple[str, str, int]


def session_fold(records: list[Any]) -> tuple[dict[WindowId, Session], dict[str, int]]:
    """Every session (key, name, start) -> (end, count, exact sum of the amounts), and
    each key's partition watermark at the end."""
    on_time: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    newest: dict[int, int] = {}
    partition_of: dict[str, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = orjson.loads(record.value)
        ts, key = ms(event["ts"]), event["customer_id"]
        partition_of[key] = record.partition
        high = newest.get(record.partition)
        if high is None or ts >= high - LATENESS:
            on_time[key].append((ts, event["amount"]))
        newest[record.partition] = ts if high is None else max(high, ts)
    sessions: dict[WindowId, Session] = {}
    for key, events in on_time.items():
        events.sort(key=lambda event: event[0])
        runs: list[list[tuple[int, Any]]] = []
        for event in events:
            if runs and event[0] - runs[-1][-1][0] <= GAP:
                runs[-1].append(event)
            else:
                runs.append([event])
        for run in runs:
            amounts = [a for _, a in run if a is not None]
            total = math.fsum(amounts) if amounts else None
            sessions[(key, NAME, run[0][0])] = (run[-1][0] + GAP + 1, len(run), total)
    watermarks = {key: newest[p] - LATENESS for key, p in partition_of.items()}
    return sessions, watermarks


def test_sessions_equal_a_fold_and_duckdb_through_the_broker(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    spec = make_spec(windows='{ gap = "30m" }, { size = "1h" }', lateness="10m")
    worker, env = running_worker(spec, partitions=2)
    topic = f"test-input-{unique}"
    events = list(generate(ON_TIME))
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    records = asyncio.run(read_all(kafka_settings.bootstrap, topic))
    expected, watermarks = session_fold(records)
    keys = {e["customer_id"] for e in events}
    assert len(expected) > 3 * len(keys), "the data must give keys several sessions"
    _, windows, final = results_over([worker], keys, events)
    listed = {w: body for w, body in windows.items() if w[1] == NAME}
    assert listed.keys() == expected.keys()
    for wid, body in listed.items():
        end, count, total = expected[wid]
        assert (body["count"], body["values"]["amount"]["sum"]) == (count, total), wid
        assert final[wid] == (end <= watermarks[wid[0]]), wid
    closed = {w: v for w, v in expected.items() if v[0] <= watermarks[w[0]]}
    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    published = {w: body for w, body in finals.items() if w[1] == NAME}
    assert published.keys() == closed.keys()
    for wid, body in published.items():
        assert (body["count"], body["values"]["amount"]["sum"]) == closed[wid][1:], wid

    done = kappa_cli(env, "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, report["differences"][:5]
    assert report["windows"]["compared"] == report["windows"]["equal"] == len(windows)
    assert report["results"]["compared"] == report["results"]["equal"] == len(finals)
