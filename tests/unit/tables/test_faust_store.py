"""``tables.faust_store``: the codec and ``TableBuffer``.

kappa writes table keys and values with orjson directly; Faust reads them back with its
table codec, "json". The two must agree byte for byte on every kind of value kappa
stores.

``TableBuffer`` holds a partition's writes until they are staged on a changelog sender
and committed once acknowledged. It is tested on real Faust tables with real RocksDB
stores (``tests.support.stores``, no broker), and what it wrote is read back through
Faust's own store code: ``table.get``, ``Store.persisted_offset`` and the recovery's
``Store.apply_changelog_batch``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.serializers import codecs
from faust.types import TP

from tables.aggregates import Agg
from tables.faust_store import Appended, Encoded, TableBuffer, decode, encode
from tables.records import (
    KeyRecord,
    OpenWindow,
    PartitionProgress,
    SourceFence,
    closed_key,
    window_key,
)
from tests.support.stores import AcknowledgingSender, SendFailed, offline_tables


def _record() -> KeyRecord:
    totals = Agg.empty(2)
    for values in ([1.5, None], [-0.25, 3.0], [1e-300, 2.0**60]):
        totals.add(values)
    return KeyRecord(fence=SourceFence(41), totals=totals)


def _window() -> OpenWindow:
    agg = Agg.empty(2)
    agg.add([0.1, None])
    return OpenWindow(fence=SourceFence(40, {3: 7}), agg=agg)


VALUES: list[Any] = [
    _record().to_state(),
    KeyRecord(fence=SourceFence(0), totals=Agg.empty(1)).to_state(),
    _window().to_state(),
    PartitionProgress(max_event_ms=1_704_067_200_123, offset=99).to_state(),
    PartitionProgress().to_state(),
    PartitionProgress(max_event_ms=5, offset=-1, hop_offset=12).to_state(),
    {"key": "ü-ключ", "window": "1d/6h", "start_ms": -86_400_000, "final": True, "count": 3},
    ["c1", "c2", 'quote"d', "tab\tbed"],
    None,
]
KEYS = [
    "customer-1",
    "ü-ключ|7",
    closed_key("k", "1h", 1_704_067_200_000),
    window_key("1d/6h", -86_400_000, "ü-ключ"),
    "progress/3",
    "",
]


@pytest.mark.parametrize("value", VALUES)
def test_values_are_the_bytes_faust_writes_and_read_back(value: Any) -> None:
    assert encode(value) == codecs.dumps("json", value)
    assert codecs.loads("json", encode(value)) == decode(encode(value)) == value


@pytest.mark.parametrize("key", KEYS)
def test_keys_are_the_bytes_faust_writes_and_read_back(key: str) -> None:
    assert encode(key) == codecs.dumps("json", key)
    assert codecs.loads("json", encode(key)) == key


# --- TableBuffer ----------------------------------------------------------------------

PARTITION = 1


@pytest.fixture
def table(tmp_path: Path) -> Iterator[Any]:
    with offline_tables(tmp_path) as tables:
        yield tables.keys


def _changelog(table: Any) -> str:
    name: str = table.changelog_topic.get_topic_name()
    return name


def _persisted(table: Any) -> int | None:
    """How far the store holds its changelog, as Faust's recovery reads it."""
    offset: int | None = table.data.persisted_offset(TP(_changelog(table), PARTITION))
    return offset


async def _store(
    buffer: TableBuffer, sender: AcknowledgingSender
) -> dict[tuple[str, int], Appended]:
    """Stage, send and commit, as ``store_batch`` does for one buffer."""
    buffer.stage(sender)
    acked = await sender.send()
    buffer.commit(acked)
    return acked


def test_pending_writes_and_deletes_are_read_back_before_they_are_stored(table: Any) -> None:
    buffer = TableBuffer(table, PARTITION)
    buffer.put("a", [1, {"x": 2.5}])
    buffer.put("b", {"final": False})
    assert buffer.get("a") == [1, {"x": 2.5}]
    buffer.put("a", [2])
    assert buffer.get("a") == [2]  # the last write wins
    buffer.delete("b")
    assert buffer.get("b") is None
    assert buffer.get("never written") is None
    assert table.get("a") is None, "nothing reaches RocksDB before it is stored"
    assert list(buffer.items()) == []


