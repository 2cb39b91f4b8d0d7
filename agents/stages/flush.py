"""The flush and commit policy: when applied changes are stored, and how.

Nothing is written per fetch. State and outputs are stored when the input is caught up
(the fetch reached the partitions' end: live traffic is stored at once), or every
``KAPPA_COMMIT_INTERVAL_MS``, or after ``KAPPA_COMMIT_EVENTS`` events: under a backlog a
hot key is written once per interval, not once per fetch. A flush is the ordered,
acknowledged protocol of docs/guarantees.md: the outputs, then the state steps of
``store_batch`` (closed windows, key records, checkpoints last), each acknowledged by
Kafka before it reaches RocksDB. Then the group's offsets are committed, at most once per
interval, so they trail the stored checkpoints by at most one interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faust.types import TP

from agents.batch_sender import BatchSender
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.stages.aggregate import AggregateStage
from agents.stages.hop import HopStage
from agents.stats import WorkerStats
from tables.faust_store import rewrite_foreign
from tables.partition_state import store_batch


@dataclass(frozen=True)
class CommitPolicy:
    """When a flush is due: caught up, or this long or this many events since the last,
    or when the write-back buffer or the outputs in flight reach their byte budgets."""

    interval_s: float
    events: int
    buffer_bytes: int
    outputs_bytes: int


class Flusher:
    def __init__(
        self,
        app: Any,
        topics: tuple[str, str],
        policy: CommitPolicy,
        aggregate: AggregateStage,
        hop: HopStage,
        sender: BatchSender,
        gaps: GapReader,
        stats: WorkerStats,
        owned: Callable[[str], set[int]],
        streamed_too: Callable[[], bool],
        seam: HistorySeam | None,
    ) -> None:
        self.app = app
        # The input topic and the repartition topic: both committed here.
        self.topic, self.hop_topic = topics
        self.policy = policy
        self.aggregate = aggregate
        self.hop = hop
        self.sender = sender
        self.gaps = gaps  # reads back another worker's changelog records to rewrite
        self.stats = stats
        self.owned = owned
        self.streamed_too = streamed_too
        self.seam = seam
        self._flushed_at = time.monotonic()
        self._committed_at = time.monotonic()
        self._committed: dict[TP, int] = {}  # the last offset committed, per partition

    @property
    def pending(self) -> bool:
        """Whether anything applied or routed is not stored yet."""
        return bool(self.aggregate.pending()) or self.hop.pending

    def due(self, caught_up: bool) -> bool:
        """Whether the applied changes should be stored now."""
        if not self.pending:
            return False
        # Held changes count as well as events: a hopping window's event changes one
        # aggregate per window it falls in, and closes as many later.
        held = self.aggregate.held_changes()
        policy = self.policy
        return (
            caught_up
            or max(self.aggregate.unstored_records, held) >= policy.events
            or time.monotonic() - self._flushed_at >= policy.interval_s
            or self.sender.queued_bytes >= policy.outputs_bytes
            or self.aggregate.held_bytes() >= policy.buffer_bytes
        )

    async def store_and_commit(self) -> None:
        """Store what is applied (if anything) and commit what is stored."""
        if self.pending:
            await self.flush(commit=True)
        else:
            await self.commit()

    async def on_timer(self) -> None:
        """Store what an interrupted backlog left unstored, and commit what is stored, so
        an idle input leaves no offsets behind."""
        if self.pending:
            await self.flush(commit=True)
        elif time.monotonic() - self._committed_at >= self.policy.interval_s:
            await self.commit()

    async def flush(self, commit: bool) -> None:
        """Store every applied change in the ordered, acknowledged steps, then commit the
        group's offsets when ``commit`` or when an interval has passed since the last."""
        started = time.monotonic()
        # Outputs and hop records first: acknowledged before any state or commit.
        await self.sender.send()
        routed = self.hop.take_queued()
        states, unstored, hopped = self.aggregate.take_unstored()
        foreign = await store_batch(states, self.sender, self.gaps)
        await rewrite_foreign(foreign, self.sender, self.gaps)
        self._flushed_at = time.monotonic()
        self.stats.flushes += 1
        # Counted before the offsets show as stored, so a reader who sees them sees the
        # time it took too.
        self.stats.stages.store += self._flushed_at - started
        applied = unstored if self.seam is None else self.seam.input_offsets(unstored)
        self.stats.stored(applied | routed, hopped)
        if commit or self._flushed_at - self._committed_at >= self.policy.interval_s:
            committing = time.monotonic()
            await self.commit()
            self.stats.stages.store += time.monotonic() - committing

    async def commit(self) -> None:
        """Commit the stored offsets that are ahead of what this worker last committed."""
        self._committed_at = time.monotonic()
        ahead = self._ahead(self.hop_topic, self.stats.hop_offsets)
        # With custom agents on the input, Faust commits it as they acknowledge
        # (docs/custom-agents.md); the repartition topic is read by kappa alone.
        if not self.streamed_too():
            ahead |= self._ahead(self.topic, self.stats.processed_offsets)
        if ahead:
            await self.app.consumer.commit_stored({tp: offset + 1 for tp, offset in ahead.items()})
            self._committed.update(ahead)

    def _ahead(self, topic: str, stored: dict[int, int]) -> dict[TP, int]:
        """The stored offsets of ``topic``'s owned partitions not committed yet."""
        owned = self.owned(topic)
        ahead = {}
        for partition, offset in stored.items():
            tp = TP(topic, partition)
            if partition in owned and offset > self._committed.get(tp, -1):
                ahead[tp] = offset
        return ahead
