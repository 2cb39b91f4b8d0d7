"""The input's records, a fetch at a time: validated, applied, and stored per interval.

``BatchConsumer`` hands every fetch of the input topic to ``BatchLoop.on_records``. For
each of the fetch's partitions, in offset order:

1. **Gap check.** The first record must follow the partition's last applied one. Records
   the consumer skipped (around a rebalance, or after a failed batch) are read back from
   Kafka first (``GapReader``); a partition with no state must start at the first offset
   its log holds, or its state is rebuilt from the log, or refused when retention took
   records whose state is gone (``_before_first_record``).
2. **Decode and validate** every record (``EventParser.parse_batch``, which also computes
   the spec's derived fields and its ``where``); bad and misrouted records are queued as
   dead letters, and events the ``where`` leaves out are counted as filtered.
3. **Apply** the partition's good events in one ``PartitionProcessor.apply``; its late
   events and closed windows' results are queued as outputs.

Nothing is written per fetch. State and outputs are stored by ``flush`` when the input
is caught up (the fetch reached the partitions' end: live traffic is stored at once), or
every ``KAPPA_COMMIT_INTERVAL_MS``, or after ``KAPPA_COMMIT_EVENTS`` events: under a
backlog a hot key is written once per interval, not once per fetch. A flush is the
ordered, acknowledged protocol of docs/guarantees.md: the outputs, then the state steps
of ``store_batch`` (closed windows, key records, checkpoints last), each acknowledged by
Kafka before it reaches RocksDB. Then the group's offsets are committed, at most once per
interval, so they trail the stored checkpoints by at most one interval.

A batch that fails or is cut short drops every processor and its unstored changes (the
stores hold only acknowledged steps); the next fetch's gap check reads the lost records
back. A rebalance waits for the batch in hand, then stores and commits everything before
the partitions go (``on_revoked``): the new owner never races a late write.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from agents.batch_sender import BatchSender
from agents.errors import StateLost
from agents.events import Event, EventParser, Rejected
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.names import PipelineNames
from agents.outputs import (
    Headers,
    dead_letter_headers,
    late_record,
    output_partition,
    result_record,
)
from agents.partitions import expected_partition
from agents.processor import BatchOutcome, PartitionProcessor
from agents.seam_record import event_time
from agents.stats import WorkerStats
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState, store_batch

log = logging.getLogger(__name__)

# After a failed batch, before the next one: a broker that is gone is not hammered.
RETRY_PAUSE_S = 1.0
# Records decoded and applied at a time: a fetch can hold tens of thousands per
# partition, and their decoded events need not all be alive at once.
APPLY_CHUNK = 4096
# A version with a cut, before its history is sealed: how long a fetch waits for the
# seam record before it is handed back to Kafka (read again later).
SEAM_WAIT_S = 1.0


@dataclass(frozen=True)
class CommitPolicy:
    """When a flush is due: caught up, or this long or this many events since the last."""

    interval_s: float
    events: int


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
    ) -> None:
        self.app = app
        self.names = names
        self.partitions = partitions
        self.parser = parser
        self.config = config
        self.new_state = new_state
        self.sender = sender
        self.gaps = gaps
        self.policy = policy
        self.streamed_too = streamed_too
        # A version with a cut reads its history first (agents/history_seam.py).
        self.seam = seam
        self.stats = WorkerStats()
        self.processors: dict[int, PartitionProcessor] = {}
        self.states: dict[int, TablePartitionState] = {}
        # Partitions applied since the last flush, with their last applied offset.
        self._unstored: dict[int, int] = {}
        self._unstored_events = 0
        self._flushed_at = time.monotonic()
        self._committed_at = time.monotonic()
        self._committed: dict[int, int] = {}  # the last offset committed, per partition
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
        if self.seam is not None and not await self.seam.wait_sealed(SEAM_WAIT_S):
            await self._hand_back(records)  # no live record before the history
            self._returned_at = time.monotonic()
            return
        try:
            async with self._lock:
                taken = await self._batch(records)
            self.stats.batch_done(time.monotonic() - began, taken)
        except asyncio.CancelledError:
            self.drop()
            raise
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
                if self.seam is not None and self.seam.sealed:
                    await self._idle_histories()
                if self._unstored:
                    await self.flush(commit=True)
                elif time.monotonic() - self._committed_at >= self.policy.interval_s:
                    await self._commit()
            except Exception:
                log.exception("a timed store or commit failed; the next one retries")

    async def on_revoked(self) -> None:
        """A rebalance: store what is applied, commit, and forget every partition
        (they are rebuilt from their stores when next assigned)."""
        async with self._lock:
            try:
                if self._unstored:
                    await self.flush(commit=True)
                else:
                    await self._commit()
            except Exception:
                log.exception("storing before a rebalance failed; the new owner redoes it")
            finally:
                self.drop()

    async def on_stop(self) -> None:
        """A clean stop: store what is applied, so a restart re-reads nothing."""
        self._stopping = True
        await self.on_revoked()
        await self.sender.stop()
        await self.gaps.stop()

    def drop(self) -> None:
        """Forget every processor and unstored change; the stores stay as they were."""
        self.processors.clear()
        self.states.clear()
        self._unstored.clear()
        self._unstored_events = 0
        self.sender.discard()

    # -- what the web views read --------------------------------------------------------

    def live_state(self, partition: int) -> TablePartitionState | None:
        """The partition's state with its unstored changes, while this worker runs it."""
        return self.states.get(partition)

    def running_watermark(self, partition: int) -> int | None:
        processor = self.processors.get(partition)
        return None if processor is None else processor.watermark

    # -- one fetch ----------------------------------------------------------------------

    def processor(self, partition: int) -> PartitionProcessor:
        processor = self.processors.get(partition)
        if processor is None:
            state = self.states[partition] = self.new_state(partition)
            processor = self.processors[partition] = PartitionProcessor(self.config, state)
        return processor

    async def _batch(self, records: Mapping[TP, Sequence[Any]]) -> int:
        """Apply a fetch (and store, when a flush is due); the records it took."""
        # Records fetched before a rebalance can arrive while the tables recover: never
        # read a store that is being recovered.
        if self.app.in_recovery:
            await self.app.tables.wait_until_recovery_completed()
        await self.sender.start()
        stats = self.stats
        owned = self.owned_partitions()
        caught_up = True
        taken = 0
        for tp, batch in records.items():
            partition = tp.partition
            if partition not in owned or not batch:
                continue  # reassigned: its new owner processes it from its checkpoint
            if stats.first_batch_at is None:
                stats.first_batch_at = time.time()
            stats.batches += 1
            taken += len(batch)
            await self._partition_batch(partition, batch)
            caught_up = caught_up and batch[-1].offset + 1 >= self._highwater(tp)
        if self._unstored and self._flush_due(caught_up):
            await self.flush(commit=False)
        return taken

    async def _partition_batch(self, partition: int, records: Sequence[Any]) -> None:
        started = time.monotonic()
        processor = self.processor(partition)
        applied = self._unstored.get(partition, processor.progress.offset)
        # Offsets compared and checkpointed are virtual: live offset + base (0 without a cut).
        base = 0
        if self.seam is not None:
            applied = await self._history(partition, processor, applied)
            base = self.seam.base(partition)
        starting_live = self.seam is not None and applied == base - 1
        first = base + records[0].offset
        if applied < 0 and first > 0:
            applied = await self._before_first_record(partition, first)
        if first > applied + 1:
            gap = await self._read_gap(partition, applied + 1 - base, first - base)
            records = [*gap, *records]
        if base + records[0].offset <= applied:
            fresh = [record for record in records if base + record.offset > applied]
            self.stats.duplicates += len(records) - len(fresh)  # stored before: done
            records = fresh
            if not records:
                if partition not in self._unstored:
                    # A takeover re-reading from an old committed offset: its stored
                    # checkpoint is this worker's progress, for status and the next commit.
                    stored = self.stats.processed_offsets
                    stored[partition] = max(stored.get(partition, -1), applied - base)
                return
        if self.seam is not None and starting_live:
            self.seam.started_live(partition, records, functools.partial(event_time, self.parser))
        stages = self.stats.stages
        stages.decode += time.monotonic() - started
        for start in range(0, len(records), APPLY_CHUNK):
            chunk = records[start : start + APPLY_CHUNK]
            await self._apply_chunk(partition, processor, chunk, live=True, base=base)

    async def _apply_chunk(
        self,
        partition: int,
        processor: PartitionProcessor,
        records: Sequence[Any],
        live: bool,
        base: int,
    ) -> None:
        """Apply records of the input (``live``) or of the history, ``base`` being the
        virtual offset of live offset 0."""
        started = time.monotonic()
        events, rejected = self._decode(records)
        for record, reason, detail in rejected:
            await self._dead_letter(record, reason, detail)
        if self.seam is not None:
            events = self.seam.admit(partition, live, base, events)
        decoded = time.monotonic()
        outcome = processor.apply(events)
        last = base + records[-1].offset
        processor.checkpoint(last)
        self._unstored[partition] = last
        self._unstored_events += len(records)
        source = self.names.input_topic if live else self.names.history_topic
        await self._queue_outputs(partition, outcome, source, base)
        aggregated = time.monotonic()
        stages = self.stats.stages
        stages.decode += decoded - started
        stages.aggregate += aggregated - decoded

    def _decode(
        self, records: Sequence[Any]
    ) -> tuple[list[tuple[int, Event]], list[tuple[Any, str, str]]]:
        """The good events by offset, and the bad and misrouted records with the reason."""
        partitions = self.partitions
        events: list[tuple[int, Event]] = []
        rejected: list[tuple[Any, str, str]] = []
        parsed = self.parser.parse_batch([record.value for record in records])
        for record, event in zip(records, parsed, strict=True):
            if isinstance(event, Rejected):
                rejected.append((record, event.reason, event.detail))
                continue
            if not event.kept:
                self.stats.filtered += 1
                continue
            if expected_partition(event.key, partitions) != record.partition:
                rejected.append(
                    (
                        record,
                        "misrouted",
                        f"key {event.key!r} belongs on partition "
                        f"{expected_partition(event.key, partitions)}; produce with the "
                        "record key set to the event's key and Kafka's default (murmur2) "
                        "partitioner",
                    )
                )
                continue
            events.append((record.offset, event))
        return events, rejected

    async def _queue_outputs(
        self, partition: int, outcome: BatchOutcome, topic: str, base: int
    ) -> None:
        stats = self.stats
        stats.events += outcome.applied
        stats.duplicates += outcome.duplicates
        stats.window_results += len(outcome.closed)
        for late in outcome.late:
            event = late.event
            stats.note_late(event.key, event.ts_ms, late.watermark)
            offset = late.offset - base  # the record's own offset in ``topic``
            key, value = late_record(topic, partition, offset, event, late.watermark)
            await self._send(self.names.late_topic, partition, key, value)
        for result in outcome.closed:
            await self._send(self.names.results_topic, partition, *result_record(result))

    async def _dead_letter(self, record: Any, reason: str, detail: str) -> None:
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        self.stats.note_dead_letter(reason, detail, source)
        await self._send(
            self.names.dead_letter_topic,
            record.partition,
            f"{record.topic}:{record.partition}:{record.offset}".encode(),
            record.value if record.value is not None else b"",
            dead_letter_headers(reason, detail, source),
        )

    async def _send(
        self, topic: str, source: int, key: bytes, value: bytes, headers: Headers | None = None
    ) -> None:
        """Queue an output record on the partition of its ``source`` input partition."""
        count = await self.sender.partition_count(topic)
        self.sender.add(topic, output_partition(source, count), key, value, headers)

    # -- storing ------------------------------------------------------------------------

    def _flush_due(self, caught_up: bool) -> bool:
        # Held changes count as well as events: a hopping window's event changes one
        # aggregate per window it falls in, and closes as many later.
        held = sum(self.states[partition].held_changes() for partition in self._unstored)
        return (
            caught_up
            or max(self._unstored_events, held) >= self.policy.events
            or time.monotonic() - self._flushed_at >= self.policy.interval_s
        )

    async def flush(self, commit: bool) -> None:
        """Store every applied change in the ordered, acknowledged steps, then commit the
        group's offsets when ``commit`` or when an interval has passed since the last."""
        started = time.monotonic()
        await self.sender.send()  # outputs first: acknowledged before any state
        unstored = dict(self._unstored)
        await store_batch([self.states[partition] for partition in unstored], self.sender)
        self._unstored.clear()
        self._unstored_events = 0
        self._flushed_at = time.monotonic()
        self.stats.flushes += 1
        # Counted before the offsets show as stored, so a reader who sees them sees the
        # time it took too.
        self.stats.stages.store += self._flushed_at - started
        self.stats.stored(unstored if self.seam is None else self.seam.input_offsets(unstored))
        if commit or self._flushed_at - self._committed_at >= self.policy.interval_s:
            committing = time.monotonic()
            await self._commit()
            self.stats.stages.store += time.monotonic() - committing

    async def _commit(self) -> None:
        """Commit the stored offsets that are ahead of what this worker last committed."""
        self._committed_at = time.monotonic()
        if self.streamed_too():
            return  # Faust commits as custom agents acknowledge (docs/custom-agents.md)
        owned = self.owned_partitions()
        ahead = {
            partition: offset
            for partition, offset in self.stats.processed_offsets.items()
            if partition in owned and offset > self._committed.get(partition, -1)
        }
        if ahead:
            topic = self.names.input_topic
            await self.app.consumer.commit_stored(
                {TP(topic, partition): offset + 1 for partition, offset in ahead.items()}
            )
            self._committed.update(ahead)

    # -- a version with a cut -----------------------------------------------------------

    async def _history(self, partition: int, processor: PartitionProcessor, applied: int) -> int:
        """Apply what is left of the partition's sealed history; its last virtual offset.

        Read straight from the history topic, like a gap: it is bounded and sealed, so it
        needs no group, no commits and no second subscription. It is stored as it goes
        (the flush policy), so a crash resumes inside the history."""
        assert self.seam is not None
        end = self.seam.base(partition)
        if applied >= end - 1:
            return applied
        log.info("partition %d: applying history offsets %d..%d", partition, applied + 1, end - 1)
        topic = self.names.history_topic
        async for fetched in self.gaps.read(topic, partition, applied + 1, end):
            for start in range(0, len(fetched), APPLY_CHUNK):
                chunk = fetched[start : start + APPLY_CHUNK]
                await self._apply_chunk(partition, processor, chunk, live=False, base=0)
                if self._flush_due(caught_up=False):
                    await self.flush(commit=False)
        # Offsets up to the end that hold no record (deleted leftovers of an interrupted
        # replay) are done too.
        processor.checkpoint(end - 1)
        self._unstored[partition] = end - 1
        return end - 1

    async def _idle_histories(self) -> None:
        """Apply the history of owned partitions that no live fetch has reached: a quiet
        input partition must not hold its history back."""
        assert self.seam is not None
        if self.app.in_recovery:
            return  # never read a store that is being recovered; the next tick will
        await self.sender.start()
        for partition in sorted(self.owned_partitions()):
            processor = self.processor(partition)
            applied = self._unstored.get(partition, processor.progress.offset)
            if applied < self.seam.base(partition) - 1:
                await self._history(partition, processor, applied)

    async def _hand_back(self, records: Mapping[TP, Sequence[Any]]) -> None:
        """Seek the fetch's partitions back to its first records: they are read again
        once the history is sealed (instead of the consumer racing through the input)."""
        assigned = self.app.consumer.assignment()
        for tp, batch in records.items():
            if batch and tp in assigned:
                await self.app.consumer.seek(tp, batch[0].offset)

    # -- gaps and lost state ------------------------------------------------------------

    async def _read_gap(self, partition: int, start: int, end: int) -> list[Any]:
        """The records the consumer skipped between the last applied one and ``end``."""
        records: list[Any] = []
        async for fetched in self.gaps.read(self.names.input_topic, partition, start, end):
            records.extend(fetched)
        if records:
            self.stats.gap_records_read += len(records)
            log.warning(
                "partition %d: offsets %d..%d did not come through the consumer; read %d "
                "record(s) from Kafka",
                partition,
                start,
                end - 1,
                len(records),
            )
        return records

    async def _before_first_record(self, partition: int, offset: int) -> int:
        """The offset to count as applied for a partition whose tables have no checkpoint.

        Its first record should be the first one the log holds. If the group's committed
        offset is further on, the tables have lost the state of what came before (their
        changelogs deleted or truncated): that is rebuilt from the log when the log still
        starts at 0, and refused when retention has removed records whose state is gone.
        """
        topic = self.names.input_topic
        start = await self.gaps.log_start(topic, partition)
        if offset > start and start > 0:
            raise StateLost(
                f"partition {partition} of {topic}: the consumer group has processed up to "
                f"offset {offset}, but the tables hold no state for it, and the log now "
                f"starts at offset {start}: the state of the records before it is gone",
                "restore the changelog topics of this pipeline version, or start a new "
                "version (bump `version` in the spec) to recompute from what the input "
                "still holds",
            )
        if offset > start:
            log.warning(
                "partition %d: no state, but the group had processed up to offset %d; "
                "recomputing it from the start of the log",
                partition,
                offset,
            )
        return start - 1

    # -- Faust ---------------------------------------------------------------------------

    def owned_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.names.input_topic
        }

    def _highwater(self, tp: TP) -> int:
        highwater: int | None = self.app.consumer.highwater(tp)
        return -1 if highwater is None else highwater