def test_a_pending_encoded_value_is_read_back_decoded(table: Any) -> None:
    buffer = TableBuffer(table, PARTITION)
    buffer.put("b", Encoded(encode({"final": True})))
    assert buffer.get("b") == {"final": True}


def test_staged_writes_stay_readable_until_they_are_committed(table: Any) -> None:
    buffer = TableBuffer(table, PARTITION)
    sender = AcknowledgingSender()
    buffer.put("a", 1)
    buffer.stage(sender)
    buffer.commit(asyncio.run(sender.send()))
    buffer.put("a", 2)
    buffer.put("b", Encoded(encode({"final": True})))
    buffer.delete("c")
    buffer.stage(sender)  # sent, not acknowledged yet: not in RocksDB
    assert buffer.get("a") == 2  # not the stored 1
    assert buffer.get("b") == {"final": True}
    buffer.commit(asyncio.run(sender.send()))
    assert buffer.get("a") == 2
    assert TableBuffer(table, PARTITION).get("a") == 2  # now from RocksDB


async def test_a_stored_change_reaches_rocksdb_and_the_changelog_once_acknowledged(
    table: Any,
) -> None:
    buffer = TableBuffer(table, PARTITION)
    sender = AcknowledgingSender()
    buffer.put("a", [1, "ü"])
    buffer.put("b", Encoded(encode({"final": True})))
    buffer.stage(sender)
    # Staged: queued on the changelog as the bytes Faust's codec writes, not yet stored.
    changelog = _changelog(table)
    assert sorted(sender.queued) == [
        (changelog, PARTITION, codecs.dumps("json", "a"), codecs.dumps("json", [1, "ü"])),
        (changelog, PARTITION, codecs.dumps("json", "b"), codecs.dumps("json", {"final": True})),
    ]
    assert not buffer.pending
    assert table.get("a") is None
    assert _persisted(table) is None

    acked = await sender.send()
    buffer.commit(acked)
    assert table.get("a") == [1, "ü"]
    assert table.get("b") == {"final": True}  # an Encoded value is stored as it is
    assert acked[(changelog, PARTITION)] == Appended(0, 1, gapless=True)
    assert _persisted(table) == 1  # the last record stored
    assert sorted(buffer.items()) == [("a", [1, "ü"]), ("b", {"final": True})]
    assert buffer.get("b") == {"final": True}


async def test_a_delete_is_a_tombstone_on_the_changelog_and_removes_the_stored_value(
    table: Any,
) -> None:
    buffer = TableBuffer(table, PARTITION)
    sender = AcknowledgingSender()
    buffer.put("a", 1)
    buffer.put("b", 2)
    await _store(buffer, sender)  # changelog offsets 0 and 1
    buffer.delete("a")
    assert buffer.get("a") is None
    assert table.get("a") == 1, "a delete is held back like a write"
    acked = await _store(buffer, sender)
    assert sender.sends[-1] == [(_changelog(table), PARTITION, encode("a"), None)]
    assert table.get("a") is None
    assert dict(buffer.items()) == {"b": 2}
    assert _persisted(table) == acked[(_changelog(table), PARTITION)].last == 2


async def test_a_failed_send_leaves_the_store_as_it_was(table: Any) -> None:
    buffer = TableBuffer(table, PARTITION)
    buffer.put("a", 1)
    await _store(buffer, AcknowledgingSender())
    failing = AcknowledgingSender(fail_on=1)
    buffer.put("a", 2)
    buffer.put("b", 3)
    buffer.delete("a")
    buffer.stage(failing)
    with pytest.raises(SendFailed):
        await failing.send()
    # No commit follows a failed send: the store and its changelog offset are unchanged.
    assert dict(buffer.items()) == {"a": 1}
    assert table.get("b") is None
    assert _persisted(table) == 0


def test_a_commit_with_nothing_staged_writes_nothing(table: Any) -> None:
    buffer = TableBuffer(table, PARTITION)
    sender = AcknowledgingSender()
    buffer.stage(sender)  # nothing pending: nothing queued
    assert sender.queued == []
    buffer.commit({(_changelog(table), PARTITION): Appended(7, 7, gapless=True)})
    assert _persisted(table) is None
    assert list(buffer.items()) == []


