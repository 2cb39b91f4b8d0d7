"""A window instance closed for many keys on one partition, on real RocksDB stores: its
list of keys (kept for expiry) is stored in chunks, each a changelog record that Kafka
accepts (``AcknowledgingSender`` refuses a record above 1 MB, as the broker does), and a
closing in steps writes each key once rather than rewriting the list at every step.
Expiry, after a restart, then deletes every closed result and every chunk, in steps of
the closing's budget."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import BUCKET_CHUNK_BYTES, TablePartitionState, store_batch
from tables.records import bucket_chunks_prefix, bucket_keys_key
from tables.windows import Sessions, aligned_window
from tests.support.stores import AcknowledgingSender, offline_tables

SIZE = 10  # ms: one tumbling window, [0, 10)
RETENTION = 100
CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(aligned_window(f"{SIZE}", SIZE, SIZE),),
    lateness_ms=0,
    retention_ms=RETENTION,
)
# Listed in one record, these keys' JSON would be about 1.3 MB: over Kafka's limit.
KEYS = [f"customer-{i:07d}" for i in range(70_000)]
LISTED_BYTES = sum(len(orjson.dumps(key)) + 1 for key in KEYS)
# Bytes of unstored changes a closing step stops at: many steps, each listing its keys.
BUDGET = 2_000_000
PARTITION = 0


def stored_meta_keys(state: TablePartitionState) -> list[str]:
    """The ``meta`` keys stored for the bucket of window [0, 10): its own and its chunks'."""
    own = bucket_keys_key(PARTITION, "10@0")
    chunks = bucket_chunks_prefix(PARTITION, "10@0")
    names = [name for name, _ in state.meta.range_items(own, own + "~") if name == own]
    return names + [name for name, _ in state.meta.range_items(chunks, chunks + "~")]


def listed(state: TablePartitionState, bucket: str) -> list[str]:
    """Every key listed for ``bucket``, chunk by chunk, as expiry takes them."""
    keys: list[str] = []
    while (chunk := state.take_bucket_chunk(bucket)) is not None:
        keys += chunk
    return keys


