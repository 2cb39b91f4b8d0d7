"""The input's records, a fetch at a time, through the chain of stages (agents/stages).

``BatchConsumer`` hands every fetch of the input topic to ``BatchLoop.on_records``. For
each of the fetch's partitions, in offset order, the records go through:

1. **continuity** (``GapRepair``; ``SeamStage`` for a version with a cut): the records
   follow the partition's last applied one, its history first;
2. **route** (``RouteStage``): decoded and validated (with the spec's derived fields and
   its ``where``); bad records become dead letters, events the ``where`` leaves out are
   counted as filtered; good events on their key's partition of an input of N
   partitions go on here (the direct lane), every other one is queued for the
   repartition topic (``HopStage``);
3. **aggregate** (``AggregateStage``): the partition's direct events applied in one
   ``PartitionProcessor.apply``;
4. **outputs** (``OutputStage``): its late events and closed windows' results queued;
   a watermark move that closes more windows than the write-back buffer holds closes
   the rest in steps, the state stored between them (``_queue``).

The repartition topic's fetches come here too (the hop lane): continuity on its own
checkpoint, then ``RouteStage.unpack``, aggregate (fenced by the events' source input
partitions and offsets) and outputs. While the input's count is not N every input
record takes the hop, and an input partition's progress is ``HopStage``'s.

Steps 2 to 4 run a slice of records at a time, each slice sized to take about
``APPLY_SLICE_S`` (agents/stages/slices.py), with the event loop yielded between slices so
that the API, metrics and rebalance callbacks run during a long fetch. Between slices,
when due, the ``Flusher`` stores the state and outputs and commits the offsets
(agents/stages/flush.py). This class drives the chain and owns what concerns the whole
worker: one batch at a time, failures, rebalances, the timer and a clean stop. The timer
also moves quiet partitions' watermarks for a spec with an ``idle_timeout``
(``IdleStage``), before its store.

A batch that fails or is cut short (cancelled at a yield between slices, as Faust's
stop cancels its fetch loop) drops every processor and its unstored changes (the stores
hold only acknowledged steps); the next fetch's gap check reads the lost records back.
A rebalance waits for the batch in hand (its callback runs at a yield between slices and
takes the batch lock), then stores and commits everything before the partitions go
(``on_revoked``): the new owner never races a late write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple

from faust.types import TP

from agents.batch_sender import BatchSender
from agents.errors import StateLost
from agents.events import Event, EventParser
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.names import PipelineNames
from agents.processor import BatchOutcome, PartitionProcessor
from agents.stages.aggregate import AggregateStage
from agents.stages.flush import CommitPolicy, Flusher
from agents.stages.gaps import GapRepair
from agents.stages.hop import HopStage
from agents.stages.idle import IdleStage, StoredClocks
from agents.stages.outputs import OutputStage
from agents.stages.route import RouteStage
from agents.stages.seam import SeamStage
from agents.stages.slices import SliceSizer
from agents.stats import WorkerStats
from tables.aggregation_config import AggregationConfig
from tables.partition_state import ClaimedAway, TablePartitionState

__all__ = ["BatchLoop", "CommitPolicy"]

# Applies a partition's records (of the input, or of the repartition topic).
ApplyRecords = Callable[[int, Sequence[Any]], Awaitable[None]]


class ReadBack(NamedTuple):
    """A lane of a partition behind records it must read again from Kafka: its last
    applied (or routed) offset, the offset to read up to, how to apply the records in
    between, and how to mark every offset up to one as done, records or not (offsets
    retention or compaction emptied, or transaction markers, need nothing)."""

    tp: TP
    applied: int
    end: int
    apply: ApplyRecords
    done: Callable[[int, int], None]


log = logging.getLogger(__name__)

# After a failed batch, before the next one: a broker that is gone is not hammered.
RETRY_PAUSE_S = 1.0
# The event loop time one slice of a fetch may take before the loop is yielded, so that
# the API and metrics answer throughout a backlog (agents/stages/slices.py).
APPLY_SLICE_S = 0.02
# A version with a cut, before its history is sealed: how long a fetch waits for the
# seam record before it is handed back to Kafka (read again later).
SEAM_WAIT_S = 1.0


class BatchLoop:
    """The aggregation's side of the input topic (a ``BatchRoute``)."""

    def __init__(
        self,
        app: Any,
        names: PipelineNames,
        partitions: int,
        parser: EventParser,
        config: AggregationConfig,
        new_state: Callable[[int], TablePartitionState],
        sender: BatchSender,
        gaps: GapReader,
        policy: CommitPolicy,
        streamed_too: Callable[[], bool],
        seam: HistorySeam | None = None,
        clocks: StoredClocks | None = None,
    ) -> None:
        self.app = app
        self.names = names
        self.sender = sender
        self.gaps = gaps
        self.streamed_too = streamed_too
        self.stats = WorkerStats()
        # The chain, in the order a record goes through it.
        self.continuity = GapRepair(names.input_topic, gaps, self.stats)
        self.hop_continuity = GapRepair(names.repartition_topic, gaps, self.stats)
        # A version with a cut has no hop (see agents.stages.route).
        self.route = RouteStage(parser, partitions, self.stats, hop=seam is None)
        self.hop = HopStage(names.repartition_topic, partitions, sender)
        self.aggregate = AggregateStage(config, new_state, policy.buffer_bytes, APPLY_SLICE_S)
        self.outputs = OutputStage(names, sender, self.stats)
        # With an idle timeout, quiet partitions' clocks move on at the timer.
        self.idle = None if clocks is None else IdleStage(clocks, self.aggregate)
        self.slices = SliceSizer(APPLY_SLICE_S)
        self.flusher = Flusher(
            app,
            (names.input_topic, names.repartition_topic),
            policy,
            self.aggregate,
            self.hop,
            sender,
            gaps,
            self.stats,
            self.owned,
            streamed_too,
            seam,
        )
        # A version with a cut reads its history first (agents/history_seam.py).
        self.seam = seam
        self.history = (
            None
            if seam is None
            else SeamStage(
                seam,
                names.history_topic,
                parser,
                gaps,
                self.aggregate,
                self._apply_sliced,
            )
        )
        # Per input partition since the assignment: whether it takes the direct lane.
        self._direct: dict[int, bool] = {}
        # Per topic partition since the assignment: the offset after the last record
        # handed to this worker; and, when a failed batch or store dropped what was
        # applied, that offset as it stood then. The dropped records are past the
        # consumer's position, so a partition that gets no more would not see them again
        # until a restart: the timer reads them back (``_catch_up``).
        self._fetched: dict[TP, int] = {}
        self._dropped: dict[TP, int] = {}
        # Per topic partition: the offset of the first record handed to this worker since
        # the assignment (where the consumer started: the group's committed offset).
        self._first_fetched: dict[TP, int] = {}
        self._returned_at: float | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    # -- the route ----------------------------------------------------------------------

    def also_streamed(self) -> bool:
        return self.streamed_too()

    async def on_records(self, records: Mapping[TP, Sequence[Any]]) -> None:
        if self._stopping:
            return  # stored and committed up to here; a restart reads the rest again
        began = time.monotonic()
        if self._returned_at is not None:
            self.stats.stages.fetch += began - self._returned_at
        if self.history is not None and not await self.history.seam.wait_sealed(SEAM_WAIT_S):
            await self.history.hand_back(self.app.consumer, records)  # no live record first
            self._returned_at = time.monotonic()
            return
        try:
            async with self._lock:
                # Under the lock, and only of owned partitions: records fetched before a
                # rebalance can come after it, and are not this worker's to read back.
                owned = {topic: self.owned(topic) for topic in {tp.topic for tp in records}}
                for tp, fetched in records.items():
                    if fetched and tp.partition in owned[tp.topic]:
                        self._first_fetched.setdefault(tp, fetched[0].offset)
                        self._fetched[tp] = max(self._fetched.get(tp, 0), fetched[-1].offset + 1)
                taken = await self._batch(records)
            self.stats.batch_done(time.monotonic() - began, taken)
        except asyncio.CancelledError:
            self.drop()
            raise
        except ClaimedAway as away:
            # A zombie's store, fenced as designed: no traceback, nothing to fix.
            self.drop()
            log.warning("a batch was not stored: %s", away)
            await asyncio.sleep(RETRY_PAUSE_S)
        except StateLost as lost:
            # Going on would count wrong, and a retry would only fail again: stop the
            # worker, with the reason, rather than hang.
            self.drop()
            log.critical("%s", lost)
            await self.app.crash(lost)
        except Exception:
            self.drop()
            log.exception(
                "a batch failed; its changes are dropped and its records will be read "
                "again from Kafka"
            )
            await asyncio.sleep(RETRY_PAUSE_S)
        finally:
            self._returned_at = time.monotonic()

    async def on_timer(self) -> None:
        """Every commit interval: store what an interrupted backlog left unstored, and
        commit what is stored, so an idle input leaves no offsets behind."""
        async with self._lock:
            try:
                # Never read a store that is being recovered; the next tick will.
                history = self.history
                if history is not None and history.seam.sealed and not self.app.in_recovery:
                    await history.idle_histories(self.owned_partitions())
                await self._advance_quiet()
                await self.flusher.on_timer()
            except ClaimedAway as away:
                self.drop()
                log.warning("a timed store was not made: %s", away)
            except Exception:
                # As after a failed batch: a store cut short left writes staged for
                # RocksDB that the next store would stage over.
                self.drop()
                log.exception(
                    "a timed store or commit failed; its unstored changes are dropped, and "
                    "the next tick reads their records again from Kafka"
                )

    async def _advance_quiet(self) -> None:
        """Move the clocks of the owned partitions that are idle, and go on with the
        closing a crash, stop or rebalance cut short on those no record has reached since
        (their processors are started here: a stored state resumes its closing when
        built); queue what that closed (stored by the flush that follows). Never during a
        rebalance (the assignment it reads may be the old one) or while a store is being
        recovered, nor before a cut's history is sealed (it holds live records back)."""
        if self.app.rebalancing or self.app.in_recovery:
            return
        if self.history is not None and not self.history.seam.sealed:
            return
        owned = self.owned_states()
        await self._catch_up(owned)
        # A partition still behind (its records could not be read back) is not idle: its
        # clock waits for them, or windows would close without them. Records still to be
        # routed may be any state partition's, so none is idle while some are.
        routing = bool(self._route_behind())
        quiet = {p for p in owned if not routing and not self.behind(p)}
        moved = dict(await self.idle.advance(quiet)) if self.idle is not None else {}
        topic = self.names.input_topic
        for partition in sorted(owned):
            outcome = moved.get(partition)
            if outcome is not None or self.aggregate.processor(partition).closing:
                await self._queue(partition, outcome or BatchOutcome(), topic, 0)

    async def _catch_up(self, owned: set[int]) -> None:
        """Apply, read from Kafka, the records a state is behind: those the group
        committed past its checkpoint, and those whose changes a failed batch or a failed
        timed store dropped (up to the last record handed to this worker then); and route
        again the records of a route lane whose hop records such a failure dropped.

        A state is stored before its offsets are committed, so a recovered state is not
        behind them, unless another worker's older state was the last written to the
        changelogs (a zombie's: ``tables.faust_store.rewrite_foreign``). Either way the
        consumer's position is past those records; the partition's next record would
        find the gap (``GapRepair.follow``), but a partition may get none."""
        lanes = [lane for partition in sorted(owned) for lane in self._behind(partition)]
        for tp, applied, end, apply, done in lanes + self._route_behind():
            records: list[Any] = []
            try:
                async for fetched in self.gaps.read(tp.topic, tp.partition, applied + 1, end):
                    records.extend(fetched)
            except Exception as exc:
                # Expected while Kafka is out of reach, which is logged once on its own
                # (app.kafka_outage): one line, no traceback, every tick until it is back.
                log.warning(
                    "%s: reading offsets %d to %d back from Kafka failed (%s); the next "
                    "tick retries",
                    tp,
                    applied + 1,
                    end - 1,
                    exc,
                )
                continue
            log.warning(
                "%s: applied up to offset %d, behind offset %d (the group's committed "
                "offset past a state recovered from another worker's older changelog "
                "records, or records whose changes a failure dropped); read %d "
                "record(s) from Kafka to apply",
                tp,
                applied,
                end,
                len(records),
            )
            if len(records) < end - applied - 1:
                log.warning(
                    "%s: %d offset(s) between %d and %d hold no record (removed by the "
                    "topic's retention or compaction before they were applied, or "
                    "transaction markers); they count as read",
                    tp,
                    end - applied - 1 - len(records),
                    applied + 1,
                    end - 1,
                )
            if records:
                await apply(tp.partition, records)
            done(tp.partition, end - 1)

    def _route_behind(self) -> list[ReadBack]:
        """The input partitions on the route lane whose records a failure dropped before
        Kafka acknowledged their hop records, from the last acknowledged offset (or,
        before any, where the consumer started: the failure may have come before the
        partition's first fetch was routed)."""
        behind = []
        for tp, end in sorted(self._dropped.items()):
            if tp.topic != self.names.input_topic or self._direct_lane(tp.partition):
                continue
            acked = self.hop.acked.get(tp.partition, self._first_fetched[tp] - 1)
            if end > acked + 1:
                behind.append(ReadBack(tp, acked, end, self._routed_batch, self.hop.routed))
        return behind

    def behind(self, partition: int) -> bool:
        """Whether the partition's state is behind records it must read again from Kafka
        (``_catch_up``): until the commit-interval timer catches it up, a key read would
        see an older state."""
        return bool(self._behind(partition))

    def _behind(self, partition: int) -> list[ReadBack]:
        """The partition's lanes whose applied offset is behind the group's committed
        one or what a failure dropped. A version with a cut counts its direct lane's
        offsets through its history (``HistorySeam``), and is not caught up here."""
        assigned = self.app.consumer.assignment()
        aggregate = self.aggregate
        lanes: list[tuple[TP, int, ApplyRecords, Callable[[int, int], None]]] = []
        hop = TP(self.names.repartition_topic, partition)
        if hop in assigned and self.route.hop:
            lanes.append(
                (hop, aggregate.hop_applied(partition), self._hop_batch, aggregate.hop_checkpoint)
            )
        # With custom agents on the input, Faust commits it as they acknowledge, ahead of
        # the state (docs/custom-agents.md): its next fetch brings the records.
        direct = TP(self.names.input_topic, partition)
        if (
            direct in assigned
            and self.history is None
            and not self.streamed_too()
            and self._direct_lane(partition)
        ):
            lanes.append(
                (direct, aggregate.applied(partition), self._partition_batch, aggregate.checkpoint)
            )
        behind = []
        for tp, applied, apply, done in lanes:
            end = max(self.app.consumer.committed_offset(tp) or 0, self._dropped.get(tp, 0))
            if end > applied + 1:
                behind.append(ReadBack(tp, applied, end, apply, done))
        return behind

    async def on_revoked(self) -> None:
        """A rebalance: store what is applied, commit, and forget every partition
        (they are rebuilt from their stores when next assigned)."""
        async with self._lock:
            try:
                await self.flusher.store_and_commit()
            except Exception:
                log.exception("storing before a rebalance failed; the new owner redoes it")
            finally:
                self.drop()
                self.hop.forget()
                self._direct.clear()
                self._fetched.clear()
                self._dropped.clear()
                self._first_fetched.clear()

    async def on_stop(self) -> None:
        """A clean stop: store what is applied, so a restart re-reads nothing."""
        self._stopping = True
        await self.on_revoked()
        await self.sender.stop()
        await self.gaps.stop()
        if self.idle is not None:
            await self.idle.clocks.stop()

    def drop(self) -> None:
        """Forget every processor and unstored change; the stores stay as they were, and
        the records handed so far are read back if no later one reveals the gap."""
        for tp, end in self._fetched.items():
            self._dropped[tp] = max(self._dropped.get(tp, 0), end)
        self.aggregate.drop()
        self.hop.drop()
        self.sender.discard()

    # -- what the web views read --------------------------------------------------------

    @property
    def processors(self) -> dict[int, PartitionProcessor]:
        return self.aggregate.processors

    def live_state(self, partition: int) -> TablePartitionState | None:
        """The partition's state with its unstored changes, while this worker runs it."""
        return self.aggregate.live_state(partition)

    def running_watermark(self, partition: int) -> int | None:
        return self.aggregate.running_watermark(partition)

    def processor(self, partition: int) -> PartitionProcessor:
        return self.aggregate.processor(partition)

    # -- one fetch through the chain ----------------------------------------------------

    async def _batch(self, records: Mapping[TP, Sequence[Any]]) -> int:
        """Apply a fetch (and store, when a flush is due); the records it took."""
        # Records fetched before a rebalance can arrive while the tables recover: never
        # read a store that is being recovered.
        if self.app.in_recovery:
            await self.app.tables.wait_until_recovery_completed()
        stats = self.stats
        caught_up = True
        taken = 0
        for tp, batch in records.items():
            partition = tp.partition
            if partition not in self.owned(tp.topic) or not batch:
                continue  # reassigned: its new owner processes it from its checkpoint
            if stats.first_batch_at is None:
                stats.first_batch_at = time.time()
            stats.batches += 1
            taken += len(batch)
            if tp.topic == self.names.repartition_topic:
                await self._hop_batch(partition, batch)
            elif self._direct_lane(partition):
                await self._partition_batch(partition, batch)
            else:
                await self._routed_batch(partition, batch)
            caught_up = caught_up and self._caught_up(tp, batch[-1].offset)
        if self.flusher.due(caught_up):
            await self.flusher.flush(commit=False)
        return taken

    async def _partition_batch(self, partition: int, records: Sequence[Any]) -> None:
        started = time.monotonic()
        applied = self.aggregate.applied(partition)
        # Offsets compared and checkpointed are virtual: live offset + base (0 without a cut).
        base = 0
        if self.history is not None:
            applied, base = await self.history.before_live(partition, applied)
        starting_live = self.history is not None and applied == base - 1
        records = await self.continuity.follow(partition, applied, base, records)
        if not records:
            if partition not in self.aggregate.unstored:
                # A takeover re-reading from an old committed offset: its stored
                # checkpoint is this worker's progress, for status and the next commit.
                stored = self.stats.processed_offsets
                stored[partition] = max(stored.get(partition, -1), applied - base)
            return
        if self.history is not None and starting_live:
            self.history.started_live(partition, records)
        self.stats.stages.decode += time.monotonic() - started
        await self._apply_sliced(partition, records, True, base)

    async def _apply_sliced(
        self, partition: int, records: Sequence[Any], live: bool, base: int
    ) -> None:
        """``_apply_chunk`` of the records, a slice at a time."""

        async def apply(chunk: Sequence[Any]) -> None:
            await self._apply_chunk(partition, chunk, live, base)

        await self._sliced(records, apply)

    async def _sliced(
        self, records: Sequence[Any], apply: Callable[[Sequence[Any]], Awaitable[None]]
    ) -> None:
        """``apply`` a slice of the records at a time, each about ``APPLY_SLICE_S`` of
        work, with the event loop yielded between them; the applied changes are stored as
        soon as a flush is due, so that no flush has a whole fetch's changes to write at
        once. Every lane (direct, routed to the hop, the hop's) goes through here."""
        start = 0
        while start < len(records):
            chunk = records[start : start + self.slices.size]
            began = time.monotonic()
            await apply(chunk)
            self.slices.took(len(chunk), time.monotonic() - began)
            start += len(chunk)
            if self.flusher.due(caught_up=False):
                await self.flusher.flush(commit=False)
            await asyncio.sleep(0)

    async def _apply_chunk(
        self, partition: int, records: Sequence[Any], live: bool, base: int
    ) -> None:
        """Records of the input (``live``) or of the history through route, aggregate and
        outputs; ``base`` is the virtual offset of live offset 0."""
        started = time.monotonic()
        events = await self._route(records)
        if self.seam is not None:
            events = self.seam.admit(partition, live, base, events)
        decoded = time.monotonic()
        last = base + records[-1].offset
        outcome = self.aggregate.apply(partition, events, last, len(records))
        source = self.names.input_topic if live else self.names.history_topic
        await self._queue(partition, outcome, source, base)
        stages = self.stats.stages
        stages.decode += decoded - started
        stages.aggregate += time.monotonic() - decoded

    async def _queue(self, partition: int, outcome: BatchOutcome, topic: str, base: int) -> None:
        """Queue what applying to ``partition`` reported (``OutputStage.queue``), then
        close what its watermark left to close, a step at a time, with the event loop
        yielded between steps: each step stops at the write-back buffer's budget or a
        slice's time, and a store is made between them when due."""
        await self.outputs.queue(partition, outcome, topic, base)
        processor = self.aggregate.processor(partition)
        while processor.closing:
            if self.flusher.due(caught_up=False):
                await self.flusher.flush(commit=False)
            await asyncio.sleep(0)
            await self.outputs.queue(partition, self.aggregate.close_step(partition), topic, base)

    def _direct_lane(self, partition: int) -> bool:
        """Whether the input partition's records may be applied here: decided at its first
        fetch after an assignment and kept until the next, so that its progress is
        either its state's checkpoint or the hop stage's, never both. Only while the
        input has the version's N partitions (the consumer's metadata as of the
        assignment) and this worker owns the partition's state; a version with a cut,
        which has no hop, always."""
        direct = self._direct.get(partition)
        if direct is None:
            count = self.app.consumer.topic_partitions(self.names.input_topic)
            direct = self._direct[partition] = not self.route.hop or (
                count == self.route.partitions and partition in self.owned_states()
            )
        return direct

    async def _routed_batch(self, partition: int, records: Sequence[Any]) -> None:
        """An input partition's records while the input's count is not N: every good one
        is sent on through the hop; the partition's progress is the hop stage's."""
        started = time.monotonic()
        first = self._first_fetched[TP(self.names.input_topic, partition)]
        routed_until = self.hop.routed_until(partition, first)
        records = await self.continuity.follow(partition, routed_until, 0, records)

        async def route(chunk: Sequence[Any]) -> None:
            await self._route(chunk, direct=False)
            self.hop.routed(partition, chunk[-1].offset)

        await self._sliced(records, route)
        self.stats.stages.decode += time.monotonic() - started

    async def _hop_batch(self, partition: int, records: Sequence[Any]) -> None:
        """A repartition topic partition's records: the events the route stages sent to
        this state partition, applied at their source coordinates."""
        started = time.monotonic()
        applied = self.aggregate.hop_applied(partition)
        records = await self.hop_continuity.follow(partition, applied, 0, records)
        self.stats.stages.decode += time.monotonic() - started
        if not records and partition not in self.aggregate.unstored_hop:
            # A takeover re-reading from an old committed offset (see _partition_batch).
            stored = self.stats.hop_offsets
            stored[partition] = max(stored.get(partition, -1), applied)

        async def apply(chunk: Sequence[Any]) -> None:
            decoding = time.monotonic()
            unpacked = self.route.unpack(chunk)
            await self._dead_letters(unpacked.rejected)
            decoded = time.monotonic()
            outcome = self.aggregate.apply_hop(
                partition, unpacked.events, unpacked.sources, chunk[-1].offset, len(chunk)
            )
            await self._queue(partition, outcome, self.names.input_topic, 0)
            self.stats.stages.decode += decoded - decoding
            self.stats.stages.aggregate += time.monotonic() - decoded

        await self._sliced(records, apply)

    async def _route(self, records: Sequence[Any], direct: bool = True) -> list[tuple[int, Event]]:
        """The route stage: bad records dead-lettered, hop records queued; the events to
        apply here (the direct lane)."""
        routed = self.route.split(records, direct)
        await self._dead_letters(routed.rejected)
        for record, event in routed.hop:
            self.hop.send(record, event)
        return routed.direct

    async def _dead_letters(self, rejected: Sequence[tuple[Any, str, str]]) -> None:
        for record, reason, detail in rejected:
            await self.outputs.dead_letter(record, reason, detail)

    # -- Faust ---------------------------------------------------------------------------

    def owned(self, topic: str) -> set[int]:
        """The partitions of ``topic`` assigned to this worker."""
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def owned_partitions(self) -> set[int]:
        """The input partitions assigned to this worker."""
        return self.owned(self.names.input_topic)

    def owned_states(self) -> set[int]:
        """The state partitions assigned to this worker: those of the repartition topic,
        which Faust assigns with the tables' changelogs (both have N partitions)."""
        return self.owned(self.names.repartition_topic)

    def _caught_up(self, tp: TP, offset: int) -> bool:
        """Whether ``offset`` is the last record of ``tp`` the consumer knows of. A
        rebalance can take the partition away while its fetch is applied (the batch
        yields between slices and closing steps): then it has no highwater, and the
        revocation, which waits for this batch, stores what it applied."""
        consumer = self.app.consumer
        if tp not in consumer.assignment():
            return False
        highwater: int | None = consumer.highwater(tp)
        return offset + 1 >= (-1 if highwater is None else highwater)
