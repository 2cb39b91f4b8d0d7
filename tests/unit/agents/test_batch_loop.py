"""The batch loop's gap check, one partition's fetch at a time (``BatchLoop._partition_batch``
with ``_read_gap`` and ``_before_first_record``), and a fetch applied in slices: the event
loop is yielded between them, and a batch cancelled between two slices is dropped whole.

The partition's state is real (``TablePartitionState`` on Faust tables and RocksDB, no
broker, ``tests.support.stores``); the input partition's log is a list of records in
memory, read through a stand-in for ``GapReader`` (the Kafka reader) that records what it
is asked. Every record is an event of one key whose amount is its offset, so the key's
count, sum, minimum and maximum say which offsets were applied, and its fence which came
last: a gap applied after the records that follow it would be fenced off as duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from agents.batch_loop import BatchLoop, CommitPolicy
from agents.batch_sender import BatchSender
from agents.errors import StateLost
from agents.events import EventParser
from agents.gap_reader import GapReader
from agents.hop import source_of
from agents.names import PipelineNames
from agents.spec import PipelineSpec, parse_spec
from agents.stages.slices import SliceSizer
from tables.aggregation_config import AggregationConfig
from tables.faust_store import Appended
from tables.partition_state import TablePartitionState, store_batch
from tables.pipeline_tables import PipelineTables
from tables.records import PartitionProgress
from tests.support.stores import AcknowledgingSender, offline_tables

TOPIC = "orders"
PARTITION = 0
KEY = "c1"
T0 = 1_700_000_000_000


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    """The input record at ``offset``: one event of KEY, a second apart, amount = offset."""
    value = orjson.dumps({"customer_id": KEY, "ts": T0 + offset * 1000, "amount": offset})
    return ConsumerRecord(
        topic=TOPIC,
        partition=PARTITION,
        offset=offset,
        timestamp=T0,
        timestamp_type=0,
        key=KEY.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(KEY),
        serialized_value_size=len(value),
        headers=(),
    )


def records(offsets: Sequence[int]) -> list[ConsumerRecord[bytes, bytes]]:
    return [record(offset) for offset in offsets]


class LogStandIn(GapReader):
    """The input partition's log in memory, read as ``GapReader`` reads Kafka: the records
    held in a range, two at a time (a fetch), and the first offset the log holds."""

    def __init__(self, held: Sequence[int], start: int = 0) -> None:
        super().__init__({})
        self.held = records(held)
        self.start = start
        self.reads: list[tuple[int, int]] = []
        self.start_asked = 0

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[Any]]:
        assert (topic, partition) == (TOPIC, PARTITION)
        self.reads.append((start, end))
        found = [r for r in self.held if start <= r.offset < end]
        for first in range(0, len(found), 2):
            yield found[first : first + 2]

    async def log_start(self, topic: str, partition: int) -> int:
        assert (topic, partition) == (TOPIC, PARTITION)
        self.start_asked += 1
        return self.start


class QueueingSender(BatchSender):
    """Queues outputs as ``BatchSender`` does; one partition per output topic, so that no
    broker is asked."""

    async def partition_count(self, topic: str) -> int:
        return 1

    async def start(self) -> None:
        """No producer: nothing is sent unless a flush is due, and none is here."""


class AppStandIn:
    """What ``BatchLoop.on_records`` asks Faust: no recovery, the one input partition
    assigned with its state partition (the direct lane), and its end far ahead (never
    caught up, so no flush is due, unless ``end`` says otherwise)."""

    in_recovery = False
    rebalancing = False

    def __init__(self) -> None:
        self.assignor = self
        self.consumer = self
        self.assigned = {TP(TOPIC, PARTITION)}
        self.committed: dict[TP, int] = {}  # the group's, the next offset to read
        self.end = 10**9  # the input partition's end offset

    def committed_offset(self, tp: TP) -> int | None:
        return self.committed.get(tp)

    async def commit_stored(self, offsets: dict[TP, int]) -> None:
        self.committed.update(offsets)

    def assigned_actives(self) -> set[TP]:
        return {TP(TOPIC, PARTITION), TP(PipelineNames(spec()).repartition_topic, PARTITION)}

    def topic_partitions(self, topic: str) -> int:
        return 1

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int:
        # As aiokafka's consumer: only an assigned partition has one.
        assert tp in self.assigned, "Partition is not assigned"
        return self.end


def spec() -> PipelineSpec:
    return parse_spec(
        {
            "name": "orders",
            "version": 1,
            "input_topic": TOPIC,
            "key": "customer_id",
            "time_field": "ts",
            "values": ["amount"],
            "windows": [{"size": "1h"}],
            "lateness": "10m",
        },
        "test",
    )


class Partition:
    """A ``BatchLoop`` over one input partition whose state is ``state``."""

    def __init__(
        self,
        state: TablePartitionState,
        log: LogStandIn,
        tables: PipelineTables | None = None,
        sender: BatchSender | None = None,
    ) -> None:
        """With ``tables``, each processor gets a new state over them, as in the worker
        (so that a dropped batch's unstored changes are gone); else always ``state``."""
        pipeline = spec()
        self.log = log
        self.state = state
        self.loop = BatchLoop(
            app=AppStandIn(),
            names=PipelineNames(pipeline),
            partitions=1,
            parser=EventParser(pipeline),
            config=AggregationConfig(
                value_names=pipeline.values,
                metrics=pipeline.metrics,
                windows=pipeline.windows,
                lateness_ms=pipeline.lateness_ms,
                retention_ms=pipeline.retention_ms,
            ),
            new_state=lambda partition: (
                state if tables is None else tables.partition_state(partition)
            ),
            sender=sender or QueueingSender({}),
            gaps=log,
            policy=CommitPolicy(
                interval_s=3600, events=10**9, buffer_bytes=2**40, outputs_bytes=2**40
            ),
            streamed_too=lambda: False,
        )

    async def fetch(self, offsets: Sequence[int]) -> None:
        await self.loop._partition_batch(PARTITION, records(offsets))

    def applied(self) -> dict[str, Any]:
        """What the key's record says was applied: count, sum, min, max and fence."""
        rec = self.state.get_key(KEY)
        if rec is None:
            return {"count": 0}
        result = rec.totals.result(("amount",), ("count", "sum", "min", "max"))
        amount = result["values"]["amount"]
        return {"count": result["count"], **amount, "fence": rec.fence.own}

    @property
    def checkpoint(self) -> int:
        return self.loop.processor(PARTITION).progress.offset


def applied_offsets(offsets: range) -> dict[str, Any]:
    """``Partition.applied`` of exactly ``offsets``, in order, computed on its own."""
    return {
        "count": len(offsets),
        "sum": float(sum(offsets)),
        "min": float(offsets[0]),
        "max": float(offsets[-1]),
        "fence": offsets[-1],
    }


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[PipelineTables]:
    with offline_tables(tmp_path, partitions=1) as tables:
        yield tables


@pytest.fixture
def state(tables: PipelineTables) -> TablePartitionState:
    return tables.partition_state(PARTITION)


def app_of(partition: Partition) -> AppStandIn:
    app = partition.loop.app
    assert isinstance(app, AppStandIn)
    return app


def checkpointed(state: TablePartitionState, offset: int) -> TablePartitionState:
    """``state`` with a checkpoint at ``offset``: every record up to it is applied."""
    state.put_progress(PartitionProgress(max_event_ms=T0, offset=offset))
    return state


async def test_a_contiguous_fetch_is_applied_without_reading_kafka(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 4), LogStandIn(range(10)))
    await partition.fetch(range(5, 10))
    assert partition.applied() == applied_offsets(range(5, 10))
    assert partition.checkpoint == 9
    assert partition.log.reads == []
    assert partition.log.start_asked == 0
    stats = partition.loop.stats
    assert (stats.gap_records_read, stats.duplicates) == (0, 0)


