"""Listing a key's sessions for the API (``tables.queries.StateQueries.windows``), on real
RocksDB stores: closed sessions while retained and open ones, from a live partition's
held changes and from the stores alike."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState, store_batch
from tables.queries import StateQueries
from tables.windows import Sessions, aligned_window
from tests.support.stores import AcknowledgingSender, offline_tables

SESSIONS = Sessions("session/10ms", 10)
CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(SESSIONS, aligned_window("1s", 1000, 1000)),
    lateness_ms=0,
    retention_ms=1_000,
)
# Key a: a session 100..105 (closed once the watermark reaches 116), then 200..205
# (open at watermark 205). Key b: one event at 150, closed at 205.
FIRST = [("a", 100, 1e16), ("a", 105, 1.0), ("b", 150, 2.5)]
SECOND = [("a", 200, 0.1), ("a", 205, 0.2)]


def brief(found: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (r["window"], r["start_ms"], r["end_ms"], r["final"], r["count"], r["values"]["x"]["sum"])
        for r in found
    ]


EXPECTED_A = [
    ("1s", 0, 1000, False, 4, math.fsum([1e16, 1.0, 0.1, 0.2])),
    (SESSIONS.name, 100, 116, True, 2, math.fsum([1e16, 1.0])),
    (SESSIONS.name, 200, 216, False, 2, math.fsum([0.1, 0.2])),
]


def apply(state: TablePartitionState, rows: list[tuple[str, int, float]], first: int) -> None:
    batch = [(first + i, Event(key, ts, (x,), {})) for i, (key, ts, x) in enumerate(rows)]
    PartitionProcessor(CONFIG, state, 0).apply(batch)


def test_a_keys_sessions_are_listed_closed_and_open_held_or_stored(tmp_path: Path) -> None:
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        apply(state, FIRST, 0)
        asyncio.run(store_batch([state], AcknowledgingSender()))
        apply(state, SECOND, len(FIRST))  # held, not stored yet
        live = StateQueries(tables, CONFIG, lambda p: state, lambda p: 205)
        assert brief(live.windows("a", 0, CONFIG.windows, 0, 10_000)) == EXPECTED_A
        assert brief(live.windows("b", 0, [SESSIONS], 0, 10_000)) == [
            (SESSIONS.name, 150, 161, True, 1, 2.5)
        ]
        # Listed by start: [150, 10000) leaves out the session at 100.
        assert brief(live.windows("a", 0, [SESSIONS], 150, 10_000)) == EXPECTED_A[2:]
        asyncio.run(store_batch([state], AcknowledgingSender()))
        stored = StateQueries(tables, CONFIG, lambda p: None, lambda p: None)
        assert brief(stored.windows("a", 0, CONFIG.windows, 0, 10_000)) == EXPECTED_A
        assert stored.windows("c", 0, [SESSIONS], 0, 10_000) == []
