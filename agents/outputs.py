"""The records a pipeline writes besides its state: late events, dead letters and final
window results, with their keys, and the partition each one goes to.

Outputs are co-partitioned with the input: a key's window results, and a record's late
or dead-letter copy, land on the partition number they come from (modulo the output
topic's partitions). A record sent again after a crash thus lands where the first one
did, which compaction needs, without hashing each output key (Kafka's murmur2 is pure
Python in aiokafka). Each is keyed by what makes it unique, so a copy sent again
replaces the first in the compacted topic.
"""

from __future__ import annotations

from typing import Any

from agents.events import Event
from tables import json_bytes
from tables.records import WindowResult

Headers = list[tuple[str, bytes]]
LATE_REASON = "behind the watermark"


def output_partition(source_partition: int, output_partitions: int) -> int:
    return source_partition % output_partitions


def late_record(
    topic: str, partition: int, offset: int, event: Event, watermark: int
) -> tuple[bytes, bytes]:
    """A late event's key (its source position) and value (the event, with why)."""
    source = {"topic": topic, "partition": partition, "offset": offset}
    value = {
        "reason": LATE_REASON,
        "watermark_ms": watermark,
        "event_ms": event.ts_ms,
        "key": event.key,
        "source": source,
        "event": dict(event.fields),  # a live record's is decoded on demand
    }
    return f"{topic}:{partition}:{offset}".encode(), json_bytes.dumps(value)


def dead_letter_headers(reason: str, detail: str, source: dict[str, Any]) -> Headers:
    """A dead letter's headers: its reason code, what was wrong, and where it came from.
    Its value is the record's bytes as they arrived."""
    return [
        ("kappa.reason", reason.encode()),
        ("kappa.detail", detail.encode()),
        ("kappa.source", json_bytes.dumps(source)),
    ]


def result_record(result: WindowResult) -> tuple[bytes, bytes]:
    """A final window result's key (one per key, window and start) and value."""
    return result.result_key.encode(), result.encoded