async def test_the_next_fetch_follows_the_last_applied_record_not_the_stored_one(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 4), LogStandIn(range(20)))
    await partition.fetch(range(5, 8))
    await partition.fetch(range(8, 12))  # nothing stored in between: no gap either
    assert partition.log.reads == []
    assert partition.applied() == applied_offsets(range(5, 12))


@pytest.mark.parametrize("first", [6, 8], ids=["one record", "three records"])
async def test_a_gap_is_read_back_from_kafka_and_applied_first(
    state: TablePartitionState, first: int
) -> None:
    partition = Partition(checkpointed(state, 4), LogStandIn(range(10)))
    await partition.fetch(range(first, 10))  # the consumer skipped 5 .. first - 1
    assert partition.log.reads == [(5, first)]
    assert partition.applied() == applied_offsets(range(5, 10))
    assert partition.loop.stats.gap_records_read == first - 5
    assert partition.checkpoint == 9


async def test_a_gap_that_holds_no_records_reads_as_empty(
    state: TablePartitionState,
) -> None:
    # Offsets 5..7 hold no records (transaction markers, or removed by compaction).
    partition = Partition(checkpointed(state, 4), LogStandIn([0, 1, 2, 3, 4, 8, 9]))
    await partition.fetch([8, 9])
    assert partition.log.reads == [(5, 8)]
    assert partition.applied() == applied_offsets(range(8, 10))
    assert partition.loop.stats.gap_records_read == 0


