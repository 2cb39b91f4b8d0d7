"""Every partition's event-time clock as stored, read from the ``meta`` table's changelog,
for the idle timeout (``tables.watermark.active_low``).

A quiet partition's watermark moves to the lowest of the version's *active* partitions,
and those may belong to other workers. Each partition's progress record
(``progress/<p>``, ``tables.records.PartitionProgress``) is already written to the meta
changelog, partition ``p``, at every store of a partition that received records, and the
record's Kafka timestamp is when it was stored (the sender leaves it to the producer's
clock). So whichever worker owns a partition, its changelog says:

- its clock: the maximum event time it has applied (and stored);
- whether it is active: a progress record stored within the idle timeout, from records
  received (an idle advance stores its clock marked ``idle``, which is not activity).

A partition that receives nothing writes nothing, so the records of the last idle timeout
are all the rule needs: the first read starts there (Kafka's offsets for a time), and
each later one goes on from where the last stopped (or starts there again, when the last
was longer ago than the timeout). Nothing else is kept: one clock per
partition. It reads with its own ``GapReader``, which has no consumer group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agents.gap_reader import GapReader
from tables.records import progress_record
from tables.watermark import StoredClock


def stored_clock(
    key: bytes | None, value: bytes | None, timestamp_ms: int
) -> tuple[int, StoredClock] | None:
    """The partition and clock of a meta changelog record, if it is a progress record."""
    found = progress_record(key, value)
    if found is None:
        return None
    partition, progress = found
    return partition, StoredClock(progress.max_event_ms, timestamp_ms, progress.idle)


def newest_clocks(records: Iterable[Any], clocks: dict[int, StoredClock]) -> None:
    """Keep in ``clocks`` each partition's newest clock among ``records`` (in offset
    order per partition)."""
    for record in records:
        found = stored_clock(record.key, record.value, record.timestamp)
        if found is not None:
            clocks[found[0]] = found[1]


class PartitionClocks:
    """The version's partitions' stored clocks, followed on the meta changelog."""

    def __init__(
        self,
        reader: GapReader,
        changelog: str,
        partitions: int,
        idle_timeout_ms: int,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._reader = reader
        self._changelog = changelog
        self._partitions = range(partitions)
        self.idle_timeout_ms = idle_timeout_ms
        self._wall_ms = wall_ms
        self._next: dict[int, int] = {}  # per partition: the offset the next read starts at
        self._read_at: int | None = None  # when the last read started, wall-clock ms
        self.clocks: dict[int, StoredClock] = {}

    async def read(self) -> Mapping[int, StoredClock]:
        """Each partition's newest stored clock, with what was stored since the last read."""
        reader, changelog = self._reader, self._changelog
        ends = await reader.end_offsets(changelog, self._partitions)
        since = self._wall_ms() - self.idle_timeout_ms
        if self._read_at is None or self._read_at < since:
            # Only what was stored within the idle timeout can say a partition is
            # active: the first read, or one a timeout after the last, starts there (a
            # partition with nothing since, at its end); what it skips is too old to count.
            starts = await reader.offsets_since(changelog, self._partitions, since)
            for partition, start in starts.items():
                self._next[partition] = ends[partition] if start is None else start
        self._read_at = self._wall_ms()
        for partition, end in ends.items():
            async for records in reader.read(changelog, partition, self._next[partition], end):
                newest_clocks(records, self.clocks)
            self._next[partition] = end
        return self.clocks

    async def stop(self) -> None:
        await self._reader.stop()
