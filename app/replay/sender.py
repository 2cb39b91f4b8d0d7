"""Records to one topic as aiokafka record batches: one open batch per partition.

``AIOKafkaProducer.send`` costs a coroutine, a future and a partitioner call per record;
here a record costs one ``BatchBuilder.append``. A batch that is full is submitted with
``send_batch``, which waits while the partition already has a batch queued, so at most
two batches per partition are in memory or in flight. The producer keeps its own
settings (``acks=all``, idempotence), and ``flush`` waits until Kafka has every record.
Kafka's acknowledgements give each batch's first offset, so ``end_offsets`` says where
the records sent end in each partition, with no query afterwards.

Each record carries the replay id and its row number on its partition in headers
(``app/replay/resume.py``); the rows a resumed replay wrote before are skipped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaProducer

from app.replay.resume import ID_HEADER, SEQ_HEADER, Sequencer


class PartitionBatches:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        replay_id: str,
        sequencer: Sequencer | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._id_header = (ID_HEADER, replay_id.encode())
        self.sequencer = sequencer or Sequencer()
        self._open: dict[int, Any] = {}  # partition -> its BatchBuilder being filled
        # Submitted, not yet seen acknowledged: (partition, records, Kafka's answer).
        self._pending: list[tuple[int, int, asyncio.Future[Any]]] = []
        # Per partition, the offset after the last record Kafka acknowledged, and how
        # many records this sender had acknowledged there.
        self.end_offsets: dict[int, int] = {}
        self.acknowledged: dict[int, int] = {}

    async def add(
        self,
        partitions: pa.Int64Array,
        keys: pa.Array,
        values: pa.BinaryArray,
        ts_ms: pa.Int64Array,
    ) -> int:
        """Append records (record timestamp = ``ts_ms``); each partition's in the order
        given; those the sequencer skips are left out. Returns how many were added. Raises
        the error of any earlier batch Kafka refused."""
        self._raise_failures()
        binary_keys = keys.cast(pa.binary())
        added = 0
        for partition in pc.unique(partitions).to_pylist():
            mask = pc.equal(partitions, partition)
            chosen = [binary_keys.filter(mask), values.filter(mask), ts_ms.filter(mask)]
            seq, skip = self.sequencer.take(partition, len(chosen[0]))
            seq += skip
            builder = self._open.get(partition) or self._producer.create_batch()
            for key, value, ts in zip(*(c[skip:].to_pylist() for c in chosen), strict=True):
                headers = [self._id_header, (SEQ_HEADER, b"%d" % seq)]
                seq += 1
                if builder.append(timestamp=ts, key=key, value=value, headers=headers) is None:
                    await self._submit(partition, builder)
                    builder = self._producer.create_batch()
                    # A new batch takes one.
                    builder.append(timestamp=ts, key=key, value=value, headers=headers)
            added += len(chosen[0]) - skip
            self._open[partition] = builder
        return added

    async def submit(self) -> None:
        """Submit every open batch, without waiting for Kafka."""
        open_batches, self._open = self._open, {}
        for partition, builder in open_batches.items():
            if builder.record_count():
                await self._submit(partition, builder)

    async def flush(self) -> None:
        """Submit every open batch and wait until Kafka has acknowledged every record."""
        await self.submit()
        await asyncio.gather(*(future for _, _, future in self._pending))
        self._raise_failures()

    async def _submit(self, partition: int, builder: Any) -> None:
        builder.close()
        future = await self._producer.send_batch(builder, self._topic, partition=partition)
        self._pending.append((partition, builder.record_count(), future))

    def _raise_failures(self) -> None:
        """Note what Kafka acknowledged; raise what it refused."""
        pending = []
        for partition, records, future in self._pending:
            if future.done():
                end = future.result().offset + records  # raises what Kafka answered
                self.end_offsets[partition] = max(self.end_offsets.get(partition, 0), end)
                self.acknowledged[partition] = self.acknowledged.get(partition, 0) + records
            else:
                pending.append((partition, records, future))
        self._pending = pending
