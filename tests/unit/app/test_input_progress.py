"""Status and scrapes answer even when Kafka does not: every query is bounded."""

from __future__ import annotations

import asyncio

import pytest

from agents.names import PipelineNames
from agents.spec import parse_spec
from app.input_progress import InputProgress, read_input_progress
from app.kafka_client import OffsetQueries

SPEC = {
    "name": "silent",
    "version": 1,
    "input_topic": "in",
    "key": "k",
    "time_field": "ts",
    "values": ["v"],
}


def test_lag_counts_records_after_the_last_processed_one() -> None:
    progress = InputProgress(
        processed={0: 9, 1: 2},
        end_offsets={0: 10, 1: 8, 2: 4},
        late_events=None,
        dead_letters=None,
        kafka_answered=True,
    )
    # Partition 2 has processed nothing: all 4 records are behind; 3's end is unknown.
    assert progress.lag([0, 1, 2, 3]) == {0: 0, 1: 5, 2: 4}
    assert progress.hop_lag([0, 1]) == {}  # the repartition topic's ends are unknown


def test_hop_lag_counts_repartition_records_after_the_last_stored_one() -> None:
    progress = InputProgress(
        processed={0: 9},
        end_offsets={0: 10},
        late_events=None,
        dead_letters=None,
        kafka_answered=True,
        hop_processed={0: 6, 2: 3},
        hop_end_offsets={0: 7, 1: 5, 2: 3},
    )
    # State partition 1 has stored nothing from the hop; 2's stored offset is past its
    # end (a committed offset read before the topic's): never a negative lag.
    assert progress.hop_lag([0, 1, 2]) == {0: 0, 1: 5, 2: 0}
    assert progress.lag([0]) == {0: 0}  # the input's lag is its own


@pytest.mark.timeout(60)
async def test_a_broker_that_never_answers_leaves_the_answer_without_kafka() -> None:
    """A listener that accepts connections and says nothing, as a broker stuck in a
    long pause would: the queries give up after ``wait_s``, not after aiokafka's 30 s."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    queries = OffsetQueries(
        {"bootstrap_servers": f"127.0.0.1:{port}", "request_timeout_ms": 30_000}
    )
    names = PipelineNames(parse_spec(SPEC, "test"))
    try:
        progress = await read_input_progress(queries, names, {0: 41}, wait_s=0.5)
    finally:
        await queries.close()
        for writer in held:
            writer.close()
        server.close()
    assert held, "the clients never connected"
    assert progress == InputProgress(
        processed={0: 41},  # the worker's own progress still counts
        end_offsets=None,
        late_events=None,
        dead_letters=None,
        kafka_answered=False,
    )
