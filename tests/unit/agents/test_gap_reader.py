"""``GapReader.read`` over a stand-in for aiokafka's consumer: the range's records in
order, and a read whose position stops moving (Kafka out of reach: aiokafka's
``getmany`` then returns nothing, for ever) given up with ``ReadStalled``, so that its
caller does not hold the batch loop through an outage."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.errors import ReadStalled
from agents.gap_reader import GapReader


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class ConsumerStandIn:
    """A log of offsets 0..``size``-1 that returns ``per_fetch`` records a fetch until
    ``reachable_until`` (an offset), then nothing."""

    def __init__(self, size: int, per_fetch: int, reachable_until: int) -> None:
        self.size = size
        self.per_fetch = per_fetch
        self.reachable_until = reachable_until
        self.at = 0
        self.fetches = 0

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.at = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.at

    async def getmany(self, tp: TopicPartition, timeout_ms: int) -> dict[Any, list[Any]]:
        self.fetches += 1
        if self.at >= self.reachable_until:
            return {}
        upto = min(self.at + self.per_fetch, self.size)
        records = [Record(offset) for offset in range(self.at, upto)]
        self.at = upto
        return {tp: records}


class Reader(GapReader):
    def __init__(self, consumer: ConsumerStandIn) -> None:
        super().__init__({}, stall_s=0.05)
        self.stand_in = consumer

    async def _ensure(self) -> AIOKafkaConsumer:
        consumer: Any = self.stand_in
        return consumer  # the stand-in, typed as the consumer it stands for


async def read(reader: GapReader, start: int, end: int) -> list[int]:
    return [r.offset async for records in reader.read("t", 0, start, end) for r in records]


async def test_a_range_is_read_in_order_a_fetch_at_a_time() -> None:
    consumer = ConsumerStandIn(size=50, per_fetch=7, reachable_until=50)
    assert await read(Reader(consumer), 3, 40) == list(range(3, 40))


async def test_a_read_that_gets_no_further_is_given_up() -> None:
    consumer = ConsumerStandIn(size=50, per_fetch=7, reachable_until=17)
    offsets: list[int] = []

    async def read_all() -> None:
        async for records in Reader(consumer).read("t", 0, 3, 40):
            offsets.extend(r.offset for r in records)

    with pytest.raises(ReadStalled, match=r"offsets 3 to 39 .* no further than 17"):
        await read_all()
    assert offsets == list(range(3, 17))  # what it read before, handed on
    assert consumer.fetches > 3  # it kept asking until the stall time passed
