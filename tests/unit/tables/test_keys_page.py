"""Paging through a worker's keys for the API (``tables.queries.StateQueries.keys_page``),
on real RocksDB stores: every key exactly once, stored or only applied, in the stores'
order (their JSON text's bytes), each page reading a bounded number of keys."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.faust_store import TableBuffer
from tables.partition_state import TablePartitionState, store_batch
from tables.queries import StateQueries
from tables.windows import aligned_window
from tests.support.stores import AcknowledgingSender, offline_tables

CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count",),
    windows=(aligned_window("1s", 1000, 1000),),
    lateness_ms=0,
    retention_ms=1_000,
)
# Keys whose JSON order differs from Python's: a space or "!" after a common prefix sorts
# before its end, escaped characters sort as a backslash; and non-ASCII ones.
AWKWARD = ["a", "a b", "a!", "ab", 'q"uote', "back\\slash", "new\nline", "é", "日本", "zz"]
PLAIN = [f"k{n:03}" for n in range(40)]


def json_order(keys: list[str]) -> list[str]:
    """The stores' order, computed by the standard library's JSON encoder."""
    return sorted(keys, key=lambda key: json.dumps(key, ensure_ascii=False).encode())


def apply(state: TablePartitionState, keys: list[str], first: int) -> None:
    batch = [(first + i, Event(key, 100, (1.0,), {})) for i, key in enumerate(keys)]
    PartitionProcessor(CONFIG, state, state.partition).apply(batch)


def pages(queries: StateQueries, limit: int) -> list[list[str]]:
    out, after = [], None
    while True:
        page, after = queries.keys_page([0, 1], after, limit)
        out.append(page)
        if after is None:
            return out


def test_pages_list_every_key_once_stored_or_held_in_the_stores_order(tmp_path: Path) -> None:
    keys = AWKWARD + PLAIN
    assert json_order(keys) != sorted(keys)  # the data can tell the two orders apart
    with offline_tables(tmp_path) as tables:
        states = [tables.partition_state(0), tables.partition_state(1)]
        apply(states[0], keys[0::2], 0)
        apply(states[1], keys[1::2][:10], 0)
        asyncio.run(store_batch(states, AcknowledgingSender()))
        # Applied, not stored: the live state lists them; applied again: listed once.
        apply(states[1], keys[1::2][5:], 100)
        live = StateQueries(tables, CONFIG, lambda p: states[p], lambda p: None)
        got = pages(live, 7)
        assert [key for page in got for key in page] == json_order(keys)
        assert [len(page) for page in got] == [7] * 7 + [1]
        # Read from the stores alone, partition 1 has only what was stored.
        stored = StateQueries(tables, CONFIG, lambda p: None, lambda p: None)
        listed = [key for page in pages(stored, 7) for key in page]
        assert listed == json_order(keys[0::2] + keys[1::2][:10])


def test_a_page_reads_a_bounded_number_of_stored_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[bytes] = []
    scan = TableBuffer.keys_after

    def counted(self: TableBuffer, bound: bytes | None) -> Iterator[bytes]:
        for raw in scan(self, bound):
            read.append(raw)
            yield raw

    monkeypatch.setattr(TableBuffer, "keys_after", counted)
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        many = [f"key-{n:05}" for n in range(5_000)]
        apply(state, many, 0)
        asyncio.run(store_batch([state], AcknowledgingSender()))
        queries = StateQueries(tables, CONFIG, lambda p: state, lambda p: None)
        page, after = queries.keys_page([0], "key-02000", 10)
        assert page == many[2001:2011]
        assert after == "key-02010"
        assert len(read) == 11  # one more than the page: whether there is a next
