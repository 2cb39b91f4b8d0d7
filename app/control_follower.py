"""A worker's view of a small compacted control topic of one partition, kept current.

Such a topic (a version's replay progress and seam, a pipeline's active version) is
read whole from its start, without a consumer group, and then followed: every worker
knows every record.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from app.kafka_client import client_options
from app.settings import KappaSettings


class ControlTopicFollower(Service):
    """Hands every record of ``topic`` (partition 0), oldest first, to ``on_record``."""

    def __init__(self, settings: KappaSettings, topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = topic

    def on_record(self, key: bytes | None, value: bytes | None) -> None:
        raise NotImplementedError

    @Service.task
    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            **client_options(self.settings), enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        try:
            partition = TopicPartition(self.topic, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            while not self.should_stop:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self.on_record(record.key, record.value)
        except asyncio.CancelledError:
            raise
        finally:
            await consumer.stop()
