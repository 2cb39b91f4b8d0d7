"""A version with a cut: its sealed history is applied before its live input.

The history is read straight from the history topic, like a gap: it is bounded and
sealed, so it needs no group, no commits and no second subscription. Its records go
through the same chain as live ones (``apply``, in slices) and are stored as they go (the
flush policy), so a crash resumes inside the history. Offsets are virtual: a live offset
plus the partition's history end (``HistorySeam.base``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from faust.types import TP

from agents.events import EventParser
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.seam_record import event_time
from agents.stages.aggregate import AggregateStage

log = logging.getLogger(__name__)

# Applies records of the input (live) or of the history to a partition, in slices:
# (partition, records, live, base).
ApplyRecords = Callable[[int, Sequence[Any], bool, int], Awaitable[None]]


class SeamStage:
    def __init__(
        self,
        seam: HistorySeam,
        history_topic: str,
        parser: EventParser,
        gaps: GapReader,
        aggregate: AggregateStage,
        apply: ApplyRecords,
    ) -> None:
        self.seam = seam
        self.history_topic = history_topic
        self.parser = parser
        self.gaps = gaps
        self.aggregate = aggregate
        self.apply = apply

    async def before_live(self, partition: int, applied: int) -> tuple[int, int]:
        """Apply what is left of the partition's history before its live records: the
        last applied virtual offset after it, and the virtual offset of live offset 0."""
        return await self.history(partition, applied), self.seam.base(partition)

    def started_live(self, partition: int, records: Sequence[Any]) -> None:
        """The partition's first live records to apply (``HistorySeam.started_live``)."""
        self.seam.started_live(partition, records, functools.partial(event_time, self.parser))

    async def history(self, partition: int, applied: int) -> int:
        """Apply what is left of the partition's sealed history; its last virtual offset."""
        end = self.seam.base(partition)
        if applied >= end - 1:
            return applied
        log.info("partition %d: applying history offsets %d..%d", partition, applied + 1, end - 1)
        async for fetched in self.gaps.read(self.history_topic, partition, applied + 1, end):
            await self.apply(partition, fetched, False, 0)  # stored as it goes
        # Offsets up to the end that hold no record (deleted leftovers of an interrupted
        # replay) are done too.
        self.aggregate.checkpoint(partition, end - 1)
        return end - 1

    async def idle_histories(self, owned: set[int]) -> None:
        """Apply the history of owned partitions that no live fetch has reached: a quiet
        input partition must not hold its history back."""
        for partition in sorted(owned):
            applied = self.aggregate.applied(partition)
            if applied < self.seam.base(partition) - 1:
                await self.history(partition, applied)

    async def hand_back(self, consumer: Any, records: Mapping[TP, Sequence[Any]]) -> None:
        """Seek the fetch's partitions back to its first records: they are read again
        once the history is sealed (instead of the consumer racing through the input)."""
        assigned = consumer.assignment()
        for tp, batch in records.items():
            if batch and tp in assigned:
                await consumer.seek(tp, batch[0].offset)