@pytest.mark.parametrize(
    ("budget", "one_batch"),
    [(None, False), (BUDGET, False), (BUDGET, True)],
    ids=["all at once", "in steps", "in steps, opened in the closing batch"],
)
def test_a_window_closed_for_many_keys_lists_them_in_chunks_kafka_accepts(
    tmp_path: Path, budget: int | None, one_batch: bool
) -> None:
    assert LISTED_BYTES > 1_000_000
    sender = AcknowledgingSender()
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(PARTITION)
        processor = PartitionProcessor(CONFIG, state, PARTITION, budget)
        events = [(i, Event(key, i * SIZE // len(KEYS), (0.1,), {})) for i, key in enumerate(KEYS)]
        # Rising times: none late. Then an event at 10 closes [0, 10) for every key, in
        # steps of the budget; in the events' own batch, the panes are stored between
        # the steps, not before the first.
        closing = [(len(KEYS), Event("later", 10, (0.2,), {}))]
        if one_batch:
            events += closing
        else:
            processor.apply(events)
            asyncio.run(store_batch([state], sender))
        results = processor.apply(events if one_batch else closing).closed
        processor.checkpoint(len(KEYS))
        asyncio.run(store_batch([state], sender))
        steps = 0
        while processor.closing:
            results += processor.close_step()
            asyncio.run(store_batch([state], sender))
            steps += 1
        assert steps >= 3 if budget else steps == 0
        assert sorted(result.key for result in results) == KEYS

        bucket = "10@0"
        assert sorted(listed(tables.partition_state(PARTITION), bucket)) == KEYS
        chunks = [
            (key, value)
            for send in sender.sends
            for topic, _, key, value in send
            if topic.endswith("meta-changelog") and key.startswith(b'"bucketkeys/')
        ]
        assert len(chunks) >= 5
        assert all(value is not None and len(value) <= BUCKET_CHUNK_BYTES for _, value in chunks)
        # Each key written once: the chunks hold the list's bytes, not a list per step.
        assert sum(len(value or b"") for _, value in chunks) <= LISTED_BYTES + 2 * len(chunks)

        # A restart: a new processor reads the closed bucket from the stores, and expires
        # it once the watermark passes the window's end plus the retention.
        state = tables.partition_state(PARTITION)
        processor = PartitionProcessor(CONFIG, state, PARTITION, budget)
        assert state.get_closed(KEYS[-1], "10", 0) is not None
        late = len(KEYS) + 1
        processor.apply([(late, Event("later", SIZE + RETENTION, (0.3,), {}))])
        processor.checkpoint(late)
        asyncio.run(store_batch([state], sender))
        steps = 0
        while processor.closing:  # the expiry, a budget of deletions at a time
            processor.close_step()
            asyncio.run(store_batch([state], sender))
            steps += 1
        assert steps >= 3 if budget else steps == 0
        assert all(state.get_closed(key, "10", 0) is None for key in KEYS)
        assert stored_meta_keys(state) == []
        assert list(state.iter_buckets()) == [f"10@{SIZE}"]  # "later"'s window, closed


def test_keys_listed_before_chunks_are_read_and_expired_with_the_new_chunks(
    tmp_path: Path,
) -> None:
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(PARTITION)
        # A bucket written by an earlier kappa: its keys in the bucket's own record.
        state.meta.put(bucket_keys_key(PARTITION, "10@0"), ["a", "b"])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        state = tables.partition_state(PARTITION)
        state.add_bucket_keys("10@0", ["c"])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        state = tables.partition_state(PARTITION)
        state.add_bucket_keys("10@0", ["d"])  # after the stored chunk, not over it
        asyncio.run(store_batch([state], AcknowledgingSender()))
        state = tables.partition_state(PARTITION)
        assert listed(state, "10@0") == ["a", "b", "c", "d"]
        assert state.take_bucket_chunk("10@0") is None
        asyncio.run(store_batch([state], AcknowledgingSender()))
        assert stored_meta_keys(tables.partition_state(PARTITION)) == []


def test_many_session_ends_list_and_expire_without_reading_every_held_write(
    tmp_path: Path,
) -> None:
    """Sessions make one closed instance per end: a batch closing 3,000 of them lists
    and expires each from its own chunks, never a scan of every write the batch holds
    (which made closing and expiring them quadratic: 6,000 took 12 s)."""
    config = AggregationConfig(
        value_names=("x",),
        metrics=("count",),
        windows=(Sessions("session/10ms", 10),),
        lateness_ms=5_000,
        retention_ms=5,
    )
    count = 3_000
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(PARTITION)
        processor = PartitionProcessor(config, state, PARTITION, BUDGET)
        processor.apply([(i, Event(f"k{i}", i, (1.0,), {})) for i in range(count)])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        scans = 0
        held_keys = state.meta.held_keys

        def counted() -> list[str]:
            nonlocal scans
            scans += 1
            return held_keys()

        state.meta.held_keys = counted  # type: ignore[method-assign]
        # Far enough on that every session closes, and then expires, in this batch.
        closed = processor.apply([(count, Event("z", 2 * count + 5_100, (1.0,), {}))]).closed
        while processor.closing:
            closed += processor.close_step()
        assert sorted(result.key for result in closed) == sorted(f"k{i}" for i in range(count))
        assert scans == 0
        # Expired too: every result deleted, every listing gone.
        assert all(state.get_closed(f"k{i}", "session/10ms", i) is None for i in range(count))
        assert not processor.closing
        assert not processor._closed


def test_an_expired_listing_is_deleted_only_after_its_results_are(tmp_path: Path) -> None:
    """Each send of a store may reach some changelogs and not others (a crash, a failed
    partition). A listing deleted in the same send as its results could then be
    recovered deleted beside results still there, which no listing would name again:
    they would never expire. So every tombstone of a listing is in a later send than
    every tombstone of the results it names."""
    keys = KEYS[:5_000]
    sender = AcknowledgingSender()
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(PARTITION)
        processor = PartitionProcessor(CONFIG, state, PARTITION, None)
        processor.apply([(i, Event(key, 0, (0.1,), {})) for i, key in enumerate(keys)])
        processor.apply([(len(keys), Event("later", SIZE, (0.2,), {}))])  # closes [0, 10)
        asyncio.run(store_batch([state], sender))
        expiring = len(sender.sends)
        processor.apply([(len(keys) + 1, Event("later", SIZE + RETENTION, (0.3,), {}))])
        asyncio.run(store_batch([state], sender))
        assert all(state.get_closed(key, "10", 0) is None for key in keys)
        assert stored_meta_keys(state) == []

    def sends_with_tombstones(changelog: str, prefix: bytes) -> list[int]:
        return [
            index
            for index, send in enumerate(sender.sends[expiring:])
            for topic, _, key, value in send
            if topic.endswith(changelog) and key.startswith(prefix) and value is None
        ]

    results = sends_with_tombstones("closed-changelog", b"")
    listing = sends_with_tombstones("meta-changelog", b'"bucket')
    assert len(results) >= len(keys)
    assert listing
    assert min(listing) > max(results)
