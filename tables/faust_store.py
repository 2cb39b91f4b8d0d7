"""The one module that reaches into Faust's table stores and recovery.

kappa writes a partition's RocksDB store and changelog directly (rather than through
``table[key] = value``), which is what lets it write outside Faust's per-event context:
Faust's own table writes need a current event and cannot be made inside
``stream.take_events()`` (faust-streaming #497). The changelog messages are sent as
whole record batches, not one by one through Faust's producer, and the changelog offset
Faust recovers from is recorded the way Faust records it, so recovery, standbys and
rebalances work as for any Faust table. Everything here depends on faust-streaming
0.11's store (``faust.stores.rocksdb.Store``) and recovery (``faust.tables.recovery``)
internals; a Faust upgrade is checked against this module and its tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, Protocol

import orjson
import rocksdict
from faust.types import TP

from tables import json_bytes


class ChangelogSender(Protocol):
    """Sends queued records as acknowledged batches (``agents.batch_sender.BatchSender``)."""

    def add(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None: ...

    async def send(self) -> dict[tuple[str, int], int]: ...


_DELETED: Final = object()


class Encoded(bytes):
    """A value held already encoded (a window result whose bytes also go to the results
    topic): stored as it is, decoded when read back."""


# Faust's tables always use its "json" codec, which is orjson when orjson is installed
# (kappa depends on it) and then writes, for the JSON types kept here, the very bytes
# orjson.dumps does (tests/unit/tables/test_faust_store.py): Faust's own reads (queries,
# recovery) decode what is written here. Calling orjson directly skips Faust's
# serializer registry on the hot path; its bytes are held compactly (tables.json_bytes).
encode = json_bytes.dumps
decode = orjson.loads


class TableBuffer:
    """One partition of one Faust table, with writes held back until ``flush``."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.store = table.data
        self.partition = partition
        self.changelog: str = table.changelog_topic.get_topic_name()
        self.pending: dict[str, Any] = {}
        self._staged: rocksdict.WriteBatch | None = None
        # The staged writes, readable until they are in RocksDB: between ``stage`` and
        # ``commit`` (while Kafka acknowledges) a read must not see the older value.
        self._staged_values: dict[str, Any] = {}

    def _db(self) -> Any:
        return self.store._db_for_partition(self.partition)

    def get(self, key: str) -> Any:
        value = self.pending.get(key, None)
        if value is None and self._staged_values:
            value = self._staged_values.get(key, None)
        if value is not None:
            if isinstance(value, Encoded):
                return decode(bytes(value))  # orjson takes bytes, not a subclass
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

    def range_items(self, lo: str, hi: str) -> Iterator[tuple[str, Any]]:
        """The stored items (pending writes excluded) whose keys' JSON text sorts in
        [``lo``, ``hi``): one seek and a scan of the store, which keeps its keys in the
        byte order of their JSON text (keys built to sort so, as ``tables.records``'
        window keys, give their own order)."""
        low, high = encode(lo)[:-1], encode(hi)[:-1]  # without the closing quote
        for raw_key, raw_value in self._db().items(from_key=low):
            if raw_key >= high:
                return
            yield decode(raw_key), decode(raw_value)

    def count(self) -> int:
        """The number of stored items, read from the store's keys alone."""
        offset_key = self.store.offset_key
        # keys(), not the store itself: a raw-mode Rdict cannot be iterated directly.
        return sum(1 for raw_key in self._db().keys() if raw_key != offset_key)  # noqa: SIM118

    def stage(self, sender: ChangelogSender) -> None:
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
        self._staged_values, self.pending = self.pending, {}

    def commit(self, acked: dict[tuple[str, int], int]) -> None:
        """Write the acknowledged changes to RocksDB, and record, as Faust does, how far
        the changelog holds them, so a restart on the same state dir recovers only what
        comes after. Written only once acknowledged, the local store never holds what
        its changelog lacks: a failed send leaves both as they were."""
        batch, self._staged = self._staged, None
        if batch is None:
            return
        self._db().write(batch)
        self._staged_values = {}
        offset = acked.get((self.changelog, self.partition))
        if offset is not None:
            self.store.set_persisted_offset(TP(self.changelog, self.partition), offset)


def remaining_by_changelog(app: Any) -> dict[tuple[str, int], int]:
    """Changelog records still to read, per (changelog topic, partition), for the
    partitions this worker owns; only those with records left."""
    active = app.tables.recovery.active_remaining()
    return {(tp.topic, tp.partition): n for tp, n in sorted(active.items()) if n > 0}


def standby_remaining(app: Any) -> int:
    """Changelog records still to read for this worker's standby replicas."""
    return sum(max(n, 0) for n in app.tables.recovery.standby_remaining().values())


def recovery_eta_s(app: Any, remaining: int) -> float | None:
    """Faust's own estimate of the seconds left to recover ``remaining`` records, from
    the time it has taken per changelog record so far."""
    eta: float | None = app.tables.recovery._estimated_active_remaining_secs(remaining)
    return eta
