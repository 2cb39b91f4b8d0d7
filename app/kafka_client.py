"""Connection options and small read-only queries shared by kappa's aiokafka clients."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.security import aiokafka_security
from app.settings import KappaSettings


def client_options(settings: KappaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap,
        "request_timeout_ms": 30_000,
        **aiokafka_security(settings),
    }


async def offset_ranges(
    options: dict[str, Any], topics: list[str]
) -> dict[str, dict[int, tuple[int, int]]]:
    """(first, next) offset of every partition of ``topics``; absent topics are omitted."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    tps = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic.get("error_code", 0) == 0
        for partition in topic["partitions"]
    ]
    ranges: dict[str, dict[int, tuple[int, int]]] = {}
    if not tps:
        return ranges
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    for tp in tps:
        ranges.setdefault(tp.topic, {})[tp.partition] = (begins[tp], ends[tp])
    return ranges
