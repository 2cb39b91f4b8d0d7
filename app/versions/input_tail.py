"""The newest event time in each partition of the input topic, read from its last records.

A version's watermark says how far it got; to say how far it is behind, the newest event
the input holds is needed too. Only partitions whose end offset moved since the last
read are read again, and only their last ``TAIL`` records: the newest good event among
them stands for the partition (bad records carry no usable time).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from agents.events import EventParser, Rejected

TAIL = 50


class InputTail(Service):
    """Started and stopped with the worker's app, which closes its consumer."""

    def __init__(
        self, options: dict[str, Any], parser: EventParser, topic: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._options = options
        self._parser = parser
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._read_to: dict[int, int] = {}  # partition -> end offset last read up to
        self._newest: dict[int, int] = {}  # partition -> newest event time (ms)
        self._reading = asyncio.Lock()

    async def newest(self, end_offsets: dict[int, int]) -> dict[int, int]:
        """Newest event time per partition, for partitions that hold a good event."""
        async with self._reading:
            moved = {
                p: end for p, end in end_offsets.items() if end and self._read_to.get(p) != end
            }
            if moved:
                try:
                    await self._read(moved)
                except BaseException:
                    await self.close()
                    raise
        return self.known(end_offsets)

    def known(self, partitions: dict[int, int]) -> dict[int, int]:
        """What the last reads found for ``partitions``, without reading."""
        return {p: ms for p, ms in sorted(self._newest.items()) if p in partitions}

    async def _read(self, ends: dict[int, int]) -> None:
        if self._consumer is None:
            # A seek below the first retained offset falls back to the earliest one.
            consumer = AIOKafkaConsumer(
                **self._options, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            await consumer.start()
            self._consumer = consumer
        consumer = self._consumer
        tps = {TopicPartition(self._topic, p): end for p, end in ends.items()}
        consumer.assign(list(tps))
        for tp, end in tps.items():
            consumer.seek(tp, max(0, end - TAIL))
        pending = set(tps)
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    try:
                        ms = self._parser.parse_bytes(record.value).ts_ms
                    except Rejected:
                        continue
                    self._newest[tp.partition] = max(ms, self._newest.get(tp.partition, ms))
            for tp in list(pending):
                if await consumer.position(tp) >= tps[tp]:
                    pending.discard(tp)
                    self._read_to[tp.partition] = tps[tp]

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def on_stop(self) -> None:
        await self.close()
