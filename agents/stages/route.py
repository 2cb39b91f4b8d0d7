"""The route stage: a partition's records decoded and validated into events.

A fetch's records are parsed together (``EventParser.parse_batch``, which also computes
the spec's derived fields and its ``where``) and each is checked to be on its key's
partition; what cannot be applied is returned with the reason, for the dead-letter
topic, and events the ``where`` leaves out are counted as filtered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.events import Event, EventParser, Rejected
from agents.partitions import expected_partition
from agents.stats import WorkerStats

# A record that cannot be applied: the record, the reason and what to do about it.
Rejection = tuple[Any, str, str]


class RouteStage:
    def __init__(self, parser: EventParser, partitions: int, stats: WorkerStats) -> None:
        self.parser = parser
        self.partitions = partitions
        self.stats = stats

    def split(self, records: Sequence[Any]) -> tuple[list[tuple[int, Event]], list[Rejection]]:
        """The good events by offset, and the bad and misrouted records with the reason."""
        partitions = self.partitions
        events: list[tuple[int, Event]] = []
        rejected: list[Rejection] = []
        parsed = self.parser.parse_batch([record.value for record in records])
        for record, event in zip(records, parsed, strict=True):
            if isinstance(event, Rejected):
                rejected.append((record, event.reason, event.detail))
                continue
            if not event.kept:
                self.stats.filtered += 1
                continue
            if expected_partition(event.key, partitions) != record.partition:
                rejected.append(
                    (
                        record,
                        "misrouted",
                        f"key {event.key!r} belongs on partition "
                        f"{expected_partition(event.key, partitions)}; produce with the "
                        "record key set to the event's key and Kafka's default (murmur2) "
                        "partitioner",
                    )
                )
                continue
            events.append((record.offset, event))
        return events, rejected
