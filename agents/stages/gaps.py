"""Continuity: a partition's records must follow its last applied one.

Records the consumer skipped (around a rebalance, or after a failed batch) are read back
from Kafka first (``GapReader``); records applied before are dropped as duplicates. A
partition with no state must start at the first offset its log holds, or its state is
rebuilt from the log, or refused when retention took records whose state is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agents.errors import StateLost
from agents.gap_reader import GapReader
from agents.stats import WorkerStats

log = logging.getLogger(__name__)


class GapRepair:
    def __init__(self, topic: str, gaps: GapReader, stats: WorkerStats) -> None:
        self.topic = topic
        self.gaps = gaps
        self.stats = stats

    async def follow(
        self, partition: int, applied: int, base: int, records: Sequence[Any]
    ) -> Sequence[Any]:
        """The records after ``applied`` (a virtual offset; ``base`` is that of the topic's
        offset 0), skipped ones read back first, ones applied before left out."""
        first = base + records[0].offset
        if applied < 0 and first > 0:
            applied = await self._before_first_record(partition, first)
        if first > applied + 1:
            gap = await self._read_gap(partition, applied + 1 - base, first - base)
            records = [*gap, *records]
        if base + records[0].offset <= applied:
            fresh = [record for record in records if base + record.offset > applied]
            self.stats.duplicates += len(records) - len(fresh)  # stored before: done
            records = fresh
        return records

    async def _read_gap(self, partition: int, start: int, end: int) -> list[Any]:
        """The records the consumer skipped between the last applied one and ``end``."""
        records: list[Any] = []
        async for fetched in self.gaps.read(self.topic, partition, start, end):
            records.extend(fetched)
        if records:
            self.stats.gap_records_read += len(records)
            log.warning(
                "partition %d: offsets %d..%d did not come through the consumer; read %d "
                "record(s) from Kafka",
                partition,
                start,
                end - 1,
                len(records),
            )
        return records

    async def _before_first_record(self, partition: int, offset: int) -> int:
        """The offset to count as applied for a partition whose tables have no checkpoint.

        Its first record should be the first one the log holds. If the group's committed
        offset is further on, the tables have lost the state of what came before (their
        changelogs deleted or truncated): that is rebuilt from the log when the log still
        starts at 0, and refused when retention has removed records whose state is gone.
        """
        topic = self.topic
        start = await self.gaps.log_start(topic, partition)
        if offset > start and start > 0:
            raise StateLost(
                f"partition {partition} of {topic}: the consumer group has processed up to "
                f"offset {offset}, but the tables hold no state for it, and the log now "
                f"starts at offset {start}: the state of the records before it is gone",
                "restore the changelog topics of this pipeline version, or start a new "
                "version (bump `version` in the spec) to recompute from what the input "
                "still holds",
            )
        if offset > start:
            log.warning(
                "partition %d: no state, but the group had processed up to offset %d; "
                "recomputing it from the start of the log",
                partition,
                offset,
            )
        return start - 1
