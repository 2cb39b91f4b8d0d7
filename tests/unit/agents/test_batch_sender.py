"""``BatchSender`` splits what is queued into record batches: one partition's records in
order, in as few batches as aiokafka's size limit (``MAX_BATCH_BYTES``) allows, none lost.

No broker: ``BatchSender`` makes a real ``AIOKafkaProducer`` (so the batches are aiokafka's
own ``BatchBuilder``s, with the size limit ``BatchSender`` configures), of a subclass whose
network side is replaced: ``start`` connects nothing and ``send_batch`` keeps the batch and
acknowledges it at once, with offsets that grow as a partition log's. The batches are
decoded back with aiokafka's record reader.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import batch_sender
from agents.batch_sender import MAX_BATCH_BYTES, BatchSender
from tables.faust_store import Appended

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
# More than a record's framing in a batch (lengths, deltas and attributes as varints).
RECORD_OVERHEAD = 32


@dataclass
class SentBatch:
    topic: str
    partition: int
    size: int  # bytes, as aiokafka's batch reports it
    records: list[Record]


class AcknowledgingProducer(AIOKafkaProducer):  # type: ignore[misc]
    """aiokafka's producer, offline: every batch submitted is kept and acknowledged."""

    made: list[AcknowledgingProducer] = []

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.options = options
        self.sent: list[SentBatch] = []
        self._next_offset: dict[tuple[str, int], int] = {}
        # Another producer's records, appended to a partition after its n-th batch here.
        self.foreign_after: dict[tuple[str, int], tuple[int, int]] = {}
        AcknowledgingProducer.made.append(self)

    async def start(self) -> None:
        pass

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        assert batch.closed(), "a batch is closed before it is submitted"
        decoded = MemoryRecords(bytes(batch._build())).next_batch()
        records: list[Record] = [(r.key, r.value, list(r.headers)) for r in decoded]
        self.sent.append(SentBatch(topic, partition, batch.size(), records))
        base = self._next_offset.get((topic, partition), 0)
        self._next_offset[(topic, partition)] = base + len(records)
        after, foreign = self.foreign_after.get((topic, partition), (-1, 0))
        if len(_in(self, topic, partition)) == after:
            self._next_offset[(topic, partition)] += foreign
        acknowledged: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(SimpleNamespace(offset=base))
        return acknowledged


@pytest.fixture
def producer_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(batch_sender, "AIOKafkaProducer", AcknowledgingProducer)
    AcknowledgingProducer.made.clear()
    yield
    AcknowledgingProducer.made.clear()


async def _started() -> tuple[BatchSender, AcknowledgingProducer]:
    sender = BatchSender({"bootstrap_servers": "127.0.0.1:9"})
    await sender.start()
    (producer,) = AcknowledgingProducer.made
    return sender, producer


def _in(producer: AcknowledgingProducer, topic: str, partition: int) -> list[SentBatch]:
    return [b for b in producer.sent if (b.topic, b.partition) == (topic, partition)]


def _records(batches: list[SentBatch]) -> list[Record]:
    return [record for batch in batches for record in batch.records]


