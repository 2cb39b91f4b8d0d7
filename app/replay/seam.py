"""What Kafka says about a version's seam, read without a worker: its seam record, and
where each live input partition starts now (``agents/seam_record.py`` says what both
mean). ``kappa replay`` checks them before it writes a history; ``kappa versions`` can
read the seam record the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.names import PipelineNames
from agents.seam_record import SEAM_KEY, LiveStart, SeamRecord
from app.kafka_client import offset_ranges, read_partition, read_range

# How many records at a live partition's start are read to find one that parses.
PROBE_RECORDS = 100


async def read_seam(options: dict[str, Any], names: PipelineNames) -> SeamRecord | None:
    """The version's seam record, or None while its history is not sealed."""
    seam = None
    for record in await read_partition(options, names.control_topic) or []:
        if record.key == SEAM_KEY and record.value is not None:
            seam = SeamRecord.decode(record.value)
    return seam


async def live_starts(
    options: dict[str, Any], topic: str, event_ms: Callable[[bytes | None], int | None]
) -> list[LiveStart]:
    """Each partition of ``topic`` that retention has trimmed, with its first event time
    (``event_ms`` parses a record's value, None when it does not parse)."""
    ranges = (await offset_ranges(options, [topic])).get(topic, {})
    starts = []
    for partition, (begin, end) in sorted(ranges.items()):
        if begin == 0:
            continue  # nothing deleted: no gap, whatever the event times
        first = None
        for record in await read_range(
            options, topic, partition, begin, min(end, begin + PROBE_RECORDS)
        ):
            if (first := event_ms(record.value)) is not None:
                break
        starts.append(LiveStart(partition, begin, first))
    return starts
