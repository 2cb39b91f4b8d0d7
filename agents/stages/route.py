"""The route stage: a partition's records decoded and validated into events.

Each record is parsed (``EventParser``) and checked to be on its key's partition; what
cannot be applied is returned with the reason, for the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents.events import Event, EventParser, Rejected
from agents.partitions import expected_partition

# A record that cannot be applied: the record, the reason and what to do about it.
Rejection = tuple[Any, str, str]


class RouteStage:
    def __init__(self, parser: EventParser, partitions: int) -> None:
        self.parser = parser
        self.partitions = partitions

    def split(self, records: Sequence[Any]) -> tuple[list[tuple[int, Event]], list[Rejection]]:
        """The good events by offset, and the bad and misrouted records with the reason."""
        parse, partitions = self.parser.parse_bytes, self.partitions
        events: list[tuple[int, Event]] = []
        rejected: list[Rejection] = []
        for record in records:
            try:
                event = parse(record.value)
            except Rejected as bad:
                rejected.append((record, bad.reason, bad.detail))
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
