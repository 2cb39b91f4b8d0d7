"""The outputs stage: late events, closed windows' results and dead letters, queued on
the sender for the next flush, each on the partition of its source input partition."""

from __future__ import annotations

from typing import Any

from agents.batch_sender import BatchSender
from agents.names import PipelineNames
from agents.outputs import (
    Headers,
    dead_letter_headers,
    late_record,
    output_partition,
    result_record,
)
from agents.processor import BatchOutcome
from agents.stats import WorkerStats


class OutputStage:
    def __init__(self, names: PipelineNames, sender: BatchSender, stats: WorkerStats) -> None:
        self.names = names
        self.sender = sender
        self.stats = stats

    async def queue(self, partition: int, outcome: BatchOutcome, topic: str, base: int) -> None:
        """What applying to ``partition`` reported; ``topic`` is where its records came
        from and ``base`` the virtual offset of that topic's offset 0."""
        stats = self.stats
        stats.events += outcome.applied
        stats.duplicates += outcome.duplicates
        stats.window_results += len(outcome.closed)
        for late in outcome.late:
            event = late.event
            stats.note_late(event.key, event.ts_ms, late.watermark)
            offset = late.offset - base  # the record's own offset in ``topic``
            key, value = late_record(topic, late.source, offset, event, late.watermark)
            await self._send(self.names.late_topic, partition, key, value)
        if outcome.closed:
            # One look-up for them all: a many-keyed batch closes about a window per event.
            topic = self.names.results_topic
            to = output_partition(partition, await self.sender.partition_count(topic))
            add = self.sender.add
            for result in outcome.closed:
                add(topic, to, *result_record(result))

    async def dead_letter(self, record: Any, reason: str, detail: str) -> None:
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        self.stats.note_dead_letter(reason, detail, source)
        await self._send(
            self.names.dead_letter_topic,
            record.partition,
            f"{record.topic}:{record.partition}:{record.offset}".encode(),
            record.value if record.value is not None else b"",
            dead_letter_headers(reason, detail, source),
        )

    async def _send(
        self, topic: str, source: int, key: bytes, value: bytes, headers: Headers | None = None
    ) -> None:
        """Queue an output record on the partition of its ``source`` input partition."""
        count = await self.sender.partition_count(topic)
        self.sender.add(topic, output_partition(source, count), key, value, headers)
