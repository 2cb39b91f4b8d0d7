"""``TablePartitionState`` on real Faust tables and RocksDB stores (no broker): reads see
the batch's writes, ``store_batch`` stores them in its ordered, acknowledged steps, and the
key cache keeps the most recently used records, at most as many bytes as it is told.

What was stored is read back through Faust's own table reads, not through kappa's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pytest

from tables.aggregates import Agg
from tables.faust_store import encode
from tables.partition_state import (
    ClaimedAway,
    StoredCounts,
    TablePartitionState,
    decoded_bytes,
    store_batch,
)
from tables.pipeline_tables import PipelineTables
from tables.records import (
    KeyRecord,
    OpenWindow,
    PartitionProgress,
    SourceFence,
    WindowResult,
    bucket_chunk_key,
    bucket_keys_key,
    closed_key,
    progress_key,
    window_key,
)
from tests.support.stores import AcknowledgingSender, offline_tables

PARTITION = 1
HOUR_MS = 3_600_000


class Tables:
    """The pipeline's tables, and what Faust's own reads find in them."""

    def __init__(self, tables: PipelineTables) -> None:
        self.tables = tables
        self.keys, self.closed, self.meta = tables.keys, tables.closed, tables.meta
        self.windows = tables.windows

    def state(self, cache_bytes: int = 50_000) -> TablePartitionState:
        """A partition's state keeping up to ``cache_bytes`` of decoded key records."""
        return dataclasses.replace(self.tables, key_cache_bytes=cache_bytes).partition_state(
            PARTITION
        )

    def stored_key(self, key: str) -> KeyRecord | None:
        """A key's record as Faust's table read finds it in RocksDB."""
        state = self.keys.get(key)
        return None if state is None else KeyRecord.from_state(state)

    def changelog(self, name: str) -> str:
        topic: str = getattr(self, name).changelog_topic.get_topic_name()
        return topic


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[Tables]:
    with offline_tables(tmp_path) as tables:
        yield Tables(tables)


def record(fence: int, *amounts: float) -> KeyRecord:
    totals = Agg.empty(1)
    for amount in amounts:
        totals.add([amount])
    return KeyRecord(fence=SourceFence(fence), totals=totals)


def result(key: str, start_ms: int) -> WindowResult:
    return WindowResult(key, "1h", start_ms, start_ms + HOUR_MS, True, {"count": 2})


def test_reads_see_the_batchs_writes_before_they_are_stored(tables: Tables) -> None:
    state = tables.state()
    assert state.get_key("a") is None
    assert state.get_progress() is None
    a = record(5, 1.25)
    state.put_key("a", a)
    state.put_progress(PartitionProgress(max_event_ms=1_000, offset=5))
    state.add_bucket_keys("1h@0", ["a", "b"])
    assert state.get_key("a") is a
    assert state.get_progress() == PartitionProgress(max_event_ms=1_000, offset=5)
    assert state.take_bucket_chunk("1h@0") == ["a", "b"]
    assert state.take_bucket_chunk("1h@0") is None
    assert list(state.iter_buckets()) == []
    assert tables.stored_key("a") is None
    assert tables.meta.get(progress_key(PARTITION)) is None


async def test_the_closed_buckets_are_read_from_their_own_keys_only(tables: Tables) -> None:
    state = tables.state()
    for bucket in ("1h@0", "1d/1h@-3600000", "1h@7200000"):
        state.add_bucket_keys(bucket, ["a", "b"])
    state.put_closed_through("1h", 0)
    state.put_progress(PartitionProgress(max_event_ms=HOUR_MS, offset=3))
    await store_batch([state], AcknowledgingSender())
    # Another partition's buckets and meta records, before and after this one's in the store.
    for partition in (PARTITION - 1, PARTITION + 1, 10 * PARTITION):
        other = tables.tables.partition_state(partition)
        other.add_bucket_keys(f"1h@{partition}", ["c"])
        other.put_closed_through("1h", partition)
        await store_batch([other], AcknowledgingSender())

    assert sorted(tables.state().iter_buckets()) == ["1d/1h@-3600000", "1h@0", "1h@7200000"]


