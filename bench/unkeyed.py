"""Unkeyed input: the same events with null Kafka keys, so that every record takes the
repartition hop, beside the keyed input that takes the direct lane.

The workload's input topic (keyed by the event's key, as ``kappa replay`` writes it) is
copied record for record to a topic of the same partition count with null keys, each on
the partition after its key's: a random spread would leave a quarter of them (of 4
partitions) on their key's partition, where kappa applies them directly. On it:

- kappa unkeyed topic → tables: a fresh worker, timed until every event has been
  routed and applied through the hop;
- Quix Streams unkeyed: bench.quix_peer with ``group_by`` on the event's key (Quix's
  own repartition topic), timed until it has processed every regrouped record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.partitions import expected_partition
from app.kafka_client import client_options, offset_ranges
from bench import peer
from bench.workers import (
    BenchPipeline,
    Seen,
    kappa_distinct_events,
    processed,
    time_workers,
)


def off_home(value: bytes, partitions: int) -> int:
    """The partition after the event key's (``customer_id``, as kappa reads it)."""
    key = orjson.loads(value)["customer_id"]
    return (expected_partition(key if isinstance(key, str) else str(key), partitions) + 1) % (
        partitions
    )


async def copy_unkeyed(options: dict[str, Any], source: str, target: str, partitions: int) -> int:
    """Every record of ``source`` produced again to ``target`` (created with
    ``partitions``) with a null key, off its key's partition; returns how many."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(target, partitions, 1)])
    finally:
        await admin.close()
    ranges = (await offset_ranges(options, [source]))[source]
    total = sum(end - begin for begin, end in ranges.values())
    tps = [TopicPartition(source, p) for p in ranges]
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    producer = AIOKafkaProducer(**options, linger_ms=20, acks="all")
    await consumer.start()
    await producer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        copied = 0
        while copied < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    partition = off_home(record.value, partitions)
                    await producer.send(target, value=record.value, key=None, partition=partition)
                copied += len(records)
        await producer.flush()
        return copied
    finally:
        await producer.stop()
        await consumer.stop()


def hop_applied(bodies: Sequence[Any | None]) -> Seen:
    """Distinct input records a kappa worker has routed, less the hop records it has
    not applied yet (none while Kafka does not answer its offset queries). A routed
    record's hop record is acknowledged before its input offset counts as processed."""
    routed = kappa_distinct_events(bodies)
    pending = 0
    for body in bodies:
        if body is None or not body["kafka_answered"]:
            return replace(routed, events=0)
        applied = body["hop"]["processed_offsets"]
        for partition, end in body["hop"]["end_offsets"].items():
            pending += end - 1 - applied.get(partition, -1)
    return replace(routed, events=routed.events - pending)


def measure(pipeline: BenchPipeline, events: int) -> dict[str, float]:
    """The unkeyed figures of ``pipeline``'s workload, on a copy of its input topic."""
    unkeyed = replace(pipeline, run=f"{pipeline.run}u")
    copied = asyncio.run(
        copy_unkeyed(
            client_options(pipeline.settings), pipeline.topic, unkeyed.topic, pipeline.partitions
        )
    )
    assert copied == events, (copied, events)
    kappa = time_workers([unkeyed.worker(1)], "/api/status", hop_applied, events)
    quix = unkeyed.peer([str(peer.python()), "-m", "bench.quix_peer"], "quix-unkeyed")
    quix = replace(quix, env={**quix.env, "BENCH_GROUP_BY": "customer_id"})
    return {
        **kappa.figures("hop_topic_to_tables", events),
        **time_workers([quix], "/processed", processed, events).figures("quix_unkeyed", events),
    }
