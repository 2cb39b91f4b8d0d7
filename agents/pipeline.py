"""The thin Faust side of the aggregation: topics, tables and the agent.

Every record of the input topic, replayed or live, reaches ``aggregate``. The agent
validates it (bad records go to the dead-letter topic with the reason in headers),
hands good events to the partition's ``PartitionProcessor``, and sends what the
processor reports: late events to the late topic, final window results to the
compacted results topic.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from agents.aggregation import AggregationConfig, PartitionProcessor
from agents.batch_sender import BatchSender, default_partition
from agents.gap_reader import GapReader
from agents.state import TablePartitionState, store_batch
from app.errors import StateLost
from app.events import Event, EventParser, Rejected
from app.kafka_client import client_options
from app.names import PipelineNames
from app.settings import KappaSettings
from app.spec import PipelineSpec

log = logging.getLogger(__name__)
RECENT = 20  # dead letters and late events kept for the dashboard


@dataclass
class PipelineStats:
    """Counters since this worker started (the topics hold the durable totals)."""

    events: int = 0
    duplicates: int = 0
    late: int = 0
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    window_results: int = 0
    batches: int = 0
    gap_records_read: int = 0
    processed_offsets: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    # Epoch seconds: when the first batch with events began, and when the last one was
    # stored; together with processed_offsets (updated at the same moment) they time a run.
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    # The latest dead letters and late events, newest last, for the dashboard.
    recent_dead_letters: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    recent_late: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    # Told (seconds, events) once per batch: the metrics' histograms.
    batch_observer: Callable[[float, int], None] | None = None

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_letters_by_reason.values())

    def stored(self, began: float, offsets: dict[int, int], events: int) -> None:
        """A batch of ``events`` that began at ``began`` is stored, up to ``offsets`` per
        partition."""
        now = time.time()
        if self.batch_observer is not None:
            self.batch_observer(now - began, events)
        if offsets:
            if self.first_batch_at is None:
                self.first_batch_at = began
            self.last_batch_at = now
            self.processed_offsets.update(offsets)

    def note_dead_letter(self, reason: str, detail: str, source: dict[str, Any]) -> None:
        self.dead_letters_by_reason[reason] += 1
        self.recent_dead_letters.append(
            {"at": time.time(), "reason": reason, "detail": detail, "source": source}
        )

    def note_late(self, key: str, event_ms: int, watermark_ms: int | None) -> None:
        self.late += 1
        self.recent_late.append(
            {"at": time.time(), "key": key, "event_ms": event_ms, "watermark_ms": watermark_ms}
        )


# Checked for every event, and aiokafka's murmur2 is pure Python: hot keys hit the cache.
@functools.lru_cache(maxsize=65_536)
def expected_partition(key: str, partitions: int) -> int:
    """The partition an event's key belongs on."""
    return default_partition(key.encode(), partitions)


