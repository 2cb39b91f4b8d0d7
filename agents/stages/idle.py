"""The idle stage: quiet partitions' watermarks moved on, for a pipeline with an
``idle_timeout`` (Flink's ``withIdleness`` rule, ``tables.watermark``).

At every commit interval (``BatchLoop.on_timer``), each state partition this worker owns
that has received no record for the idle timeout (nothing applied on either lane since,
or since it was assigned here) moves its clock to the lowest clock of the version's
active partitions, read from the meta changelog whoever owns them
(``agents.partition_clocks``). The windows its watermark then passes close, and their
results are queued like any others; the flush that follows stores them with the clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from agents.processor import BatchOutcome
from agents.stages.aggregate import AggregateStage
from tables.times import ms_to_iso
from tables.watermark import StoredClock, active_low, idle_advance, is_idle

log = logging.getLogger(__name__)


class StoredClocks(Protocol):
    """Every partition's stored clock (``agents.partition_clocks.PartitionClocks``)."""

    idle_timeout_ms: int

    async def read(self) -> Mapping[int, StoredClock]: ...

    async def stop(self) -> None: ...


class IdleStage:
    def __init__(
        self,
        clocks: StoredClocks,
        aggregate: AggregateStage,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.idle_timeout_ms = clocks.idle_timeout_ms
        self.clocks = clocks
        self.aggregate = aggregate
        self._monotonic = monotonic
        self._wall_ms = wall_ms

    async def advance(self, owned: Iterable[int]) -> list[tuple[int, BatchOutcome]]:
        """Move the clocks of the idle partitions among ``owned``: each one moved, with
        what it closed."""
        aggregate = self.aggregate
        idle = []
        for partition in sorted(owned):
            processor = aggregate.processor(partition)  # assigned and quiet: made now
            quiet_ms = (self._monotonic() - aggregate.received[partition]) * 1000
            if processor.progress.max_event_ms is not None and is_idle(
                quiet_ms, self.idle_timeout_ms
            ):
                idle.append(partition)
        if not idle:
            return []
        clocks = await self.clocks.read()
        now_ms = self._wall_ms()
        moved = []
        for partition in idle:
            low = active_low(clocks, now_ms, self.idle_timeout_ms, quiet=partition)
            target = idle_advance(aggregate.processor(partition).progress.max_event_ms, low)
            if target is not None:
                outcome = aggregate.advance_idle(partition, target)
                log.info(
                    "partition %d: nothing received for the idle timeout; its event time "
                    "moves to the active partitions' lowest, %s, closing %d window result(s)",
                    partition,
                    ms_to_iso(target),
                    len(outcome.closed),
                )
                moved.append((partition, outcome))
        return moved