async def test_store_batch_writes_every_table_where_faust_reads_it(tables: Tables) -> None:
    state = tables.state()
    state.put_key("a", record(7, 2.5, 0.1))
    closed = result("a", 0)
    state.put_closed(closed)
    state.add_bucket_keys("1h@0", ["a"])
    state.put_progress(PartitionProgress(max_event_ms=HOUR_MS + 600_000, offset=7))
    await store_batch([state], AcknowledgingSender())

    stored = tables.stored_key("a")
    assert stored is not None
    assert stored.to_state() == record(7, 2.5, 0.1).to_state()
    assert tables.closed.get(closed_key("a", "1h", 0)) == closed.as_json()
    assert tables.meta.get(bucket_keys_key(PARTITION, "1h@0")) == []
    assert tables.meta.get(bucket_chunk_key(PARTITION, "1h@0", 0)) == ["a"]
    assert tables.meta.get(progress_key(PARTITION)) == [HOUR_MS + 600_000, 7]
    # A fresh view of the partition (as after a restart) reads it all from RocksDB.
    again = tables.state()
    assert again.get_closed("a", "1h", 0) == closed.as_json()
    assert list(again.iter_buckets()) == ["1h@0"]
    assert again.count_stored().result().keys == 1
    again_a = again.get_key("a")
    assert again_a is not None
    assert again_a.to_state() == stored.to_state()
    assert again.get_progress() == PartitionProgress(max_event_ms=HOUR_MS + 600_000, offset=7)


async def test_a_key_written_many_times_in_a_batch_is_one_changelog_message(
    tables: Tables,
) -> None:
    state = tables.state()
    sender = AcknowledgingSender()
    for fence in range(10):
        rec = state.get_key("a") or record(fence)
        rec.fence = SourceFence(fence)
        rec.totals.add([float(fence)])
        state.put_key("a", rec)
    assert state.held_changes() == 1
    await store_batch([state], sender)
    keys_changelog = tables.changelog("keys")
    messages = [m for sent in sender.sends for m in sent if m[0] == keys_changelog]
    assert messages == [(keys_changelog, PARTITION, encode("a"), encode(rec.to_state()))]
    assert state.held_changes() == 0


