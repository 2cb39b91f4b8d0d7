"""Connection options and small read-only queries shared by kappa's aiokafka clients."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from mode import Service

from agents.errors import KappaError
from agents.gap_reader import GapReader
from app.security import aiokafka_security
from app.settings import KappaSettings
from app.versions.group_members import GroupDescription, describe_group

T = TypeVar("T")


def client_options(settings: KappaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap,
        "request_timeout_ms": 30_000,
        **aiokafka_security(settings),
    }


def on_kafka(
    settings: KappaSettings,
    work: Coroutine[Any, Any, T],
    changed: str = "Nothing was changed unless the message says so.",
) -> T:
    """Run ``work``; Kafka's failures become an error that says what to check, and
    (``changed``) what was changed before it failed."""
    try:
        return asyncio.run(work)
    except KafkaError as exc:
        raise KappaError(
            f"Kafka failed at {settings.bootstrap}: {exc}",
            hint="is the broker running (`kappa kafka status`; `kappa kafka start` starts a "
            f"local one), and is KAPPA_BOOTSTRAP_SERVERS right? {changed}",
        ) from None


class OffsetQueries(Service):
    """Offsets of topics and of a consumer group, over one admin client and one consumer
    that stay open between calls. A worker's status endpoint asks on every request, and
    opening three connections each time made a status poll cost the worker more than the
    answer. Clients that fail are closed, and opened again by the next call; a call cut
    short by its caller's timeout leaves them open: closing them made every next call
    connect again, and on a busy worker time out again, for as long as it was busy."""

    def __init__(self, options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._options = options
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self._opening = asyncio.Lock()  # concurrent first calls open one pair, not two

    async def _open(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        async with self._opening:
            if self._clients is None:
                admin = AIOKafkaAdminClient(**self._options)
                consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False)
                try:
                    await admin.start()
                    await consumer.start()
                except BaseException:
                    await admin.close()
                    await consumer.stop()
                    raise
                self._clients = admin, consumer
            return self._clients

    async def offset_ranges(self, topics: list[str]) -> dict[str, dict[int, tuple[int, int]]]:
        """(first, next) offset of every partition of ``topics``; absent topics are omitted."""
        admin, consumer = await self._open()
        try:
            described = await admin.describe_topics(topics)
            tps = [
                TopicPartition(topic["topic"], partition["partition"])
                for topic in described
                if topic.get("error_code", 0) == 0
                for partition in topic["partitions"]
            ]
            begins = await consumer.beginning_offsets(tps) if tps else {}
            ends = await consumer.end_offsets(tps) if tps else {}
        except Exception:
            await self.close()
            raise
        ranges: dict[str, dict[int, tuple[int, int]]] = {}
        for tp in tps:
            ranges.setdefault(tp.topic, {})[tp.partition] = (begins[tp], ends[tp])
        return ranges

    async def topics(self) -> list[str]:
        """Every topic on the cluster."""
        admin, _ = await self._open()
        try:
            return sorted(await admin.list_topics())
        except Exception:
            await self.close()
            raise

    async def committed(self, group: str) -> dict[TopicPartition, int]:
        """The consumer group's committed offset (the next record to read) per partition."""
        admin, _ = await self._open()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        except Exception:
            await self.close()
            raise
        return {tp: position.offset for tp, position in offsets.items()}

    async def group(self, group: str) -> GroupDescription:
        """The consumer group's state and members (app.versions.group_members)."""
        admin, _ = await self._open()
        try:
            return await describe_group(admin, group)
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            admin, consumer = clients
            await consumer.stop()
            await admin.close()

    async def on_stop(self) -> None:
        await self.close()


async def offset_ranges(
    options: dict[str, Any], topics: list[str]
) -> dict[str, dict[int, tuple[int, int]]]:
    """``OffsetQueries.offset_ranges`` for a one-off question."""
    queries = OffsetQueries(options)
    try:
        return await queries.offset_ranges(topics)
    finally:
        await queries.close()


async def read_range(
    options: dict[str, Any], topic: str, partition: int, start: int, end: int
) -> list[Any]:
    """The records of one partition with ``start <= offset < end``, read without a group."""
    if start >= end:
        return []  # and no consumer: aiokafka's, stopped before it ran, raises CancelledError
    reader = GapReader(options)
    records: list[Any] = []
    try:
        async for fetched in reader.read(topic, partition, start, end):
            records.extend(fetched)
    finally:
        await reader.stop()
    return records


async def read_partition(
    options: dict[str, Any], topic: str, partition: int = 0
) -> list[Any] | None:
    """Every record a partition holds now, oldest first, read without a group (a small
    compacted control topic, read once); None when the topic does not exist."""
    ranges = (await offset_ranges(options, [topic])).get(topic)
    if ranges is None or partition not in ranges:
        return None
    return await read_range(options, topic, partition, *ranges[partition])