async def test_records_at_or_before_the_checkpoint_are_skipped_as_duplicates(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 6), LogStandIn(range(10)))
    await partition.fetch(range(4, 10))  # 4, 5, 6 were applied and stored before
    assert partition.applied() == applied_offsets(range(7, 10))
    assert partition.loop.stats.duplicates == 3
    assert partition.log.reads == []


async def test_a_fetch_applied_but_not_stored_is_a_duplicate_when_fetched_again(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 4), LogStandIn(range(10)))
    await partition.fetch(range(5, 8))
    await partition.fetch(range(6, 10))
    assert partition.applied() == applied_offsets(range(5, 10))
    assert partition.loop.stats.duplicates == 2


async def test_a_fetch_of_only_stored_records_applies_nothing_and_reports_the_checkpoint(
    state: TablePartitionState,
) -> None:
    """A takeover re-reading from an older committed offset: its stored checkpoint is
    this worker's progress, for status and the next commit."""
    partition = Partition(checkpointed(state, 6), LogStandIn(range(10)))
    await partition.fetch(range(3, 7))
    assert partition.applied() == {"count": 0}
    assert partition.loop.stats.duplicates == 4
    assert partition.loop.stats.processed_offsets == {PARTITION: 6}


async def test_no_state_and_the_log_starting_at_the_first_record(
    state: TablePartitionState,
) -> None:
    partition = Partition(state, LogStandIn(range(5)))
    await partition.fetch(range(5))
    assert partition.applied() == applied_offsets(range(5))
    assert (partition.log.reads, partition.log.start_asked) == ([], 0)


async def test_no_state_and_a_log_after_retention_starts_where_the_log_does(
    state: TablePartitionState,
) -> None:
    partition = Partition(state, LogStandIn(range(3, 8), start=3))
    await partition.fetch(range(3, 8))
    assert partition.log.start_asked == 1
    assert partition.log.reads == []
    assert partition.applied() == applied_offsets(range(3, 8))


async def test_no_state_with_the_group_ahead_and_the_log_from_0_is_rebuilt_from_the_log(
    state: TablePartitionState, caplog: pytest.LogCaptureFixture
) -> None:
    """The changelogs were lost but the input still holds everything: recompute it."""
    partition = Partition(state, LogStandIn(range(10)))
    with caplog.at_level(logging.WARNING, logger="agents.batch_loop"):
        await partition.fetch(range(5, 10))  # the group had committed offset 5
    assert partition.log.reads == [(0, 5)]
    assert partition.applied() == applied_offsets(range(10))
    assert "recomputing it from the start of the log" in caplog.text


