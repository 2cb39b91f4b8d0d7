"""Follows the pipeline's control topic, where ``kappa replay`` reports its progress.

Each worker reads the whole topic (it is small and compacted) without a consumer
group, so every worker knows every replay and can tell whether it has processed its
partitions up to where the replay ended.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from app.kafka_client import client_options
from app.names import PipelineNames
from app.settings import KappaSettings

log = logging.getLogger(__name__)


class ReplayTracker(Service):
    def __init__(self, settings: KappaSettings, names: PipelineNames, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.topic = names.control_topic
        self.replays: dict[str, dict[str, Any]] = {}

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
                        self._apply(record.key, record.value)
        except asyncio.CancelledError:
            raise
        finally:
            await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            report = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("ignoring a malformed control record with key %r", key)
            return
        if isinstance(report, dict):
            self.replays[key.decode(errors="replace")] = report

    def status(self, processed: dict[int, int], owned: set[int]) -> list[dict[str, Any]]:
        """Each replay with, for the partitions this worker owns, whether it caught up."""
        out = []
        for replay_id, report in sorted(self.replays.items()):
            ends = {int(p): int(o) for p, o in (report.get("end_offsets") or {}).items()}
            behind = {
                p: end - 1 - processed.get(p, -1)
                for p, end in ends.items()
                if p in owned and processed.get(p, -1) < end - 1
            }
            done = report.get("state") == "complete"
            out.append(
                {
                    **report,
                    "id": replay_id,
                    "processed_by_this_worker": done and not behind,
                    "records_behind": behind,
                }
            )
        return out
