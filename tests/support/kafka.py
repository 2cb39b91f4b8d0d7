"""Produce and read records with plain aiokafka, independently of kappa."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic

from app.kafka_client import offset_ranges


async def produce_events(
    bootstrap: str, topic: str, events: Iterable[dict[str, Any]], key_field: str
) -> int:
    """Produce JSON events keyed by ``key_field`` with the default (murmur2) partitioner.

    Idempotent, as a live source should be: a broker that dies under a batch makes the
    producer send it again, and without idempotence the topic would hold those events
    twice (a CI run's topic held 109 of 8,000 twice), which kappa rightly counts twice."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = 0
    try:
        for event in events:
            await producer.send(
                topic, key=str(event[key_field]).encode(), value=orjson.dumps(event)
            )
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def produce_raw(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record currently in ``topic``, from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ranges = await offset_ranges({"bootstrap_servers": bootstrap}, [topic])
        tps = [TopicPartition(topic, p) for p in sorted(ranges[topic])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()


async def cluster_names(bootstrap: str) -> tuple[list[str], list[str]]:
    """The cluster's topics and consumer groups."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics(), [g[0] for g in await admin.list_consumer_groups()]
    finally:
        await admin.close()


async def grow_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Add partitions to ``topic`` up to ``partitions``, as an operator would."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=partitions)})
    finally:
        await admin.close()


async def partition_counts(bootstrap: str) -> dict[str, int]:
    """Every topic's partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


async def create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create ``topics`` with ``partitions`` each, as an operator would."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    finally:
        await admin.close()
