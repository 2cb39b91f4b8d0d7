"""One partition's state on Faust tables (RocksDB stores with changelog topics).

The processor reads and writes a partition through the ``PartitionState`` protocol;
``TablePartitionState`` implements it on the ``keys``, ``closed`` and ``meta`` tables
(``tables.records`` has their key layout), and the unit tests with dicts. Within a batch
every write is held back (``TableBuffer``), and reads see it; ``store_batch`` then writes
each table's changes to the partition's RocksDB in one write batch and to its changelog
as one message per changed key: a key touched N times in a batch is written once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from tables.faust_store import ChangelogSender, Encoded, TableBuffer
from tables.records import (
    KeyRecord,
    PartitionProgress,
    WindowResult,
    bucket_keys_key,
    bucket_keys_prefix,
    closed_key,
    progress_key,
)


class PartitionState(Protocol):
    """Storage of one partition, as the processor sees it."""

    def get_key(self, key: str) -> KeyRecord | None: ...
    def put_key(self, key: str, record: KeyRecord) -> None: ...
    def get_progress(self) -> PartitionProgress | None: ...
    def put_progress(self, progress: PartitionProgress) -> None: ...
    def put_closed(self, result: WindowResult) -> None: ...
    def delete_closed(self, key: str, window: str, start_ms: int) -> None: ...
    def get_bucket_keys(self, bucket: str) -> list[str]: ...
    def put_bucket_keys(self, bucket: str, keys: list[str]) -> None: ...
    def delete_bucket_keys(self, bucket: str) -> None: ...
    def iter_keys(self) -> Iterator[tuple[str, KeyRecord]]: ...
    def iter_buckets(self) -> Iterator[str]: ...


class TablePartitionState:
    """One partition's view of the ``keys``, ``closed`` and ``meta`` tables."""

    def __init__(self, keys: Any, closed: Any, meta: Any, partition: int, cache: int) -> None:
        self.partition = partition
        self.keys = TableBuffer(keys, partition)
        self.closed = TableBuffer(closed, partition)
        self.meta = TableBuffer(meta, partition)
        # The partition's progress record lives in ``meta`` too, but is written last.
        self.progress = TableBuffer(meta, partition)
        # Decoded key records: the current batch's, so that a key is decoded and encoded
        # once per batch rather than once per event, and then up to ``cache`` of the most
        # recently used, so that a hot key is not read again from RocksDB every batch.
        # They are dropped with this object whenever the partition's store may have
        # changed without them (a failed batch, a revoked partition).
        self._records: dict[str, KeyRecord] = {}  # least recently used first
        self._cache = cache
        self._dirty: set[str] = set()

    def steps(self) -> list[list[TableBuffer]]:
        """The batch's writes, in an order that makes any prefix of them safe to crash
        after:

        1. closed windows and the keys of each closed window;
        2. the key records (a key record without a window implies its closed result);
        3. the progress record: watermark and checkpoint (it is never ahead of 1 and 2).
        """
        records = self._records
        for key in self._dirty:
            self.keys.put(key, records[key].to_state())
        self._dirty.clear()
        for key in list(itertools.islice(records, max(0, len(records) - self._cache))):
            del records[key]
        return [[self.closed, self.meta], [self.keys], [self.progress]]

    def held_changes(self) -> int:
        """Changes held until the next store: changed keys, closed and expired windows."""
        return len(self._dirty) + len(self.closed.pending) + len(self.meta.pending)

    def get_key(self, key: str) -> KeyRecord | None:
        records = self._records
        record = records.pop(key, None)
        if record is None:
            state = self.keys.get(key)
            if state is None:
                return None
            record = KeyRecord.from_state(state)
        records[key] = record  # now the most recently used
        return record

    def put_key(self, key: str, record: KeyRecord) -> None:
        self._records.pop(key, None)
        self._records[key] = record
        self._dirty.add(key)

    def get_progress(self) -> PartitionProgress | None:
        state = self.progress.get(progress_key(self.partition))
        return None if state is None else PartitionProgress.from_state(state)

    def put_progress(self, progress: PartitionProgress) -> None:
        self.progress.put(progress_key(self.partition), progress.to_state())

    def put_closed(self, result: WindowResult) -> None:
        self.closed.put(
            closed_key(result.key, result.window, result.start_ms), Encoded(result.encoded)
        )

    def delete_closed(self, key: str, window: str, start_ms: int) -> None:
        self.closed.delete(closed_key(key, window, start_ms))

    def get_closed(self, key: str, window: str, start_ms: int) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.closed.get(closed_key(key, window, start_ms))
        return result

    def get_bucket_keys(self, bucket: str) -> list[str]:
        return list(self.meta.get(bucket_keys_key(self.partition, bucket)) or [])

    def put_bucket_keys(self, bucket: str, keys: list[str]) -> None:
        self.meta.put(bucket_keys_key(self.partition, bucket), keys)

    def delete_bucket_keys(self, bucket: str) -> None:
        self.meta.delete(bucket_keys_key(self.partition, bucket))

    def iter_buckets(self) -> Iterator[str]:
        prefix = bucket_keys_prefix(self.partition)
        for key, _ in self.meta.items():
            if key.startswith(prefix):
                yield key[len(prefix) :]

    def iter_keys(self) -> Iterator[tuple[str, KeyRecord]]:
        """Every key record of this partition, read straight from its RocksDB store."""
        for key, state in self.keys.items():
            yield key, KeyRecord.from_state(state)


async def store_batch(states: Sequence[TablePartitionState], sender: ChangelogSender) -> None:
    """Store a batch's state changes, step by step (see ``TablePartitionState.steps``).

    Each step goes, for every partition at once, to the changelogs as one record batch
    per partition and, once Kafka has acknowledged it, to RocksDB in one write batch
    per store; then the next step starts.
    """
    for step in zip(*(state.steps() for state in states), strict=True):
        buffers = [buffer for group in step for buffer in group]
        for buffer in buffers:
            buffer.stage(sender)
        acked = await sender.send()
        for buffer in buffers:
            buffer.commit(acked)
