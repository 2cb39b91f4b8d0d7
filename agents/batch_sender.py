"""Many records to Kafka at once, as one record batch per partition, all acknowledged.

The agent's writes (changelog messages, window results, late events, dead letters)
go through here rather than through Faust's ``Topic.send``/``send_soon``. Faust sends
each message on its own: a coroutine, a ``ProducerBuffer`` entry, a future and a
callback per message, which profiling showed to be most of the worker's time. Here a
batch of records becomes aiokafka ``BatchBuilder``s, one per partition, submitted with
``send_batch`` and awaited together: a few microseconds per record.

The producer is kappa's own, idempotent, with ``acks=all``; it is started when the first
record is sent (a worker with nothing to send needs no Kafka) and stopped with the agent.
"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from typing import Any

from aiokafka import AIOKafkaProducer

from tables.faust_store import Appended

Headers = list[tuple[str, bytes]]
# Below the broker's default message.max.bytes (1 MiB), with room for batch overhead.
MAX_BATCH_BYTES = 1_000_000
# kappa's producer settings (bench.produce measures a bare producer with the same).
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    # In order, once per partition, even across retries: the repartition hop's fences
    # rely on each partition's records arriving in order (docs/guarantees.md).
    "enable_idempotence": True,
    # Records are submitted in whole batches, so lingering only adds latency.
    "linger_ms": 0,
    "max_batch_size": MAX_BATCH_BYTES,
    "max_request_size": MAX_BATCH_BYTES,
}


class BatchSender:
    """Queue records with ``add``; ``send`` submits them all and waits for Kafka."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        # Time spent waiting for Kafka's acknowledgements: what the ordered, acknowledged
        # steps of a batch (the crash-safety mechanism) cost in wall time.
        self.waited_s = 0.0
        self._queued: dict[tuple[str, int], list[tuple[bytes | None, bytes | None, Headers]]] = {}
        self.queued_bytes = 0  # keys and values queued: the outputs in flight
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:  # one producer, however many callers need it at once
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(**self._options, **PRODUCER_SETTINGS)
            try:
                await producer.start()
            except BaseException:
                # Its client was made before the broker refused: close it, or the failed
                # start leaves an "Unclosed AIOKafkaProducer" behind its own error.
                await producer.stop()
                raise
            self._producer = producer

    def discard(self) -> None:
        """Forget what is queued: a failed batch's outputs are the next batch's to redo."""
        self._queued.clear()

    async def stop(self) -> None:
        self.discard()
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            producer = await self._started()
            count = self._partitions[topic] = len(await producer.partitions_for(topic))
        return count

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        # aiokafka's record builder takes a list, never a tuple.
        self._queued.setdefault((topic, partition), []).append((key, value, headers or []))
        self.queued_bytes += len(key or b"") + len(value or b"")

    async def send(self) -> dict[tuple[str, int], Appended]:
        """Submit every queued record and wait until Kafka has acknowledged them all;
        where each (topic, partition)'s records landed."""
        queued, self._queued = self._queued, {}
        self.queued_bytes = 0
        if not queued:
            return {}
        producer = await self._started()
        # Per partition, each batch's acknowledgement and record count, in order.
        submitted: dict[tuple[str, int], list[tuple[asyncio.Future[Any], int]]] = {}
        for (topic, partition), records in queued.items():
            batches = submitted[topic, partition] = []
            batch, count = producer.create_batch(), 0
            for key, value, headers in records:
                # A fresh batch always takes its first record, whatever its size.
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    batches.append((await _submit(producer, batch, topic, partition), count))
                    batch, count = producer.create_batch(), 0
                    batch.append(timestamp=None, key=key, value=value, headers=headers)
                count += 1
            batches.append((await _submit(producer, batch, topic, partition), count))
        started = time.perf_counter()
        await asyncio.gather(*(f for batches in submitted.values() for f, _ in batches))
        self.waited_s += time.perf_counter() - started
        return {tp: _appended(batches) for tp, batches in submitted.items()}

    async def _started(self) -> AIOKafkaProducer:
        """The producer, started at the first need of it: a worker with nothing to send
        needs no Kafka (a timer tick during an outage must not fail for it)."""
        await self.start()
        assert self._producer is not None
        return self._producer


async def _submit(
    producer: AIOKafkaProducer, batch: Any, topic: str, partition: int
) -> asyncio.Future[Any]:
    batch.close()  # so that no other send can append to it
    future: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
    return future


def _appended(batches: list[tuple[asyncio.Future[Any], int]]) -> Appended:
    """Where a partition's acknowledged batches landed (each acknowledgement carries its
    batch's base offset)."""
    bases = [(future.result().offset, count) for future, count in batches]
    gapless = all(base + count == after for (base, count), (after, _) in pairwise(bases))
    last_base, last_count = bases[-1]
    return Appended(bases[0][0], last_base + last_count - 1, gapless)
