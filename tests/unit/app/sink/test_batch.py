"""What one transaction holds, built from a fetch: rows (the last per primary key), dead
letters, and each partition's offset range from where the sink read it."""

from __future__ import annotations

import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from agents.spec import PipelineSpec
from app.settings import KappaSettings
from app.sink.run import PostgresSink
from tables.aggregates import Agg
from tables.claims import WRITER_HEADER, claim_key
from tables.records import KeyRecord, SourceFence, WindowResult

SPEC = PipelineSpec.model_validate(
    {
        "name": "orders",
        "version": 2,
        "input_topic": "orders",
        "key": ["customer_id"],
        "time_field": "ts",
        "values": ["amount"],
        "metrics": ["count", "sum"],
        "windows": [{"size": "1h"}],
    }
)
RESULTS = TopicPartition("kappa.orders.v2.window-results", 0)
CHANGELOG = TopicPartition("kappa.orders.v2-keys-changelog", 1)


def _record(
    tp: TopicPartition, offset: int, key: bytes, value: bytes
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 0, 0, [])


def _totals(key: str, count: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    agg = Agg.empty(1)
    for _ in range(count):
        agg.add([1.5])
    state = KeyRecord(fence=SourceFence(offset), totals=agg).to_state()
    return _record(CHANGELOG, offset, orjson.dumps(key), orjson.dumps(state))


def _result(offset: int, start: int) -> ConsumerRecord[bytes, bytes]:
    result = WindowResult("c1", "1h", start, start + 3_600_000, True, {"count": 1})
    return _record(RESULTS, offset, result.result_key.encode(), result.encoded)


def test_a_fetch_becomes_one_batch_with_the_last_row_per_key_and_its_offset_ranges() -> None:
    sink = PostgresSink(KappaSettings(), SPEC)
    sink.positions = {RESULTS: 10, CHANGELOG: 3}
    batch = sink._batch(
        {
            # Offsets 8 and 9 were fetched before the seek to 10: they wait.
            RESULTS: [
                _result(8, 0),
                _result(9, 0),
                _result(10, 0),
                _record(RESULTS, 12, b"k", b"{"),
            ],
            # Compaction left gaps; c1 is there twice: its newest record wins.
            CHANGELOG: [_totals("c1", 1, 3), _totals("c2", 4, 5), _totals("c1", 2, 9)],
        }
    )
    assert batch.offsets == {(RESULTS.topic, 0): (10, 13), (CHANGELOG.topic, 1): (3, 10)}
    assert list(batch.windows) == [("c1", "1h", 0)]
    assert batch.totals["c1"][1] == 2  # count
    assert batch.totals["c2"][1:] == (4, 6.0)
    [(topic, partition, offset, key, value, reason)] = batch.dead_letters
    assert (topic, partition, offset, key, value) == (RESULTS.topic, 0, 12, b"k", b"{")
    assert "not JSON" in reason


def test_a_partition_not_yet_sought_waits_for_its_offset() -> None:
    sink = PostgresSink(KappaSettings(), SPEC)
    batch = sink._batch({RESULTS: [_result(0, 0)]})
    assert batch.offsets == {}
    assert batch.rows == 0


def _written(record: ConsumerRecord[bytes, bytes], token: bytes) -> ConsumerRecord[bytes, bytes]:
    record.headers.append((WRITER_HEADER, token))
    return record


def _claim(offset: int, token: bytes) -> ConsumerRecord[bytes, bytes]:
    return _record(CHANGELOG, offset, claim_key(token), b"{}")


# Worker 1 owns the partition; worker 2 claims it (offset 1); worker 1, a zombie now,
# still writes c1 (offset 2); worker 2 writes c2; Faust (a custom agent) writes c3.
CLAIMED_AWAY = [
    _written(_totals("c1", 1, 0), b"1"),
    _claim(1, b"2"),
    _written(_totals("c1", 5, 2), b"1"),
    _written(_totals("c2", 3, 3), b"2"),
    _totals("c3", 2, 4),
]


def test_the_totals_follow_the_claims_and_skip_a_zombies_writes() -> None:
    sink = PostgresSink(KappaSettings(), SPEC)
    sink.positions, sink.owners = {CHANGELOG: 0}, {CHANGELOG: b"1"}
    batch = sink._batch({CHANGELOG: CLAIMED_AWAY})
    assert {key: row[1] for key, row in batch.totals.items()} == {"c1": 1, "c2": 3, "c3": 2}
    assert batch.owners == {(CHANGELOG.topic, 1): b"2"}  # stored with the offsets
    assert batch.offsets == {(CHANGELOG.topic, 1): (0, 5)}
    # A sink resuming after the claim, with the owner stored with its offset, skips too.
    resumed = PostgresSink(KappaSettings(), SPEC)
    resumed.positions, resumed.owners = {CHANGELOG: 2}, {CHANGELOG: b"2"}
    later = resumed._batch({CHANGELOG: CLAIMED_AWAY[2:]})
    assert {key: row[1] for key, row in later.totals.items()} == {"c2": 3, "c3": 2}


def test_a_sink_that_read_no_claim_yet_takes_every_record() -> None:
    sink = PostgresSink(KappaSettings(), SPEC)
    sink.positions, sink.owners = {CHANGELOG: 2}, {CHANGELOG: None}
    batch = sink._batch({CHANGELOG: CLAIMED_AWAY[2:]})
    assert {key: row[1] for key, row in batch.totals.items()} == {"c1": 5, "c2": 3, "c3": 2}
    assert batch.owners == {(CHANGELOG.topic, 1): None}
