"""How far a worker is through its input, from its own counters and from Kafka: for the
status endpoint, the metrics and the dashboard.

Every Kafka query here is bounded by ``KAPPA_KAFKA_QUERY_TIMEOUT``. During a rebalance,
a recovery or a broker restart Kafka can take its whole request timeout (30 s) to
answer, and a status request or a scrape must answer well before that, saying what it
could not find out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from agents.names import PipelineNames
from app.kafka_client import OffsetQueries

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class InputProgress:
    # The last input offset processed per partition: this worker's own progress, or the
    # consumer group's committed offset (which survives restarts), whichever is further.
    processed: dict[int, int]
    # The input topic's next offset per partition; None when Kafka did not answer.
    end_offsets: dict[int, int] | None
    # Records in the late and dead-letter topics (the durable counts), or None.
    late_events: int | None
    dead_letters: int | None
    # False when a Kafka query failed or outlasted the timeout.
    kafka_answered: bool
    # The repartition hop's last stored offset per partition, completed likewise.
    hop_processed: dict[int, int] = field(default_factory=dict)
    # The repartition topic's next offset per partition; None when Kafka did not answer.
    hop_end_offsets: dict[int, int] | None = None

    def lag(self, partitions: Iterable[int]) -> dict[int, int]:
        """Input records after the last processed one, for those of ``partitions`` whose
        end offset is known."""
        return _lag(self.end_offsets, self.processed, partitions)

    def hop_lag(self, partitions: Iterable[int]) -> dict[int, int]:
        """Repartition records after the last stored one, for those of ``partitions``
        (state partitions) whose end offset is known."""
        return _lag(self.hop_end_offsets, self.hop_processed, partitions)


def _lag(
    ends: dict[int, int] | None, processed: dict[int, int], partitions: Iterable[int]
) -> dict[int, int]:
    known = ends or {}
    return {p: max(0, known[p] - 1 - processed.get(p, -1)) for p in partitions if p in known}


async def _bounded(query: Awaitable[T], wait_s: float, what: str) -> T | None:
    try:
        async with asyncio.timeout(wait_s):
            return await query
    except (KafkaError, TimeoutError) as exc:
        log.warning("%s unavailable within %gs (%r)", what, wait_s, exc)
        return None


async def read_input_progress(
    queries: OffsetQueries,
    names: PipelineNames,
    processed: dict[int, int],
    wait_s: float,
    hop_processed: dict[int, int] | None = None,
) -> InputProgress:
    """Kafka's side of the progress, with ``processed``, the worker's own last processed
    offsets (and ``hop_processed``, the repartition topic's), completed by the group's
    committed ones."""
    ranges: dict[str, dict[int, tuple[int, int]]] | None
    committed: dict[TopicPartition, int] | None
    ranges, committed = await asyncio.gather(
        _bounded(
            queries.offset_ranges(
                [
                    names.input_topic,
                    names.late_topic,
                    names.dead_letter_topic,
                    names.repartition_topic,
                ]
            ),
            wait_s,
            "topic offsets",
        ),
        _bounded(queries.committed(names.app_id), wait_s, "committed offsets"),
    )
    processed = dict(processed)
    hop = dict(hop_processed or {})
    for tp, offset in (committed or {}).items():
        into = {names.input_topic: processed, names.repartition_topic: hop}.get(tp.topic)
        if into is not None and offset > 0:
            into[tp.partition] = max(into.get(tp.partition, -1), offset - 1)

    def records(topic: str) -> int | None:
        if ranges is None or topic not in ranges:
            return None
        return sum(end - begin for begin, end in ranges[topic].values())

    def ends(topic: str) -> dict[int, int] | None:
        if ranges is None or topic not in ranges:
            return None
        return {p: end for p, (_, end) in ranges[topic].items()}

    return InputProgress(
        processed=processed,
        end_offsets=ends(names.input_topic),
        late_events=records(names.late_topic),
        dead_letters=records(names.dead_letter_topic),
        kafka_answered=ranges is not None and committed is not None,
        hop_processed=hop,
        hop_end_offsets=ends(names.repartition_topic),
    )