class Pipeline:
    """A pipeline spec wired into a Faust app."""

    def __init__(
        self, app: faust.App, spec: PipelineSpec, settings: KappaSettings, partitions: int
    ) -> None:
        self.app = app
        self.spec = spec
        self.names = PipelineNames(spec)
        self.partitions = partitions
        self.parser = EventParser(spec)
        self.config = AggregationConfig(
            value_names=spec.values,
            metrics=spec.metrics,
            windows=spec.windows,
            lateness_ms=spec.lateness_ms,
            retention_ms=spec.retention_ms,
        )
        self.stats = PipelineStats()
        self.processors: dict[int, PartitionProcessor] = {}
        self.states: dict[int, TablePartitionState] = {}
        self.sender = BatchSender(client_options(settings))
        self.gaps = GapReader(client_options(settings))
        self._revoked: set[int] = set()
        self.batch_max = settings.batch_max
        self.key_cache = settings.key_cache
        self.batch_within = settings.batch_within_ms / 1000
        self.input = self._raw_topic(self.names.input_topic)
        self.keys = self._table("keys", settings, "per key: fence offset, totals, open windows")
        self.closed = self._table("closed", settings, "closed windows kept for the retention")
        self.meta = self._table("meta", settings, "per partition: watermark, closed buckets")
        app.agent(self.input, name=f"{self.names.prefix}.aggregate")(self.aggregate)
        app.on_partitions_revoked.connect(self._on_revoked)

    def _raw_topic(self, name: str) -> Any:
        """Bytes in and out: kappa decodes and validates records itself."""
        return self.app.topic(
            name, partitions=self.partitions, key_serializer="raw", value_serializer="raw"
        )

    def _table(self, name: str, settings: KappaSettings, help_text: str) -> Any:
        return self.app.Table(
            name,
            partitions=self.partitions,
            key_type=str,
            help=help_text,
            options={
                "driver": "rocksdict",
                # Faust's default is a 2 GiB block cache per partition store.
                "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
                "block_cache_compressed_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
                "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
                "max_write_buffer_number": 2,
            },
        )

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Dropped between batches, never under a batch that still holds their writes.
        (revoked,) = args
        self._revoked.update(tp.partition for tp in revoked if tp.topic == self.names.input_topic)

    def owned_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == self.names.input_topic
        }

    def _state(self, partition: int) -> TablePartitionState:
        return TablePartitionState(self.keys, self.closed, self.meta, partition, self.key_cache)

    def processor(self, partition: int) -> PartitionProcessor:
        """The partition's processor; only the agent creates them, while it owns the
        partition, so a query can never build one from a stale or foreign store."""
        processor = self.processors.get(partition)
        if processor is None:
            state = self.states[partition] = self._state(partition)
            processor = self.processors[partition] = PartitionProcessor(self.config, state)
        return processor

    def watermark(self, partition: int) -> int | None:
        """For queries: the running processor's watermark, or the stored one."""
        processor = self.processors.get(partition)
        if processor is not None:
            return processor.watermark
        progress = self._state(partition).get_progress()
        return None if progress is None else self.config.watermark(progress)

    async def aggregate(self, stream: Any) -> None:
        """Processes events in batches (up to ``KAPPA_BATCH_MAX``, or what arrived within
        ``KAPPA_BATCH_WITHIN_MS``).

        A batch ends with everything it produced acknowledged by Kafka, in this order:
        window results, late events and dead letters; then the partitions' state (see
        ``store_batch``), the checkpoints last. Only then does Faust acknowledge the
        batch's events and later commit their offsets. A crash at any point leaves a
        prefix of that sequence, and on restart the checkpoint and the per-key fences
        skip what the prefix already holds; records after the checkpoint that the
        stream does not deliver again are read back from Kafka (``_fill_gap``).
        """
        await self.sender.start()
        try:
            await self._batches(stream)
        except StateLost as lost:
            # Going on would count wrong, and restarting the agent would only fail
            # again: stop the worker, with the reason, rather than hang.
            log.critical("%s", lost)
            await self.app.crash(lost)
        finally:
            # A batch cut short (a failed send, a broker gone for too long) leaves the
            # processors holding changes that were never stored, and take_events acks
            # its events anyway. Forget them: the stores hold only acknowledged steps,
            # and when Faust restarts the agent the gap check reads the lost batch's
            # records again from Kafka.
            self.processors.clear()
            self.states.clear()
            await self.sender.stop()
            await self.gaps.stop()

    async def _batches(self, stream: Any) -> None:
        async for events in stream.take_events(self.batch_max, within=self.batch_within):
            began = time.time()
            self.stats.batches += 1
            # Events fetched before a rebalance can still arrive while the tables
            # recover: never read a store that is being recovered.
            if self.app.in_recovery:
                await self.app.tables.wait_until_recovery_completed()
            # A partition revoked since the last batch is rebuilt from its store on next use.
            for partition in self._revoked:
                self.processors.pop(partition, None)
                self.states.pop(partition, None)
            self._revoked.clear()
            owned = self.owned_partitions()
            last: dict[int, int] = {}
            for event in events:
                message = event.message
                if message.partition not in owned:
                    continue  # reassigned: its new owner processes it from its checkpoint
                partition = message.partition
                applied = last.get(partition, self.processor(partition).progress.offset)
                if applied < 0 and message.offset > 0:
                    applied = await self._before_first_record(partition, message.offset)
                if message.offset > applied + 1:
                    await self._fill_gap(partition, applied + 1, message.offset)
                await self._handle(message)
                last[partition] = max(message.offset, applied)
            await self.sender.send()  # outputs first: acknowledged before any state
            for partition, offset in last.items():
                self.processor(partition).checkpoint(offset)
            await store_batch([self.states[partition] for partition in last], self.sender)
            self.stats.stored(began, last, len(events))

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

    async def _fill_gap(self, partition: int, start: int, end: int) -> None:
        """Apply the records the stream skipped between the last applied one and ``end``."""
        read = 0
        async for records in self.gaps.read(self.names.input_topic, partition, start, end):
            read += len(records)
            for record in records:
                await self._handle(record)
        if read:
            self.stats.gap_records_read += read
            log.warning(
                "partition %d: offsets %d..%d did not come through the stream; read %d "
                "record(s) from Kafka",
                partition,
                start,
                end - 1,
                read,
            )

    async def validated(self, stream: Any) -> AsyncIterator[Event]:
        """The stream's good events, as the aggregation sees them: for custom agents.

        Bad records are skipped here; the aggregation agent dead-letters them once.
        """
        async for event in stream.events():
            try:
                parsed = self.parser.parse_bytes(event.message.value)
            except Rejected:
                continue
            if expected_partition(parsed.key, self.partitions) == event.message.partition:
                yield parsed

    async def _handle(self, message: Any) -> None:
        if self.processor(message.partition).done(message.offset):
            self.stats.duplicates += 1  # before the checkpoint: stored, and sent
            return
        try:
            parsed = self.parser.parse_bytes(message.value)
        except Rejected as rejected:
            await self._dead_letter(message, rejected.reason, rejected.detail)
            return
        partition = expected_partition(parsed.key, self.partitions)
        if partition != message.partition:
            await self._dead_letter(
                message,
                "misrouted",
                f"key {parsed.key!r} belongs on partition {partition}; produce with the "
                "record key set to the event's key and Kafka's default (murmur2) partitioner",
            )
            return
        await self._process(parsed, message)

    async def _process(self, parsed: Event, message: Any) -> None:
        outcome = self.processor(message.partition).process(parsed, message.offset)
        stats = self.stats
        if outcome.duplicate:
            # A redelivered event changes no key, but it still moves the watermark,
            # which may close windows whose results a crash kept from being sent.
            stats.duplicates += 1
        else:
            stats.events += 1
        if outcome.late:
            stats.note_late(parsed.key, parsed.ts_ms, outcome.watermark)
            await self._send(
                self.names.late_topic,
                key=self._source_id(message).encode(),
                value=orjson.dumps(
                    {
                        "reason": "behind the watermark",
                        "watermark_ms": outcome.watermark,
                        "event_ms": parsed.ts_ms,
                        "key": parsed.key,
                        "source": self._source(message),
                        "event": parsed.fields,
                    }
                ),
            )
        for result in outcome.closed:
            stats.window_results += 1
            await self._send(
                self.names.results_topic,
                key=result.result_key.encode(),
                value=orjson.dumps(result.as_json()),
            )

    async def _dead_letter(self, message: Any, reason: str, detail: str) -> None:
        self.stats.note_dead_letter(reason, detail, self._source(message))
        await self._send(
            self.names.dead_letter_topic,
            key=self._source_id(message).encode(),
            value=message.value if message.value is not None else b"",
            headers=[
                ("kappa.reason", reason.encode()),
                ("kappa.detail", detail.encode()),
                ("kappa.source", orjson.dumps(self._source(message))),
            ],
        )

    async def _send(
        self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Queue an output record, partitioned by key as Kafka's default partitioner does;
        the batch sends it, and waits for Kafka's acknowledgement, before storing state."""
        partition = await self.sender.partition_for(topic, key)
        self.sender.add(topic, partition, key, value, headers)

    @staticmethod
    def _source_id(message: Any) -> str:
        """Dead-letter and late records are keyed by their source position, so a record
        that is reprocessed after a crash replaces itself in the compacted topic."""
        return f"{message.topic}:{message.partition}:{message.offset}"

    @staticmethod
    def _source(message: Any) -> dict[str, Any]:
        return {"topic": message.topic, "partition": message.partition, "offset": message.offset}