@pytest.mark.usefixtures("producer_offline")
async def test_the_producer_is_made_with_the_batch_limit_and_acks_all() -> None:
    sender, producer = await _started()
    assert producer.options["max_batch_size"] == MAX_BATCH_BYTES
    assert producer.options["max_request_size"] == MAX_BATCH_BYTES
    assert producer.options["acks"] == "all"
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_a_partitions_records_that_fit_go_as_one_batch() -> None:
    sender, producer = await _started()
    queued: list[Record] = [(f"k{n}".encode(), f"v{n}".encode(), []) for n in range(500)]
    for key, value, _ in queued:
        sender.add("out", 3, key, value)
    assert await sender.send() == {("out", 3): Appended(0, 499, gapless=True)}
    (batch,) = producer.sent
    assert (batch.topic, batch.partition, batch.records) == ("out", 3, queued)
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_records_beyond_the_limit_are_split_in_order_none_lost() -> None:
    sender, producer = await _started()
    value = b"x" * 10_000
    queued: list[Record] = [(f"{n:04}".encode(), value, []) for n in range(250)]  # ~2.5 MB
    for key, val, _ in queued:
        sender.add("out", 0, key, val)
    acked = await sender.send()
    batches = _in(producer, "out", 0)
    assert len(batches) == 3
    assert all(batch.size <= MAX_BATCH_BYTES for batch in batches)
    assert _records(batches) == queued
    assert acked == {("out", 0): Appended(0, 249, gapless=True)}
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_another_producers_records_between_two_batches_are_a_gap() -> None:
    """Records another worker appended to the partition between two of this send's
    batches: the send's span covers them, and it says it is not gapless."""
    sender, producer = await _started()
    producer.foreign_after[("changelog", 0)] = (1, 3)
    value = b"x" * 10_000
    for n in range(150):  # two batches
        sender.add("changelog", 0, f"{n:04}".encode(), value)
    sender.add("changelog", 1, b"k", b"v")
    acked = await sender.send()
    assert len(_in(producer, "changelog", 0)) == 2
    assert acked == {
        ("changelog", 0): Appended(0, 152, gapless=False),
        ("changelog", 1): Appended(0, 0, gapless=True),
    }
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_a_record_larger_than_the_limit_goes_alone_between_its_neighbours() -> None:
    sender, producer = await _started()
    huge = b"h" * (MAX_BATCH_BYTES + 500_000)
    queued: list[Record] = [(b"before", b"1", []), (b"huge", huge, []), (b"after", b"2", [])]
    for key, value, _ in queued:
        sender.add("out", 0, key, value)
    await sender.send()
    assert [batch.records for batch in producer.sent] == [[record] for record in queued]
    assert producer.sent[1].size > MAX_BATCH_BYTES
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_topics_and_partitions_are_batched_apart_with_headers_and_tombstones() -> None:
    sender, producer = await _started()
    places = [("out", 0), ("out", 1), ("changelog", 0)]
    queued: dict[tuple[str, int], list[Record]] = {place: [] for place in places}
    for n in range(30):
        topic, partition = places[n % 3]
        record: Record = (
            f"k{n}".encode(),
            None if n % 4 == 0 else f"v{n}".encode(),  # a tombstone now and then
            [("kappa.reason", b"bad")] if n % 5 == 0 else [],
        )
        queued[(topic, partition)].append(record)
        sender.add(topic, partition, record[0], record[1], record[2] or None)
    acked = await sender.send()
    assert acked == {place: Appended(0, 9, gapless=True) for place in places}
    for place in places:
        (batch,) = _in(producer, *place)
        assert batch.records == queued[place]
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_discarded_records_are_never_sent() -> None:
    sender, producer = await _started()
    sender.add("out", 0, b"k", b"dropped")
    sender.discard()
    assert await sender.send() == {}
    sender.add("out", 0, b"k", b"kept")
    await sender.send()
    assert await sender.send() == {}, "what was sent is not queued any more"
    assert _records(producer.sent) == [(b"k", b"kept", [])]
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
async def test_the_producer_starts_at_the_first_send_and_only_once() -> None:
    """Nothing queued needs no Kafka: the producer is made when a record is first sent
    (a timer tick during an outage must not fail for want of it), once."""
    sender = BatchSender({"bootstrap_servers": "127.0.0.1:9"})
    assert await sender.send() == {}
    assert AcknowledgingProducer.made == []
    sender.add("out", 0, b"k", b"v")
    sender.add("out", 1, b"k", b"v")
    await asyncio.gather(sender.send(), sender.start())
    (producer,) = AcknowledgingProducer.made
    assert [(b.partition, b.records) for b in producer.sent] == [
        (0, [(b"k", b"v", [])]),
        (1, [(b"k", b"v", [])]),
    ]
    await sender.stop()


@pytest.mark.usefixtures("producer_offline")
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    sizes=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400_000)), min_size=1, max_size=30)
)
def test_any_mix_of_sizes_keeps_each_partitions_order_within_the_limit(
    sizes: list[tuple[int, int]],
) -> None:
    # Hypothesis runs a plain function: the coroutine gets a loop of its own per example.
    asyncio.run(_send_and_check(sizes))


async def _send_and_check(sizes: list[tuple[int, int]]) -> None:
    AcknowledgingProducer.made.clear()
    sender, producer = await _started()
    queued: dict[int, list[Record]] = {}
    for n, (partition, size) in enumerate(sizes):
        record: Record = (str(n).encode(), bytes([n % 256]) * size, [])
        queued.setdefault(partition, []).append(record)
        sender.add("out", partition, record[0], record[1])
    acked = await sender.send()
    assert {b.partition for b in producer.sent} == set(queued)
    for partition, records in queued.items():
        batches = _in(producer, "out", partition)
        assert _records(batches) == records
        for batch, following in itertools.pairwise(batches):
            # Closed only because the next record did not fit (a record's framing is
            # under RECORD_OVERHEAD bytes).
            key, value, _ = following.records[0]
            assert batch.size + len(key or b"") + len(value or b"") + RECORD_OVERHEAD > (
                MAX_BATCH_BYTES
            )
        for batch in batches:
            assert batch.size <= MAX_BATCH_BYTES or len(batch.records) == 1
        assert acked[("out", partition)] == Appended(0, len(records) - 1, gapless=True)
    await sender.stop()
