"""P_produce: how fast a bare aiokafka producer sends a workload's window results.

A worker must send every window result it closes. On hopping windows an event closes
into 24 results, so the output, not the input, bounds the rate: ``P_results`` (events
per second) is the rate at which a bare producer alone could send the results of
``P_results`` events, doing nothing else. The results kappa's worker wrote are read back
from its results topic and sent again, unchanged, to a new topic with as many partitions,
the fastest way aiokafka has: one record batch per partition (``create_batch``,
``send_batch``), idempotent with ``acks=all``, as kappa's own producer sends them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.batch_sender import PRODUCER_SETTINGS
from app.kafka_client import offset_ranges, read_range

Records = dict[int, list[tuple[bytes | None, bytes | None]]]


async def read_all(options: dict[str, Any], topic: str) -> Records:
    """Every record of ``topic``, per partition: key and value."""
    ranges = (await offset_ranges(options, [topic]))[topic]
    return {
        partition: [
            (record.key, record.value)
            for record in await read_range(options, topic, partition, start, end)
        ]
        for partition, (start, end) in ranges.items()
    }


async def send_all(options: dict[str, Any], records: Records) -> float:
    """Send ``records`` to a new topic, partition for partition; the seconds from the
    first append to the last acknowledgement."""
    topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(records), 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**options, **PRODUCER_SETTINGS)
    await producer.start()
    try:
        await producer.partitions_for(topic)  # its metadata before the clock starts
        started = time.perf_counter()
        acks = []
        for partition, rows in records.items():
            if not rows:
                continue
            batch = producer.create_batch()
            for key, value in rows:
                if batch.append(timestamp=None, key=key, value=value, headers=[]) is None:
                    batch.close()
                    acks.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(timestamp=None, key=key, value=value, headers=[])
            batch.close()
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*acks)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def measure(options: dict[str, Any], results_topic: str, events: int) -> dict[str, float]:
    """The workload's results per event, P_produce (records/s) and P_results (events/s)."""
    records = asyncio.run(read_all(options, results_topic))
    count = sum(map(len, records.values()))
    seconds = asyncio.run(send_all(options, records))
    return {
        "results_per_event": count / events,
        "p_produce_rps": count / seconds,
        "p_results_eps": events / seconds,
    }
