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

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
import rocksdict
from aiokafka import TopicPartition
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP

from tables import json_bytes
from tables.claims import (
    OWNER_KEY,
    admitted,
    claim_key,
    claimed_by,
    last_claim,
    new_token,
    writer_headers,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Appended:
    """Where one send's records landed in a topic partition: the offsets of its first
    and last, and whether they are all there is between them (``gapless``: nobody
    else's record came in between)."""

    first: int
    last: int
    gapless: bool

    def follows(self, after: int) -> bool:
        """Whether these records alone start at offset ``after``, nothing between."""
        return self.gapless and self.first == after


class ChangelogSender(Protocol):
    """Sends queued records as acknowledged batches (``agents.batch_sender.BatchSender``)."""

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None: ...

    async def send(self) -> dict[tuple[str, int], Appended]: ...


class RecordAppender(Protocol):
    """Appends one record to a topic partition and waits for Kafka to acknowledge it."""

    async def __call__(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> None: ...


class ChangelogReader(Protocol):
    """Reads a range of a changelog partition (``agents.gap_reader.GapReader``)."""

    def read(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[list[Any]]:
        """The records with ``start <= offset < end``, a fetch at a time."""
        ...


# Rounds of rewriting before a store gives up until its next write: each round finds only
# what the other worker wrote during the previous one, and that worker stops at its next
# commit, which the group refuses.
REWRITE_ROUNDS = 5


_DELETED: Final = object()
# How long a claim (or a rewrite of skipped keys) may wait for Kafka's acknowledgement.
APPEND_TIMEOUT_S = 30.0


class ClaimStalled(Exception):
    """A changelog record a rebalance must write was not acknowledged in time."""


def _stalled(topic: str, partition: int) -> ClaimStalled:
    return ClaimStalled(
        f"changelog {topic}[{partition}]: a record this worker must write before it "
        f"recovers the partition (its claim) could not be written within "
        f"{APPEND_TIMEOUT_S:.0f} s; check that every partition of the pipeline's changelog "
        "topics has a live leader (kafka-topics --describe). The worker stops, so that its "
        "partitions can go to one that can write them"
    )


# A claim's value: never null, which compaction would read as a deletion.
CLAIM_VALUE = b"{}"


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


def _json_bounds(lo: str, hi: str) -> tuple[bytes, bytes]:
    """The raw keys bounding the stored keys whose JSON text sorts in [``lo``, ``hi``)."""
    return encode(lo)[:-1], encode(hi)[:-1]  # without the closing quote


class TableBuffer:
    """One partition of one Faust table, with writes held back until ``flush``."""

    def __init__(self, table: Any, partition: int) -> None:
        self.table = table
        self.store = table.data
        self.partition = partition
        self.changelog: str = table.changelog_topic.get_topic_name()
        self.pending: dict[str, Any] = {}
        # The bytes of the encoded values among ``pending`` (a key put twice counts twice).
        self.pending_bytes = 0
        self._staged: rocksdict.WriteBatch | None = None
        # The staged writes, readable until they are in RocksDB: between ``stage`` and
        # ``commit`` (while Kafka acknowledges) a read must not see the older value.
        self._staged_values: dict[str, Any] = {}
        # The changelog range (first and last offset) that may hold another worker's
        # records, after this store's last ``commit``; None when it holds only its own.
        self.foreign: tuple[int, int] | None = None
        # The claim token the staged records carry (None: the partition is not claimed).
        self._token: bytes | None = None

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
        if isinstance(value, Encoded):
            self.pending_bytes += len(value)

    def delete(self, key: str) -> None:
        self.pending[key] = _DELETED

    def held_keys(self) -> list[str]:
        """The keys of the writes not in RocksDB yet (pending or staged): with
        ``range_items``, every key there may be; ``get`` reads each as it stands."""
        return [*self.pending, *self._staged_values]

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every stored item of the partition (pending writes excluded)."""
        offset_key = self.store.offset_key
        for raw_key, raw_value in self._db().items():
            if raw_key != offset_key and raw_key != OWNER_KEY:
                yield decode(raw_key), decode(raw_value)

    def range_items(self, lo: str, hi: str) -> Iterator[tuple[str, Any]]:
        """The stored items (pending writes excluded) whose keys' JSON text sorts in
        [``lo``, ``hi``): one seek and a scan of the store, which keeps its keys in the
        byte order of their JSON text (keys built to sort so, as ``tables.records``'
        window keys, give their own order)."""
        low, high = _json_bounds(lo, hi)
        for raw_key, raw_value in self._db().items(from_key=low):
            if raw_key >= high:
                return
            yield decode(raw_key), decode(raw_value)

    def last_key(self, lo: str, hi: str) -> str | None:
        """The greatest stored key (pending writes excluded) whose JSON text sorts in
        [``lo``, ``hi``): one backward seek."""
        low, high = _json_bounds(lo, hi)
        for raw_key in self._db().keys(backwards=True, from_key=high):
            if raw_key >= high:
                continue  # the seek lands on ``high`` itself when it is stored
            return decode(raw_key) if raw_key >= low else None
        return None

    def range_keys(self, lo: str, hi: str) -> Iterator[str]:
        """The keys of ``range_items``, without reading their values."""
        low, high = _json_bounds(lo, hi)
        for raw_key in self._db().keys(from_key=low):
            if raw_key >= high:
                return
            yield decode(raw_key)

    def keys_after(self, bound: bytes | None) -> Iterator[bytes]:
        """The stored keys (pending writes excluded) after ``bound`` (from the first, for
        None) in RocksDB's order, the byte order of their JSON text: one seek, then a
        scan as far as the caller reads."""
        hidden = (self.store.offset_key, OWNER_KEY)
        db = self._db()
        for raw_key in db.keys() if bound is None else db.keys(from_key=bound):
            if raw_key != bound and raw_key not in hidden:
                yield raw_key

    def counter(self) -> Callable[[], int]:
        """A count of the items stored now, to run later (in a thread): a RocksDB
        iterator reads the store as it was when the iterator was made, so writes made
        meanwhile are not in it. (rocksdict's ``Snapshot.keys`` reads the live store.)"""
        offset_key, keys = self.store.offset_key, self._db().iter()

        def count() -> int:
            counted = 0
            keys.seek_to_first()
            while keys.valid():
                counted += keys.key() not in (offset_key, OWNER_KEY)
                keys.next()
            return counted

        return count

    def stage(self, sender: ChangelogSender) -> None:
        """Queue the pending changes' changelog messages on ``sender``, and hold them as
        one RocksDB write batch until Kafka has acknowledged them (``commit``)."""
        if not self.pending:
            return
        changelog, partition = self.changelog, self.partition
        self._token = self.store.tokens.get(partition)
        headers = writer_headers(self._token)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            raw_key = encode(key)
            if value is _DELETED:
                batch.delete(raw_key)
                sender.add(changelog, partition, raw_key, None, headers)
            else:
                raw_value = value if isinstance(value, Encoded) else encode(value)
                batch.put(raw_key, raw_value)
                sender.add(changelog, partition, raw_key, raw_value, headers)
        self._staged = batch
        self._staged_values, self.pending = self.pending, {}
        self.pending_bytes = 0

    def commit(self, acked: dict[tuple[str, int], Appended]) -> None:
        """Write the acknowledged changes to RocksDB, and record, as Faust does, how far
        the changelog holds them, so a restart on the same state dir recovers only what
        comes after. Written only once acknowledged, the local store never holds what
        its changelog lacks: a failed send leaves both as they were.

        The recorded offset moves only over a gapless run of this store's own records
        right after it. Records from elsewhere in between (another worker's, while one of
        the two was frozen past its session and still thought the partition its own)
        are left to ``rewrite_foreign``: moving past them would make the next recovery
        on this state dir skip them for good."""
        batch, self._staged = self._staged, None
        if batch is None:
            return
        self._db().write(batch)
        self._staged_values = {}
        appended = acked.get((self.changelog, self.partition))
        if appended is not None:
            self._advance(appended, self._recorded() + 1)

    def _recorded(self) -> int:
        """The last changelog offset this store is recorded as holding (-1: none)."""
        held = self.store.persisted_offset(TP(self.changelog, self.partition))
        return -1 if held is None else int(held)

    def _advance(self, appended: Appended, after: int) -> bool:
        """Record the changelog as held up to ``appended``'s last record if nothing but
        this store's records came from ``after`` on; else note the range to rewrite."""
        if appended.follows(after):
            self.store.set_persisted_offset(TP(self.changelog, self.partition), appended.last)
            self.foreign = None
            return True
        self.foreign = (after, appended.last)
        return False

    async def foreign_keys(self, reader: ChangelogReader) -> set[bytes]:
        """The keys of every record in the ``foreign`` range."""
        assert self.foreign is not None
        first, last = self.foreign
        keys: set[bytes] = set()
        async for records in reader.read(self.changelog, self.partition, first, last + 1):
            keys.update(record.key for record in records if claimed_by(record.key) is None)
        return keys

    async def fenced_out(
        self, acked: dict[tuple[str, int], Appended], reader: ChangelogReader
    ) -> bool:
        """Whether the records just acknowledged came after another worker claimed the
        partition (``tables.claims``): readers of the changelog skip them, so they must
        not reach this store's RocksDB either. Read only when something else came
        between this store's recorded offset and them."""
        appended = acked.get((self.changelog, self.partition))
        if appended is None or self._token is None:
            return False
        after = self._recorded() + 1
        if appended.follows(after):
            return False
        owner = None
        async for records in reader.read(self.changelog, self.partition, after, appended.first):
            owner = last_claim(records) or owner
        if owner is None:  # no claim since the recorded offset: the one this store read
            owner = self._db().get(OWNER_KEY)
        return owner is not None and owner != self._token

    def stage_rewrite(self, sender: ChangelogSender, keys: set[bytes]) -> None:
        """Queue each key's stored value (a tombstone where none is stored), so that it
        is the changelog's last record of the key."""
        db = self._db()
        headers = writer_headers(self.store.tokens.get(self.partition))
        for raw_key in sorted(keys):
            sender.add(self.changelog, self.partition, raw_key, db.get(raw_key), headers)

    def rewritten(self, acked: dict[tuple[str, int], Appended]) -> bool:
        """Whether the rewrite just acknowledged was the last record after the
        ``foreign`` range; if so the changelog, read to its end, gives this store's
        values again, and the recorded offset moves past it all."""
        assert self.foreign is not None
        _, last = self.foreign
        appended = acked.get((self.changelog, self.partition))
        if appended is None:  # no keys: the range held nothing this store must answer
            self.store.set_persisted_offset(TP(self.changelog, self.partition), last)
            self.foreign = None
            return True
        return self._advance(appended, last + 1)


async def rewrite_foreign(
    buffers: Sequence[TableBuffer], sender: ChangelogSender, reader: ChangelogReader
) -> None:
    """Make each buffer's changelog end with its store's values again, after another
    worker's records: read the keys of those records and write this store's value of
    each after them.

    Two workers can write one state partition at once: one frozen past its session
    timeout, resumed, stores the batch it was in before it learns that the partition
    moved (its commit is then refused). Each record of the changelog is one key's whole
    value, so a recovery, which takes the last record of each key, would mix the two
    workers' states, counting events twice or losing them. Both workers rewrite what
    the other wrote in between; whichever writes last leaves the changelog equal to its
    own store, which is consistent (its progress record with its key records), and a
    recovery reads on from that progress."""
    pending = {(b.changelog, b.partition): b for b in buffers if b.foreign is not None}
    for _ in range(REWRITE_ROUNDS):
        if not pending:
            return
        for buffer in pending.values():
            assert buffer.foreign is not None
            first, last = buffer.foreign
            keys = await buffer.foreign_keys(reader)
            log.warning(
                "changelog %s[%d]: offsets %d-%d hold records another worker wrote to "
                "this state partition (one of the two was fenced out of the group while "
                "it thought the partition its own); writing this worker's values of the %d "
                "keys recorded there again after them",
                buffer.changelog,
                buffer.partition,
                first,
                last,
                len(keys),
            )
            buffer.stage_rewrite(sender, keys)
        acked = await sender.send()
        pending = {tp: b for tp, b in pending.items() if not b.rewritten(acked)}
    for buffer in pending.values():
        log.warning(
            "changelog %s[%d] is still being written by another worker after %d rounds "
            "of rewriting; its recorded offset stays, and its next store rewrites again",
            buffer.changelog,
            buffer.partition,
            REWRITE_ROUNDS,
        )


class RocksDBBudget:
    """The memory RocksDB may take in one worker, shared by all its stores (every table
    partition): one block cache for data, index and filter blocks, and one write-buffer
    manager for the memtables, whose memory is charged to that cache. Faust opens each
    store with a cache of its own (2 GiB by default), so a worker's RocksDB memory grew
    with its partitions and, with index and filter blocks kept outside any cache, with
    its keys."""

    def __init__(self, block_cache_bytes: int, memtables_bytes: int) -> None:
        self.cache = rocksdict.Cache(block_cache_bytes + memtables_bytes)
        self.memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memtables_bytes, False, self.cache
        )

    def usage(self) -> int:
        """Bytes held now: cached blocks and memtables."""
        return self.cache.get_usage()


class BudgetedRocksDBOptions(faust_rocksdb.RocksDBOptions):
    """Faust's rocksdict options, with the worker's shared ``RocksDBBudget`` (given as the
    table option ``budget``) in place of a cache per store."""

    def as_options(self) -> rocksdict.Options:
        budget: RocksDBBudget | None = self.extra_options.get("budget")
        if budget is None:  # a custom agent's table: Faust's own options
            options: rocksdict.Options = super().as_options()
            return options
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(budget.memtables)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_block_cache(budget.cache)
        # Index and filter blocks grow with the keys stored: in the cache, they count
        # against the budget (the newest files' pinned, so reads of fresh keys stay fast).
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options


class BudgetedStore(faust_rocksdb.Store):
    """Faust's RocksDB store on rocksdict, opened with ``BudgetedRocksDBOptions``.

    Registered as Faust's store ``kappa://`` (pyproject's ``faust.stores`` entry point),
    the worker's app store: Faust builds a store from its URL, and its options class is
    not configurable. A table declared without a ``budget`` option (a custom agent's)
    keeps Faust's options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = BudgetedRocksDBOptions(**(self.options or {}), use_rocksdict=True)
        # kappa's own tables are claimed (``tables.claims``); a custom agent's are not.
        self.claimed = self.rocksdb_options.extra_options.get("budget") is not None
        # Per active partition, the token of this worker's claim on it.
        self.tokens: dict[int, bytes] = {}
        # Per partition, the keys of the records a read of the changelog skipped.
        self.skipped: dict[int, set[bytes]] = {}

    @property
    def _changelog(self) -> str:
        name: str = self.table.changelog_topic.get_topic_name()
        return name

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        """Claim every active partition of the assignment, kept ones too (a worker that
        was a zombie keeps its assignment as it knew it), before Faust recovers them."""
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        if not self.claimed:
            return
        changelog = self._changelog
        for tp in revoked:
            if tp.topic == changelog:
                self.tokens.pop(tp.partition, None)
        # As Faust's recovery does: a rebalance that another one already replaced is
        # not this worker's to act on (the partitions may be another's by now).
        if generation_id != self.app.consumer_generation_id:
            return
        actives = self.app.assignor.assigned_actives()
        partitions = sorted(tp.partition for tp in actives if tp.topic == changelog)
        await self._check_leaders(changelog, partitions)
        await self.claim(partitions, self._append)

    async def _check_leaders(self, topic: str, partitions: Sequence[int]) -> None:
        """Raise ClaimStalled for a partition without a leader. A record queued for one
        is never sent, and Faust's stop waits for its producer to flush it (up to its
        20-minute request timeout); so ask the cluster first, through Faust's aiokafka
        producer's client (as Faust's own ``supports_headers`` does)."""
        producer: Any = self.app.producer
        client = producer._ensure_producer().client
        await client.force_metadata_update()
        for partition in partitions:
            if client.cluster.leader_for_partition(TopicPartition(topic, partition)) in (None, -1):
                raise _stalled(topic, partition)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        if self.claimed:
            changelog = self._changelog
            partitions = sorted(tp.partition for tp in active_tps if tp.topic == changelog)
            await self.rewrite_skipped(partitions, self._append)

    async def rewrite_skipped(self, partitions: Sequence[int], append: RecordAppender) -> None:
        """Write this store's value of every key whose last changelog record a read
        skipped (a tombstone where it holds none), so that compaction, which keeps each
        key's last record, never keeps a skipped one alone."""
        changelog = self._changelog
        for partition in partitions:
            keys, token = self.skipped.pop(partition, set()), self.tokens.get(partition)
            if not keys or token is None:
                continue
            db, headers = self._db_for_partition(partition), writer_headers(token)
            await asyncio.gather(
                *(append(changelog, partition, key, db.get(key), headers) for key in sorted(keys))
            )

    async def claim(self, partitions: Sequence[int], append: RecordAppender) -> None:
        """Append a claim with a fresh token to each partition's changelog, and tag this
        worker's records there with it from now on."""
        changelog = self._changelog
        tokens = {partition: new_token() for partition in partitions}
        await asyncio.gather(
            *(
                append(changelog, partition, claim_key(token), CLAIM_VALUE, writer_headers(token))
                for partition, token in tokens.items()
            )
        )
        self.tokens.update(tokens)

    async def _append(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        # Faust's producer, acknowledged: a claim must be in the log before recovery
        # reads it (kappa's own sender is the batch loop's, busy with its batches).
        # Bounded: a partition without a leader would hold the rebalance, and a stop of
        # the worker, for ever.
        sent = self.app.producer.send_and_wait(topic, key, value, partition, None, headers)
        try:
            await asyncio.wait_for(sent, APPEND_TIMEOUT_S)
        except TimeoutError:
            raise _stalled(topic, partition) from None

    def _visible_keys(self, db: Any) -> Iterator[bytes]:
        """Faust's table reads, past the key that holds the last claim read."""
        return (key for key in super()._visible_keys(db) if key != OWNER_KEY)

    def _visible_items(self, db: Any) -> Iterator[tuple[bytes, bytes]]:
        return (item for item in super()._visible_items(db) if item[0] != OWNER_KEY)

    def apply_changelog_batch(
        self, batch: Iterable[Any], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Faust's ``apply_changelog_batch`` (recoveries and standbys), skipping the
        records written under another token than the last claim's (``tables.claims``)."""
        if not self.claimed:
            super().apply_changelog_batch(batch, to_key, to_value)
            return
        writes: dict[int, rocksdict.WriteBatch] = {}
        owners: dict[int, bytes | None] = {}
        offsets: dict[TP, int] = {}
        skipped: dict[TP, int] = {}
        for event in batch:
            message = event.message
            partition = message.partition
            offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))
            if partition not in writes:
                writes[partition] = rocksdict.WriteBatch(raw_mode=True)
                owners[partition] = self._db_for_partition(partition).get(OWNER_KEY)
            write, key = writes[partition], message.key
            if (token := claimed_by(key)) is not None:
                owners[partition] = token
                write.put(OWNER_KEY, token)
                continue
            if not admitted(owners[partition], message.headers):
                self.skipped.setdefault(partition, set()).add(key)
                skipped[message.tp] = skipped.get(message.tp, 0) + 1
                continue
            if message.value is None:
                write.delete(key)
            else:
                write.put(key, message.value)
        for partition, write in writes.items():
            self._db_for_partition(partition).write(write)
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)
        for tp, count in skipped.items():
            log.warning(
                "changelog %s[%d]: skipped %d record(s) that a worker wrote after another "
                "claimed the partition (it was out of the group, frozen past its session "
                "timeout); their keys are written again when the recovery is done",
                tp.topic,
                tp.partition,
                count,
            )


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