async def test_no_state_with_the_group_ahead_and_the_log_cut_by_retention_is_state_lost(
    state: TablePartitionState,
) -> None:
    partition = Partition(state, LogStandIn(range(3, 20), start=3))
    with pytest.raises(StateLost) as lost:
        await partition.fetch(range(10, 20))
    assert lost.value.message == (
        f"partition {PARTITION} of {TOPIC}: the consumer group has processed up to offset "
        "10, but the tables hold no state for it, and the log now starts at offset 3: the "
        "state of the records before it is gone"
    )
    assert lost.value.hint is not None
    assert "restore the changelog topics" in lost.value.hint
    assert "bump `version` in the spec" in lost.value.hint
    assert partition.applied() == {"count": 0}
    assert partition.log.reads == []


class LoopTurns:
    """Counts the event loop's turns while it runs: each is a moment other tasks (the
    API, a rebalance) could have run."""

    def __init__(self) -> None:
        self.turns = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.turns += 1


async def test_a_fetch_is_applied_in_slices_with_the_loop_yielded_between_them(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 4), LogStandIn(range(30)))
    partition.loop.slices = SliceSizer(target_s=0.0, first=1)  # a record a slice
    turns = LoopTurns()
    ticking = asyncio.create_task(turns.run())
    await partition.fetch(range(5, 30))
    ticking.cancel()
    assert turns.turns >= 25 - 1  # between every two of the 25 one-record slices
    assert partition.applied() == applied_offsets(range(5, 30))
    assert partition.checkpoint == 29


async def test_a_batch_cancelled_between_slices_is_dropped_whole_and_read_again(
    tables: PipelineTables,
) -> None:
    """Faust cancels its fetch loop when it stops the fetcher: a batch cut short there
    leaves no half-applied state behind, and the records read again count once."""
    stored = checkpointed(tables.partition_state(PARTITION), 4)
    await store_batch([stored], AcknowledgingSender())
    partition = Partition(stored, LogStandIn(range(30)), tables)
    partition.loop.slices = SliceSizer(target_s=0.0, first=1)
    fetch = {TP(TOPIC, PARTITION): records(range(5, 30))}
    batch = asyncio.create_task(partition.loop.on_records(fetch))
    for _ in range(10):  # ten turns of the loop: a few one-record slices
        await asyncio.sleep(0)
    assert 4 < partition.loop.aggregate.unstored[PARTITION] < 29  # cut short mid-batch
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert partition.loop.processors == {}
    assert partition.loop.aggregate.unstored == {}
    assert tables.partition_state(PARTITION).get_key(KEY) is None  # nothing stored
    await partition.loop.on_records(fetch)
    live = partition.loop.live_state(PARTITION)
    assert live is not None
    partition.state = live
    assert partition.applied() == applied_offsets(range(5, 30))


async def test_a_partition_revoked_while_its_fetch_is_applied_ends_the_batch_cleanly(
    state: TablePartitionState,
) -> None:
    """A rebalance can take the input partition from the consumer between two slices of
    its fetch: the batch still ends without an error, everything applied."""
    partition = Partition(checkpointed(state, 4), LogStandIn(range(30)))
    partition.loop.slices = SliceSizer(target_s=0.0, first=1)
    app = partition.loop.app
    assert isinstance(app, AppStandIn)
    batch = asyncio.create_task(
        partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 30))})
    )
    await asyncio.sleep(0)
    app.assigned = set()  # revoked mid-batch
    await batch
    assert partition.loop.aggregate.unstored == {PARTITION: 29}  # not dropped
    assert partition.applied() == applied_offsets(range(5, 30))


class UnreachableSender(QueueingSender):
    """Kafka down: starting a producer fails, as aiokafka's does."""

    def __init__(self) -> None:
        super().__init__({})
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        raise ConnectionError("Unable to bootstrap")


async def test_a_quiet_timer_with_nothing_to_close_starts_no_producer(
    state: TablePartitionState,
) -> None:
    """The commit-interval timer on an owned partition with no closing left and no idle
    advance sends nothing, so it must not need Kafka: during an outage it would fail on
    every tick (CI found this as an ERROR per tick while Kafka was stopped)."""
    partition = Partition(checkpointed(state, 4), LogStandIn(range(5)))
    sender = UnreachableSender()
    partition.loop.sender = sender
    await partition.loop._advance_quiet()
    assert not partition.loop.aggregate.processor(PARTITION).closing
    assert sender.starts == 0


