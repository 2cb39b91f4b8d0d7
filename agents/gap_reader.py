"""Reads a range of a partition straight from Kafka, for records the stream skipped (and
for other readers that need no group: a cut's history, the partitions' stored clocks).

kappa applies each partition's records in offset order, and its checkpoint says that
every record up to it has been applied. That holds only if the stream delivers every
offset. Faust's consumer can skip records around a rebalance: records fetched before
the rebalance are dropped from the stream's buffers, and its gap tracking then treats
the missing offsets as done (compare faust-streaming #629). Rather than trust that,
the agent checks each record's offset against the partition's last applied one and,
on a gap, reads the missing range here and applies it first. A gap that holds no
records (transaction markers, records removed by retention) reads as empty.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.errors import ReadStalled

# A read whose position has not moved for this long gives up: with Kafka out of reach,
# aiokafka's getmany returns nothing, for ever, and the caller (a batch, the timer's
# catch-up) would hold the batch loop through the outage. The caller retries.
STALL_S = 10.0


class GapReader:
    def __init__(self, options: dict[str, Any], stall_s: float = STALL_S) -> None:
        self._options = options
        self._consumer: AIOKafkaConsumer | None = None
        self._stall_s = stall_s

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[Any]]:
        """The records with ``start <= offset < end``, in offset order, a fetch at a time.
        Raises ReadStalled when no fetch moves the position for ``stall_s``."""
        consumer = await self._ensure()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        reached, moved_at = start, time.monotonic()
        while (position := await consumer.position(tp)) < end:
            if position > reached:
                reached, moved_at = position, time.monotonic()
            elif time.monotonic() - moved_at > self._stall_s:
                raise ReadStalled(
                    f"reading {topic}[{partition}] offsets {start} to {end - 1} from Kafka got "
                    f"no further than {position} in {self._stall_s:.0f} s",
                    hint="check that Kafka is reachable; the worker retries the read",
                )
            fetched = await consumer.getmany(tp, timeout_ms=1000)
            records = [r for r in fetched.get(tp, []) if start <= r.offset < end]
            if records:
                yield records

    async def log_start(self, topic: str, partition: int) -> int:
        """The partition's earliest offset still held (retention removes older ones)."""
        consumer = await self._ensure()
        tp = TopicPartition(topic, partition)
        return int((await consumer.beginning_offsets([tp]))[tp])

    async def end_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """Each partition's next offset to be written."""
        consumer = await self._ensure()
        tps = [TopicPartition(topic, partition) for partition in partitions]
        return {tp.partition: int(end) for tp, end in (await consumer.end_offsets(tps)).items()}

    async def offsets_since(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        """Each partition's first offset stored at or after ``timestamp_ms`` (Kafka's
        record timestamps); None for a partition with nothing since."""
        consumer = await self._ensure()
        tps = {TopicPartition(topic, partition): timestamp_ms for partition in partitions}
        found = await consumer.offsets_for_times(tps)
        return {tp.partition: None if at is None else at.offset for tp, at in found.items()}

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            # No group: it only reads what it is told to. Records removed by retention
            # are skipped by starting at the earliest offset still there.
            consumer = AIOKafkaConsumer(
                **self._options, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer
