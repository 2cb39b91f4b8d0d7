"""``PartitionState`` on Faust tables: RocksDB (rocksdict) stores with changelog topics.

The agent processes events in batches. Within a batch every write lands in a
write-back buffer, and reads see it; at the end of the batch each table's changes
go to the partition's RocksDB in one write batch and to its changelog topic as one
message per changed key. A key touched N times in a batch is written once.

Writing the partition's store and changelog directly (rather than through
``table[key] = value``) is what lets kappa write outside Faust's per-event context:
Faust's own table writes need a current event and cannot be made inside
``stream.take_events()`` (faust-streaming #497). The changelog messages are sent as
whole record batches by ``BatchSender``, not one by one through Faust's producer, and
the changelog offset Faust recovers from is recorded the way Faust records it, so
recovery, standbys and rebalances work as for any Faust table.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, Final

import orjson
import rocksdict
from faust.types import TP

from agents.aggregation import KeyRecord, Progress, WindowResult
from agents.batch_sender import BatchSender

SEP = "\x1f"  # cannot appear in JSON text keys users type, so composite keys stay unambiguous
_DELETED: Final = object()


class Encoded(bytes):
    """A value held already encoded (a window result whose bytes also go to the results
    topic): stored as it is, decoded when read back."""


# Faust's tables always use its "json" codec, which is orjson when orjson is installed
# (kappa depends on it) and then writes, for the JSON types kept here, the very bytes
# orjson.dumps does (tests/unit/test_state_codec.py): Faust's own reads (queries,
# recovery) decode what is written here. Calling orjson directly skips Faust's
# serializer registry on the hot path.
encode = orjson.dumps
decode = orjson.loads


def closed_key(key: str, window: str, start_ms: int) -> str:
    return f"{key}{SEP}{window}{SEP}{start_ms}"


class TableBuffer:
    """One partition of one Faust table, with writes held back until ``flush``."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.store = table.data
        self.partition = partition
        self.changelog: str = table.changelog_topic.get_topic_name()
        self.pending: dict[str, Any] = {}
        self._staged: rocksdict.WriteBatch | None = None

    def _db(self) -> Any:
        return self.store._db_for_partition(self.partition)

    def get(self, key: str) -> Any:
        value = self.pending.get(key, None)
        if value is not None:
            if isinstance(value, Encoded):
                return decode(value)
            return None if value is _DELETED else value
        raw = self._db().get(encode(key))
        return None if raw is None else decode(raw)

    def put(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def delete(self, key: str) -> None:
        self.pending[key] = _DELETED

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every stored item of the partition (pending writes excluded)."""
        offset_key = self.store.offset_key
        for raw_key, raw_value in self._db().items():
            if raw_key != offset_key:
                yield decode(raw_key), decode(raw_value)

    def stage(self, sender: BatchSender) -> None:
        """Queue the pending changes' changelog messages on ``sender``, and hold them as
        one RocksDB write batch until Kafka has acknowledged them (``commit``)."""
        if not self.pending:
            return
        changelog, partition = self.changelog, self.partition
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            raw_key = encode(key)
            if value is _DELETED:
                batch.delete(raw_key)
                sender.add(changelog, partition, raw_key, None)
            else:
                raw_value = value if isinstance(value, Encoded) else encode(value)
                batch.put(raw_key, raw_value)
                sender.add(changelog, partition, raw_key, raw_value)
        self._staged = batch
        self.pending.clear()

    def commit(self, acked: dict[tuple[str, int], int]) -> None:
        """Write the acknowledged changes to RocksDB, and record, as Faust does, how far
        the changelog holds them, so a restart on the same state dir recovers only what
        comes after. Written only once acknowledged, the local store never holds what
        its changelog lacks: a failed send leaves both as they were."""
        batch, self._staged = self._staged, None
        if batch is None:
            return
        self._db().write(batch)
        offset = acked.get((self.changelog, self.partition))
        if offset is not None:
            self.store.set_persisted_offset(TP(self.changelog, self.partition), offset)


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

    def get_progress(self) -> Progress | None:
        state = self.progress.get(f"progress/{self.partition}")
        return None if state is None else Progress.from_state(state)

    def put_progress(self, progress: Progress) -> None:
        self.progress.put(f"progress/{self.partition}", progress.to_state())

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
        return list(self.meta.get(f"bucket/{self.partition}/{bucket}") or [])

    def put_bucket_keys(self, bucket: str, keys: list[str]) -> None:
        self.meta.put(f"bucket/{self.partition}/{bucket}", keys)

    def delete_bucket_keys(self, bucket: str) -> None:
        self.meta.delete(f"bucket/{self.partition}/{bucket}")

    def iter_buckets(self) -> Iterator[str]:
        prefix = f"bucket/{self.partition}/"
        for key, _ in self.meta.items():
            if key.startswith(prefix):
                yield key[len(prefix) :]

    def iter_keys(self) -> Iterator[tuple[str, KeyRecord]]:
        """Every key record of this partition, read straight from its RocksDB store."""
        for key, state in self.keys.items():
            yield key, KeyRecord.from_state(state)


async def store_batch(states: Sequence[TablePartitionState], sender: BatchSender) -> None:
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
