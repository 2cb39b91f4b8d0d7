"""The chain's stages on their own: routing (decode, validate, route check) and the flush
policy (when applied changes are due to be stored).

Expected partitions are computed here with aiokafka's murmur2 directly, not with kappa's
partitioner; the state is real (Faust tables on RocksDB, no broker).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord

from agents.batch_sender import BatchSender
from agents.events import EventParser
from agents.gap_reader import GapReader
from agents.hop import source_headers
from agents.spec import PipelineSpec, parse_spec
from agents.stages.aggregate import AggregateStage
from agents.stages.flush import CommitPolicy, Flusher
from agents.stages.hop import HopStage
from agents.stages.route import RouteStage
from agents.stats import WorkerStats
from tables.aggregation_config import AggregationConfig
from tables.pipeline_tables import PipelineTables
from tests.support.stores import offline_tables

PARTITIONS = 3
T0 = 1_700_000_000_000


def spec() -> PipelineSpec:
    return parse_spec(
        {
            "name": "orders",
            "version": 1,
            "input_topic": "orders",
            "key": "customer_id",
            "time_field": "ts",
            "values": ["amount"],
            "windows": [{"size": "1h"}],
            "lateness": "10m",
        },
        "test",
    )


def kafka_partition(key: str) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def record(
    partition: int, offset: int, value: bytes, topic: str = "orders", headers: Any = ()
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=T0,
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=headers,
    )


def event(key: str, amount: float) -> bytes:
    return orjson.dumps({"customer_id": key, "ts": T0, "amount": amount})


def config(pipeline: PipelineSpec) -> AggregationConfig:
    return AggregationConfig(
        value_names=pipeline.values,
        metrics=pipeline.metrics,
        windows=pipeline.windows,
        lateness_ms=pipeline.lateness_ms,
        retention_ms=pipeline.retention_ms,
    )


def test_route_keeps_events_on_their_keys_partition_and_hops_the_rest() -> None:
    home = kafka_partition("c1")
    away = (home + 1) % PARTITIONS
    records = [
        record(home, 10, event("c1", 1.5)),
        record(home, 11, b"{not json"),
        record(home, 12, event("c1", 2.25)),
        record(away, 13, event("c1", 4.0)),
    ]
    routed = RouteStage(EventParser(spec()), PARTITIONS, WorkerStats(), hop=True).split(records)
    assert [(offset, e.key, e.values) for offset, e in routed.direct] == [
        (10, "c1", (1.5,)),
        (12, "c1", (2.25,)),
    ]
    assert [(r.partition, r.offset, e.key) for r, e in routed.hop] == [(away, 13, "c1")]
    assert [(r.offset, reason) for r, reason, _detail in routed.rejected] == [
        (11, "malformed_json")
    ]


def test_off_the_direct_lane_every_record_takes_the_hop() -> None:
    # A grown input, or an input partition whose state another worker owns.
    route = RouteStage(EventParser(spec()), PARTITIONS, WorkerStats(), hop=True)
    home = kafka_partition("c1")
    records = [record(home, 0, event("c1", 1.0)), record(5, 0, event("c1", 2.0))]
    routed = route.split(records, direct=False)
    assert routed.direct == []
    assert [(r.partition, r.offset) for r, _ in routed.hop] == [(home, 0), (5, 0)]


def test_without_the_hop_a_record_off_its_keys_partition_is_misrouted() -> None:
    home = kafka_partition("c1")
    away = (home + 1) % PARTITIONS
    routed = RouteStage(EventParser(spec()), PARTITIONS, WorkerStats(), hop=False).split(
        [record(away, 13, event("c1", 4.0))]
    )
    assert routed.hop == []
    [(_, reason, detail)] = routed.rejected
    assert reason == "misrouted"
    assert f"belongs on partition {home}" in detail
    assert "murmur2" in detail


def hop_record(offset: int, value: bytes, headers: Any) -> ConsumerRecord[bytes, bytes]:
    return record(0, offset, value, "kappa.orders.v1.repartition", headers)


def test_unpack_gives_each_hop_event_its_source_and_dead_letters_a_foreign_record() -> None:
    route = RouteStage(EventParser(spec()), PARTITIONS, WorkerStats(), hop=True)
    unpacked = route.unpack(
        [
            hop_record(0, event("c1", 1.0), source_headers(4, 17)),
            hop_record(1, event("c2", 2.0), []),
            hop_record(2, event("c3", 3.0), source_headers(1, 5)),
        ]
    )
    assert [(o, e.key) for o, e in unpacked.events] == [(17, "c1"), (5, "c3")]
    assert unpacked.sources == [4, 1]
    assert [(r.offset, reason) for r, reason, _ in unpacked.rejected] == [(1, "bad_source")]


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[PipelineTables]:
    with offline_tables(tmp_path, partitions=1) as declared:
        yield declared


def flusher(
    aggregate: AggregateStage,
    events: int,
    buffer_bytes: int = 2**40,
    outputs_bytes: int = 2**40,
    sender: BatchSender | None = None,
) -> Flusher:
    never: Any = None  # the policy never asks Faust or Kafka
    sender = sender or BatchSender({})
    return Flusher(
        app=never,
        topics=("orders", "kappa.orders.v1.repartition"),
        policy=CommitPolicy(
            interval_s=3600, events=events, buffer_bytes=buffer_bytes, outputs_bytes=outputs_bytes
        ),
        aggregate=aggregate,
        hop=HopStage("kappa.orders.v1.repartition", PARTITIONS, sender),
        sender=sender,
        gaps=GapReader({}),  # never asked: only this process writes the changelogs
        stats=WorkerStats(),
        owned=lambda _topic: set(),
        streamed_too=lambda: False,
        seam=None,
    )


def apply(aggregate: AggregateStage, offsets: range) -> None:
    parser = EventParser(spec())
    events = [(o, parser.parse_bytes(event(f"k{o}", float(o)))) for o in offsets]
    aggregate.apply(0, events, offsets[-1], len(offsets))


def test_nothing_applied_is_never_due(tables: PipelineTables) -> None:
    aggregate = AggregateStage(config(spec()), tables.partition_state, None)
    policy = flusher(aggregate, events=1)
    assert not policy.due(caught_up=True)


def test_a_flush_is_due_when_caught_up_or_after_enough_records(tables: PipelineTables) -> None:
    aggregate = AggregateStage(config(spec()), tables.partition_state, None)
    policy = flusher(aggregate, events=10)
    apply(aggregate, range(0, 4))
    assert aggregate.unstored == {0: 3}
    assert not policy.due(caught_up=False)  # 4 records, 4 held keys: under 10
    assert policy.due(caught_up=True)
    apply(aggregate, range(4, 10))
    assert policy.due(caught_up=False)  # 10 records


def test_a_flush_is_due_when_the_write_back_buffer_reaches_its_budget(
    tables: PipelineTables,
) -> None:
    aggregate = AggregateStage(config(spec()), tables.partition_state, None)
    apply(aggregate, range(0, 1))
    one_key = aggregate.held_bytes()  # a key record and its open window
    assert one_key > 0
    policy = flusher(aggregate, events=10**9, buffer_bytes=10 * one_key)
    apply(aggregate, range(1, 9))
    assert not policy.due(caught_up=False)  # 9 keys' records: under the budget
    apply(aggregate, range(9, 10))
    assert aggregate.held_bytes() == 10 * one_key
    assert policy.due(caught_up=False)


def test_a_flush_is_due_when_the_outputs_in_flight_reach_their_budget(
    tables: PipelineTables,
) -> None:
    aggregate = AggregateStage(config(spec()), tables.partition_state, None)
    sender = BatchSender({})
    policy = flusher(aggregate, events=10**9, outputs_bytes=100, sender=sender)
    apply(aggregate, range(0, 1))
    sender.add("results", 0, b"k" * 10, b"v" * 89)
    assert not policy.due(caught_up=False)  # 99 bytes
    sender.add("results", 0, None, b"v")
    assert policy.due(caught_up=False)


def test_taking_the_unstored_changes_leaves_nothing_due(tables: PipelineTables) -> None:
    aggregate = AggregateStage(config(spec()), tables.partition_state, None)
    policy = flusher(aggregate, events=1)
    apply(aggregate, range(0, 3))
    states, offsets, hopped = aggregate.take_unstored()
    assert (len(states), offsets, hopped) == (1, {0: 2}, {})
    assert not policy.due(caught_up=True)
    assert aggregate.applied(0) == 2  # the processor's checkpoint, until stored