async def test_a_state_recovered_behind_the_groups_committed_offset_reads_up_to_it(
    state: TablePartitionState,
) -> None:
    """The changelogs ended with another worker's older state (a zombie's), and no record
    comes to the partition: the timer reads what the group committed past the
    checkpoint from Kafka and applies it."""
    partition = Partition(checkpointed(state, 4), LogStandIn(range(40)))
    app = partition.loop.app
    assert isinstance(app, AppStandIn)
    app.committed[TP(TOPIC, PARTITION)] = 30
    assert partition.loop.behind(PARTITION), "key reads answer 503 until caught up"
    await partition.loop._advance_quiet()
    assert partition.log.reads == [(5, 30)]
    assert not partition.loop.behind(PARTITION)
    live = partition.loop.live_state(PARTITION)
    assert live is not None
    partition.state = live
    assert partition.applied() == applied_offsets(range(5, 30))
    await partition.loop._advance_quiet()
    assert partition.log.reads == [(5, 30)], "caught up: nothing read again"


async def test_a_state_at_the_groups_committed_offset_reads_nothing(
    state: TablePartitionState,
) -> None:
    partition = Partition(checkpointed(state, 29), LogStandIn(range(40)))
    app = partition.loop.app
    assert isinstance(app, AppStandIn)
    app.committed[TP(TOPIC, PARTITION)] = 30
    assert not partition.loop.behind(PARTITION)
    await partition.loop._advance_quiet()
    assert partition.log.reads == []
    assert partition.applied()["count"] == 0


class FailingStoreSender(QueueingSender):
    """Acknowledges each send at once, as Kafka would (offsets growing per partition),
    except its ``fail_on``-th, which fails as a send does when Kafka goes away."""

    def __init__(self, fail_on: int) -> None:
        super().__init__({})
        self.fail_on = fail_on
        self.sends = 0
        self.ends: dict[tuple[str, int], int] = {}
        self.delivered: list[tuple[tuple[str, int], Any]] = []  # (topic partition, headers)

    async def send(self) -> dict[tuple[str, int], Appended]:
        queued, self._queued = self._queued, {}
        self.queued_bytes = 0
        if not queued:
            return {}
        self.sends += 1
        if self.sends == self.fail_on:
            raise ConnectionError("Kafka went away")
        acked = {}
        for tp, sent in queued.items():
            first = self.ends.get(tp, 0)
            self.ends[tp] = first + len(sent)
            acked[tp] = Appended(first, first + len(sent) - 1, True)
            self.delivered.extend((tp, headers) for _, _, headers in sent)
        return acked


async def test_a_timed_store_that_fails_drops_the_unstored_changes_like_a_failed_batch(
    tables: PipelineTables,
) -> None:
    """The commit-interval timer stores what a backlog left unstored. When a step of
    that store fails, its writes staged for RocksDB were never written; a state kept
    after it would stage the next store over them and lose them. So, as after a failed
    batch, every processor is dropped; and since the partition may get no more records
    (which would find the gap), the next tick reads the dropped ones back from Kafka."""
    # The timer's store fails at its second step (the key records), send 3; every
    # other send succeeds.
    sender = FailingStoreSender(fail_on=3)
    stored = checkpointed(tables.partition_state(PARTITION), 4)
    await store_batch([stored], sender)
    partition = Partition(stored, LogStandIn(range(30)), tables, sender)
    await partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 10))})
    await partition.loop.on_timer()
    assert sender.sends == 3
    assert partition.loop.processors == {}
    assert partition.loop.aggregate.unstored == {}
    assert tables.partition_state(PARTITION).get_key(KEY) is None  # nothing stored
    assert partition.loop.behind(PARTITION), "key reads answer 503 until caught up"
    await partition.loop.on_timer()  # reads 5..9 again, applies and stores them
    assert partition.log.reads == [(5, 10)]
    assert not partition.loop.behind(PARTITION)
    assert partition.loop.processors != {}, "stored, not dropped"
    assert app_of(partition).committed == {TP(TOPIC, PARTITION): 10}
    partition.state = tables.partition_state(PARTITION)
    assert partition.applied() == applied_offsets(range(5, 10))
    await partition.loop.on_timer()
    assert partition.log.reads == [(5, 10)], "caught up: nothing read again"


