"""Sessions closed in steps, on real RocksDB stores: one watermark move that ends the
sessions of thousands of keys closes them a budget at a time, each step stored before
the next, as paned windows close (before, every session closed in one step: 200,000
keys held the event loop 17 s and took the worker to 1 GB). Checked against the plain
fold of ``test_sessions`` (``session_fold``): every final session published once, with
its exact result, whether the closing runs through, restarts between two steps, or
starts in the batch that changed some of its sessions."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import pytest

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import store_batch
from tables.pipeline_tables import PipelineTables
from tests.support.stores import AcknowledgingSender, offline_tables
from tests.unit.agents.test_processor import METRICS, VALUE_NAMES, WinId
from tests.unit.agents.test_sessions import GAP, SESSIONS, Row, session_fold

PARTITION = 0
KEYS = 3_000
# Past every key's events: no session ends before the closer's event.
LATENESS = 100_000
CONFIG = AggregationConfig(
    value_names=VALUE_NAMES,
    metrics=METRICS,
    windows=(SESSIONS,),
    lateness_ms=LATENESS,
    retention_ms=10**9,
)
# Bytes of unstored changes a closing step stops at: a few hundred sessions a step.
BUDGET = 300_000


def rows() -> list[Row]:
    """Each key's events: one or two sessions of one to three events (values whose naive
    sums are inexact), in rising time order; then a key far ahead, whose event ends every
    session at once."""
    rng = random.Random(19)
    found: list[Row] = []
    for i in range(KEYS):
        key = f"customer-{i:05d}"
        first = 1_000 + 3 * i
        times = [first + offset for offset in rng.sample([0, 4, 8, 30, 33], rng.randint(1, 3))]
        found += [(key, ts, (rng.choice([0.1, 1e16, -1e16, 0.7]), float(ts))) for ts in times]
    found.sort(key=lambda row: row[1])
    return [*found, ("zz-closer", found[-1][1] + LATENESS + 2 * GAP, (1.0, 1.0))]


def batch(part: list[Row], first: int) -> list[tuple[int, Event]]:
    return [(first + i, Event(key, ts, values, {})) for i, (key, ts, values) in enumerate(part)]


def published(results: list[Any]) -> dict[WinId, tuple[int, dict[str, Any]]]:
    found = {(r.key, r.window, r.start_ms): (r.end_ms, r.result) for r in results}
    assert len(found) == len(results), "each session published once"
    return found


def close_in_steps(
    tables: PipelineTables, events: list[Row], split: int, restart_after: int | None
) -> tuple[list[Any], int]:
    """Apply ``events[:split]`` and store them; then the rest in one batch, which closes
    the sessions in steps, each stored before the next, with a new processor on the
    stored state after step ``restart_after``. The results published, and the steps."""
    sender = AcknowledgingSender()
    state = tables.partition_state(PARTITION)
    processor = PartitionProcessor(CONFIG, state, PARTITION, BUDGET)
    processor.apply(batch(events[:split], 0))
    asyncio.run(store_batch([state], sender))
    results = processor.apply(batch(events[split:], split)).closed
    steps = 1
    while processor.closing:
        asyncio.run(store_batch([state], sender))
        if steps == restart_after:
            state = tables.partition_state(PARTITION)
            processor = PartitionProcessor(CONFIG, state, PARTITION, BUDGET)
        results += processor.close_step()
        steps += 1
    asyncio.run(store_batch([state], sender))
    return results, steps


def counted_open_windows(processor: PartitionProcessor) -> int | None:
    """The processor's open windows, once a thread beside it has counted the stored ones
    (None until then): on a loaded machine that can take a moment."""
    deadline = time.monotonic() + 60
    while (count := processor.open_window_count()) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


@pytest.mark.parametrize(
    ("split", "restart_after"),
    [(-1, None), (-1, 3), (-300, None)],
    ids=["in steps", "restarted between two steps", "some changed in the closing batch"],
)
def test_sessions_a_move_ends_close_in_steps_each_published_once_as_the_fold(
    tmp_path: Path, split: int, restart_after: int | None
) -> None:
    events = rows()
    expected, _ = session_fold(events, CONFIG.lateness_ms)
    finals = {wid: value for wid, value in expected.items() if wid[0] != "zz-closer"}
    assert len(finals) > KEYS
    with offline_tables(tmp_path) as tables:
        results, steps = close_in_steps(tables, events, len(events) + split, restart_after)
        assert steps >= 5
        assert published(results) == finals
        state = tables.partition_state(PARTITION)
        processor = PartitionProcessor(CONFIG, state, PARTITION, BUDGET)
        assert counted_open_windows(processor) == 1  # the closer's own session
        records = [state.get_key(key) for key, _, _ in events[:-1]]
        assert all(record is not None and not record.sessions for record in records)