async def test_the_partitions_of_a_table_are_apart(table: Any) -> None:
    sender = AcknowledgingSender()
    ours, other = TableBuffer(table, PARTITION), TableBuffer(table, 0)
    ours.put("a", 1)
    other.put("z", 26)
    assert other.get("a") is None
    for buffer in (ours, other):
        await _store(buffer, sender)
    assert dict(ours.items()) == {"a": 1}
    assert dict(other.items()) == {"z": 26}
    assert other.get("a") is None


async def test_the_recorded_offset_never_passes_records_another_worker_wrote(
    table: Any,
) -> None:
    """A worker frozen past its session timeout still thinks it owns the partition; when
    it resumes, its writes land after those of the worker that took over. Its store has
    not applied the other's records: were its recorded offset to move past them, its
    next recovery would start after them and skip them for good."""
    buffer = TableBuffer(table, PARTITION)
    sender = AcknowledgingSender()
    changelog = _changelog(table)
    buffer.put("a", 1)
    buffer.put("b", 1)
    await _store(buffer, sender)  # offsets 0-1
    assert _persisted(table) == 1
    assert buffer.foreign is None
    sender.foreign(changelog, PARTITION, [(encode("c"), encode(7))] * 3)  # offsets 2-4
    buffer.put("a", 2)
    acked = await _store(buffer, sender)
    assert acked[(changelog, PARTITION)] == Appended(5, 5, gapless=True)
    assert table.get("a") == 2  # stored all the same
    # Recovery starts at the recorded offset (Faust seeks there): offset 2 is read.
    assert _persisted(table) == 1
    assert buffer.foreign == (2, 5)


async def test_a_gap_inside_one_send_is_foreign_too(table: Any) -> None:
    """Another worker's records between two record batches of one send (``gapless`` is
    false): the store has not applied them either."""
    buffer = TableBuffer(table, PARTITION)
    buffer.put("a", 1)
    buffer.stage(AcknowledgingSender())
    buffer.commit({(_changelog(table), PARTITION): Appended(0, 9, gapless=False)})
    assert table.get("a") == 1
    assert _persisted(table) is None  # recovery reads the changelog from its start
    assert buffer.foreign == (0, 9)


async def test_the_changelog_rebuilds_the_same_store_through_fausts_recovery(
    tmp_path: Path,
) -> None:
    """A standby, or a worker whose state dir is gone, rebuilds a store from its changelog
    with Faust's ``apply_changelog_batch``: it must then hold what kappa wrote."""
    sender = AcknowledgingSender()
    with offline_tables(tmp_path / "written") as tables:
        written = tables.keys
        buffer = TableBuffer(written, PARTITION)
        for n in range(3):  # three stores: new keys, an overwritten one, a delete
            buffer.put(f"k{n}", [n, {"v": n / 3}])
            buffer.put("overwritten", n)
            if n == 2:
                buffer.delete("k0")
            await _store(buffer, sender)
        kept = dict(buffer.items())
        changelog = _changelog(written)
    with offline_tables(tmp_path / "recovered") as tables:
        recovered = tables.keys
        recovered.data.apply_changelog_batch(
            sender.changelog_events(changelog, PARTITION), to_key=lambda k: k, to_value=lambda v: v
        )
        rebuilt = dict(TableBuffer(recovered, PARTITION).items())
    assert rebuilt == kept == {"k1": [1, {"v": 1 / 3}], "k2": [2, {"v": 2 / 3}], "overwritten": 2}


async def test_every_store_of_the_tables_shares_one_rocksdb_memory_budget(
    tmp_path: Path,
) -> None:
    """Writes to any table partition's store fill the one write-buffer manager, whose
    memtables are charged to the one block cache; nothing goes past its capacity."""
    with offline_tables(tmp_path, partitions=2) as tables:
        budget = tables.rocksdb
        used = budget.memtables.get_usage()
        value = "x" * 1000
        for table, partition in [(tables.keys, 0), (tables.windows, 1), (tables.closed, 0)]:
            buffer = TableBuffer(table, partition)
            assert buffer.store.rocksdb_options.as_options() is not None
            for n in range(500):
                buffer.put(f"{table.name}-{n}", value)
            buffer.stage(AcknowledgingSender())
            buffer.commit({})
            assert budget.memtables.get_usage() > used, f"{table.name} uses another manager"
            used = budget.memtables.get_usage()
        assert used >= 3 * 500 * 1000
        assert budget.usage() >= used  # charged to the shared block cache
        assert budget.usage() <= budget.memtables.get_buffer_size() + 8 * 2**20 + 2**20