async def test_a_failed_batch_on_a_partition_that_gets_no_more_records_is_read_back(
    tables: PipelineTables,
) -> None:
    """A caught-up fetch is stored at once; when that store fails, the batch is dropped
    and its records are past the consumer's position. No record follows to reveal the
    gap: the commit-interval timer reads them back."""
    sender = FailingStoreSender(fail_on=2)  # the batch's store, after the checkpoint's
    stored = checkpointed(tables.partition_state(PARTITION), 4)
    await store_batch([stored], sender)
    partition = Partition(stored, LogStandIn(range(10)), tables, sender)
    app_of(partition).end = 10  # the fetch reaches the end: caught up, stored at once
    await partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 10))})
    assert sender.sends == 2
    assert partition.loop.processors == {}
    assert partition.loop.behind(PARTITION)
    await partition.loop.on_timer()
    assert partition.log.reads == [(5, 10)]
    assert partition.loop.processors != {}, "stored, not dropped"
    partition.state = tables.partition_state(PARTITION)
    assert partition.applied() == applied_offsets(range(5, 10))


class OutageLog(LogStandIn):
    """The log, out of reach for its first ``down`` reads."""

    def __init__(self, held: Sequence[int], down: int) -> None:
        super().__init__(held)
        self.down = down

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[Any]]:
        if self.down:
            self.down -= 1
            raise ConnectionError("Unable to bootstrap from 127.0.0.1:9")
        async for fetched in super().read(topic, partition, start, end):
            yield fetched


async def test_reading_back_during_an_outage_logs_a_line_per_tick_and_retries(
    tables: PipelineTables, caplog: pytest.LogCaptureFixture
) -> None:
    sender = FailingStoreSender(fail_on=2)
    stored = checkpointed(tables.partition_state(PARTITION), 4)
    await store_batch([stored], sender)
    partition = Partition(stored, OutageLog(range(10), down=2), tables, sender)
    app_of(partition).end = 10
    await partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 10))})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="agents.batch_loop"):
        await partition.loop.on_timer()
        await partition.loop.on_timer()
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)] * 2
    assert all("the next tick retries" in r.getMessage() for r in caplog.records)
    assert partition.loop.behind(PARTITION)
    await partition.loop.on_timer()  # Kafka is back
    assert not partition.loop.behind(PARTITION)
    partition.state = tables.partition_state(PARTITION)
    assert partition.applied() == applied_offsets(range(5, 10))


async def test_a_fetch_being_applied_is_not_behind(tables: PipelineTables) -> None:
    """Only what a failure dropped is read back: between the slices of a fetch the
    partition is not behind (key queries answer it), nor does a timer tick then read
    the fetch again from Kafka."""
    sender = FailingStoreSender(fail_on=0)  # every send succeeds
    stored = checkpointed(tables.partition_state(PARTITION), 4)
    await store_batch([stored], sender)
    partition = Partition(stored, LogStandIn(range(30)), tables, sender)
    partition.loop.slices = SliceSizer(target_s=0.0, first=1)
    fetch = {TP(TOPIC, PARTITION): records(range(5, 30))}
    batch = asyncio.create_task(partition.loop.on_records(fetch))
    for _ in range(10):  # a few one-record slices
        await asyncio.sleep(0)
    assert 4 < partition.loop.aggregate.unstored[PARTITION] < 29  # mid-batch
    assert not partition.loop.behind(PARTITION)
    await partition.loop.on_timer()  # waits for the batch's lock, then stores it
    await batch
    assert partition.log.reads == []
    assert partition.loop.processors != {}, "stored, not dropped"
    partition.state = tables.partition_state(PARTITION)
    assert partition.applied() == applied_offsets(range(5, 30))


class GrownInputApp(AppStandIn):
    """The input has grown to 2 partitions past the version's N of 1: its records take
    the route lane, through the hop."""

    def topic_partitions(self, topic: str) -> int:
        return 2