async def test_the_key_cache_keeps_the_most_recent_records_within_its_bytes(
    tables: Tables,
) -> None:
    one = decoded_bytes(record(0, 0.5))
    state = tables.state(cache_bytes=3 * one + one // 2)  # room for three records
    for n in range(10):
        state.put_key(f"k{n}", record(n, n + 0.5))
    assert state.held_bytes() == 10 * one
    await store_batch([state], AcknowledgingSender())
    assert state.keys.decoded() == 3
    assert state.held_bytes() == 0
    assert state.get_key("k9") is not None  # from the cache or RocksDB alike
    assert state.get_key("k0") is not None
    assert state.keys.decoded() == 4  # k0 read back from RocksDB, until the next store


def window(fence: int, *amounts: float) -> OpenWindow:
    agg = Agg.empty(1)
    for amount in amounts:
        agg.add([amount])
    return OpenWindow(fence=SourceFence(fence), agg=agg)


def closing_batch(state: TablePartitionState) -> None:
    """A batch that updates key a's window [0, 1h), closes it, and opens [1h, 2h)."""
    state.put_window("1h", 0, "a", window(3, 1.5))
    state.put_window("1h", HOUR_MS, "a", window(3, 2.5))
    state.put_closed(result("a", 0))
    assert list(state.take_panes("1h", 0, 0)[0]) == [0]
    state.add_bucket_keys("1h@0", ["a"])
    state.put_key("a", record(3))
    state.put_progress(PartitionProgress(max_event_ms=0, offset=3))


async def test_the_steps_are_closed_and_open_windows_keys_deletions_then_progress(
    tables: Tables,
) -> None:
    state = tables.state()
    sender = AcknowledgingSender()
    closing_batch(state)
    await store_batch([state], sender)
    topics = [[topic for topic, *_ in sent] for sent in sender.sends]
    # Step 2's meta records: the closed bucket's own, and its first chunk of keys.
    assert [sorted(step) for step in topics] == [
        sorted([tables.changelog(n) for n in ("closed", "meta", "meta", "windows", "windows")]),
        [tables.changelog("keys")],
        [tables.changelog("windows")],
        [tables.changelog("meta")],
    ]
    # The closed window's whole record is written before it is deleted.
    windows = tables.changelog("windows")
    first = {key: value for topic, _, key, value in sender.sends[0] if topic == windows}
    assert first[encode(window_key("1h", 0, "a"))] == encode(window(3, 1.5).to_state())
    assert sender.sends[2] == [(windows, PARTITION, encode(window_key("1h", 0, "a")), None)]
    assert tables.windows.get(window_key("1h", 0, "a")) is None
    assert tables.windows.get(window_key("1h", HOUR_MS, "a")) == window(3, 2.5).to_state()


async def test_a_step_with_nothing_to_write_sends_nothing(tables: Tables) -> None:
    state = tables.state()
    sender = AcknowledgingSender()
    state.put_key("a", record(3))
    state.put_progress(PartitionProgress(max_event_ms=0, offset=3))
    await store_batch([state], sender)
    assert [len(sent) for sent in sender.sends] == [1, 1]


async def test_closing_takes_one_range_of_the_store_and_the_batchs_windows(
    tables: Tables,
) -> None:
    """One range of the window-major store, by start, with the batch's changes read over
    it: other windows and later starts are left; what is taken is deleted at the store,
    and the next closing starts where this one stopped."""
    state = tables.state()
    state.put_window("1h", -HOUR_MS, "a", window(1, 1.0))
    state.put_window("1h", 0, "b", window(2, 2.0))
    state.put_window("1h", 0, "c", window(3, 3.0))
    state.put_window("1h", HOUR_MS, "a", window(4, 4.0))
    state.put_window("1h/15m", 0, "a", window(5, 5.0))
    state.put_window("1", 0, "a", window(6, 6.0))
    await store_batch([state], AcknowledgingSender())
    assert state.count_stored().result().open_windows == 6
    state.put_window("1h", 0, "b", window(7, 2.0, 7.0))
    state.put_window("1h", 0, "d", window(8, 8.0))

    def fences(found: dict[int, dict[str, OpenWindow]]) -> dict[int, dict[str, int]]:
        return {start: {k: w.fence.own for k, w in keys.items()} for start, keys in found.items()}

    assert fences(state.take_panes("1h", 0, 0)[0]) == {
        -HOUR_MS: {"a": 1},
        0: {"b": 7, "c": 3, "d": 8},
    }
    assert state.get_window("1h", 0, "b") is None
    assert fences(state.take_panes("1h", 0, 0)[0]) == {}
    state.put_window("1h", 2 * HOUR_MS, "e", window(9, 9.0))
    assert fences(state.take_panes("1h", 2 * HOUR_MS, 2 * HOUR_MS)[0]) == {
        HOUR_MS: {"a": 4},
        2 * HOUR_MS: {"e": 9},
    }
    await store_batch([state], AcknowledgingSender())
    assert state.count_stored().result().open_windows == 2  # 1h/15m and 1 are left
    assert tables.windows.get(window_key("1h", 0, "b")) is None


async def test_taking_panes_reads_past_the_expiry_bound_and_keeps_those_panes(
    tables: Tables,
) -> None:
    """Panes up to ``read_to`` are read, only those up to ``expire_to`` deleted; the kept
    ones, stored or changed in the batch, are read again by the next taking."""
    state = tables.state()
    state.put_window("1d/1h", 0, "a", window(1, 1.0))
    state.put_window("1d/1h", HOUR_MS, "a", window(2, 2.0))
    await store_batch([state], AcknowledgingSender())
    state.put_window("1d/1h", 2 * HOUR_MS, "b", window(3, 3.0))

    def fences(found: dict[int, dict[str, OpenWindow]]) -> dict[int, dict[str, int]]:
        return {start: {k: w.fence.own for k, w in keys.items()} for start, keys in found.items()}

    assert fences(state.take_panes("1d/1h", 2 * HOUR_MS, 0)[0]) == {
        0: {"a": 1},
        HOUR_MS: {"a": 2},
        2 * HOUR_MS: {"b": 3},
    }
    assert state.get_window("1d/1h", 0, "a") is None
    assert fences(state.take_panes("1d/1h", 2 * HOUR_MS, HOUR_MS)[0]) == {
        HOUR_MS: {"a": 2},
        2 * HOUR_MS: {"b": 3},
    }
    await store_batch([state], AcknowledgingSender())
    assert tables.windows.get(window_key("1d/1h", HOUR_MS, "a")) is None
    assert tables.windows.get(window_key("1d/1h", 2 * HOUR_MS, "b")) == window(3, 3.0).to_state()
    assert state.count_stored().result().open_windows == 1


async def test_a_window_newer_than_any_stored_is_read_from_memory_only(
    tables: Tables,
) -> None:
    """A window whose start is past every stored one of its window is not read from
    RocksDB (``get(..., may_be_stored=False)``); the bound, read from the store once,
    rises with each store, so a record stored since is found again once the cache has
    dropped it, and a new state over the same store finds every stored record, whatever
    window names share a prefix."""

    def stored_as(found: OpenWindow | None) -> object:
        return None if found is None else found.to_state()

    state = tables.state(cache_bytes=0)  # nothing kept decoded after a store
    assert state.get_window("1h", 0, "a") is None
    state.put_window("1h", 0, "a", window(1, 1.0))
    state.put_window("1", 5 * HOUR_MS, "a", window(2, 2.0))
    assert stored_as(state.get_window("1h", 0, "a")) == window(1, 1.0).to_state()
    await store_batch([state], AcknowledgingSender())
    state.put_window("1h", HOUR_MS, "b", window(3, 3.0))
    await store_batch([state], AcknowledgingSender())
    assert stored_as(state.get_window("1h", 0, "a")) == window(1, 1.0).to_state()
    assert stored_as(state.get_window("1h", HOUR_MS, "b")) == window(3, 3.0).to_state()
    assert state.get_window("1h", HOUR_MS, "a") is None
    assert state.get_window("1h", 2 * HOUR_MS, "b") is None
    restarted = tables.state(cache_bytes=0)
    assert stored_as(restarted.get_window("1h", HOUR_MS, "b")) == window(3, 3.0).to_state()
    assert stored_as(restarted.get_window("1", 5 * HOUR_MS, "a")) == window(2, 2.0).to_state()
    assert restarted.get_window("1h/15m", 0, "a") is None


class HeldExecutor(Executor):
    """Runs what it is given only when told (``run``): a count that takes its time."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.held.append((future, lambda: fn(*args, **kwargs)))
        return future

    def run(self) -> None:
        for future, call in self.held:
            future.set_result(call())


async def test_the_stored_counts_are_of_the_store_when_asked_not_when_counted(
    tables: Tables,
) -> None:
    """A restarted partition's keys are counted beside the event loop while the worker
    goes on storing: keys and windows stored meanwhile are the processor's to count (it
    adds them as they come), so they must not be in the stored count too."""
    state = tables.state()
    for key in ("a", "b", "c"):
        state.put_key(key, record(1, 1.0))
    state.put_window("1h", 0, "a", window(1, 1.0))
    await store_batch([state], AcknowledgingSender())
    counting = HeldExecutor()
    counts = state.count_stored(counting)
    state.put_key("d", record(2, 2.0))
    state.put_window("1h", 0, "d", window(2, 2.0))
    state.put_window("1h", HOUR_MS, "a", window(3, 3.0))
    await store_batch([state], AcknowledgingSender())
    assert not counts.done()
    counting.run()
    assert counts.result() == StoredCounts(keys=3, open_windows=1)
    assert tables.state().count_stored().result() == StoredCounts(keys=4, open_windows=3)


async def test_a_step_after_another_workers_claim_reaches_no_rocksdb(
    tables: Tables, tmp_path: Path
) -> None:
    """A worker that was out of the group stores a batch after another worker claimed
    its partition: the changelog's readers skip those records, so the store raises
    before any of them reaches this worker's RocksDB."""
    log = AcknowledgingSender()
    await tables.tables.keys.data.claim([PARTITION], log.append)
    state = tables.state()
    state.put_key("a", record(1, 1.0))
    await store_batch([state], log, log)
    with offline_tables(tmp_path / "successor", app_id=tables.keys.app.conf.id) as successor:
        await successor.keys.data.claim([PARTITION], log.append)
    state.put_key("a", record(2, 2.0))
    state.put_key("b", record(2, 2.0))
    with pytest.raises(ClaimedAway, match="another worker claimed state partition"):
        await store_batch([state], log, log)
    fresh = tables.state()
    assert fresh.get_key("b") is None
    stored = fresh.get_key("a")
    assert stored is not None
    assert stored.to_state() == record(1, 1.0).to_state()