async def test_routed_records_whose_hop_records_a_failure_dropped_are_routed_again(
    tables: PipelineTables,
) -> None:
    """On the route lane an input partition's progress is its acknowledged hop records.
    A flush that fails drops what it routed, and those records are past the consumer's
    position: with no later record to reveal the gap, the commit-interval timer reads
    them back and routes them again."""
    sender = FailingStoreSender(fail_on=1)  # the batch's flush of its hop records
    partition = Partition(tables.partition_state(PARTITION), LogStandIn(range(10)), tables, sender)
    app = GrownInputApp()
    app.end = 10  # the fetch reaches the end: caught up, flushed at once
    partition.loop.app = app
    await partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 10))})
    assert sender.sends == 1
    assert sender.delivered == []
    hop = PipelineNames(spec()).repartition_topic
    await partition.loop.on_timer()
    assert partition.log.reads == [(5, 10)]
    assert [(tp, source_of(headers)) for tp, headers in sender.delivered] == [
        ((hop, PARTITION), (PARTITION, offset)) for offset in range(5, 10)
    ]
    await partition.loop.on_timer()
    assert partition.log.reads == [(5, 10)], "acknowledged: nothing read again"


class MetadataOnceMissingApp(GrownInputApp):
    """The grown input, whose partition count the first fetch's batch fails to read."""

    def __init__(self) -> None:
        super().__init__()
        self.missing = True

    def topic_partitions(self, topic: str) -> int:
        if self.missing:
            self.missing = False
            raise ConnectionError("no metadata yet")
        return super().topic_partitions(topic)


async def test_a_first_fetch_that_fails_before_it_is_routed_is_read_back_from_its_start(
    tables: PipelineTables,
) -> None:
    """The batch fails before the partition's first fetch since the assignment is routed
    (here while it decides the lane): nothing is acknowledged yet, so the read-back
    starts where the consumer started, the first record fetched; and until the records
    routed again are acknowledged, the route lane is still behind (no partition of the
    worker is idle-advanced)."""
    sender = FailingStoreSender(fail_on=0)  # every send succeeds
    partition = Partition(tables.partition_state(PARTITION), LogStandIn(range(10)), tables, sender)
    partition.loop.app = MetadataOnceMissingApp()
    await partition.loop.on_records({TP(TOPIC, PARTITION): records(range(5, 10))})
    assert sender.delivered == []
    assert partition.loop._route_behind() != []
    await partition.loop._catch_up(set())  # routes them again: queued, not acknowledged
    assert partition.log.reads == [(5, 10)]
    assert partition.loop._route_behind() != [], "behind until Kafka acknowledges them"
    await partition.loop.flusher.on_timer()
    hop = PipelineNames(spec()).repartition_topic
    assert [(tp, source_of(headers)) for tp, headers in sender.delivered] == [
        ((hop, PARTITION), (PARTITION, offset)) for offset in range(5, 10)
    ]
    assert partition.loop._route_behind() == []


async def test_offsets_read_back_that_hold_no_record_count_as_read(
    state: TablePartitionState, caplog: pytest.LogCaptureFixture
) -> None:
    """The last offsets of a range read back hold no record (retention took them first,
    or transaction markers): the applied offset stays behind the range's end, which is
    covered all the same, not read again at every tick with key reads answering 503."""
    held = [*range(20), *range(25, 40)]  # 20..24 removed
    partition = Partition(checkpointed(state, 4), LogStandIn(held))
    app_of(partition).committed[TP(TOPIC, PARTITION)] = 25
    with caplog.at_level(logging.WARNING, logger="agents.batch_loop"):
        await partition.loop._advance_quiet()
    assert partition.log.reads == [(5, 25)]
    assert not partition.loop.behind(PARTITION)
    assert any(
        "5 offset(s) between 5 and 24 hold no record" in r.getMessage() for r in caplog.records
    )
    await partition.loop._advance_quiet()
    assert partition.log.reads == [(5, 25)], "covered: nothing read again"
    live = partition.loop.live_state(PARTITION)
    assert live is not None
    partition.state = live
    assert partition.applied() == applied_offsets(range(5, 20))
