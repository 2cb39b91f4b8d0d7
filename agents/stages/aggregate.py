"""The aggregate stage: each owned partition's processor and state, and what is applied
to them but not stored yet."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from agents.events import Event
from agents.processor import BatchOutcome, PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState


class AggregateStage:
    def __init__(
        self,
        config: AggregationConfig,
        new_state: Callable[[int], TablePartitionState],
        close_bytes: int | None,
        close_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.new_state = new_state
        # The write-back buffer's budget: a closing step stops there (``close_step``);
        # None closes all at once.
        self.close_bytes = close_bytes
        # How long a closing step may hold the event loop (a slice's time).
        self.close_seconds = close_seconds
        self.processors: dict[int, PartitionProcessor] = {}
        self.states: dict[int, TablePartitionState] = {}
        # Partitions applied since the last store, with their last applied offset: of
        # their own input partition (``unstored``) and of their repartition topic
        # partition (``unstored_hop``).
        self.unstored: dict[int, int] = {}
        self.unstored_hop: dict[int, int] = {}
        # Partitions whose clock an idle advance moved since the last store.
        self.advanced: set[int] = set()
        self.unstored_records = 0
        # Per partition: when it last received a record, or was first asked for after an
        # assignment (``time.monotonic``): how long it has been quiet, for the idle timeout.
        self.received: dict[int, float] = {}

    def processor(self, partition: int) -> PartitionProcessor:
        """The partition's processor, over its state as stored when first asked."""
        processor = self.processors.get(partition)
        if processor is None:
            state = self.states[partition] = self.new_state(partition)
            processor = self.processors[partition] = PartitionProcessor(
                self.config, state, partition, self.close_bytes, self.close_seconds
            )
            self.received[partition] = time.monotonic()
        return processor

    def applied(self, partition: int) -> int:
        """The partition's last applied (virtual) offset, stored or not; -1 for none."""
        return self.unstored.get(partition, self.processor(partition).progress.offset)

    def hop_applied(self, partition: int) -> int:
        """The partition's last applied repartition offset, stored or not; -1 for none."""
        return self.unstored_hop.get(partition, self.processor(partition).progress.hop_offset)

    def apply(
        self, partition: int, events: Sequence[tuple[int, Event]], last: int, records: int
    ) -> BatchOutcome:
        """Apply ``events``, the good ones of ``records`` records up to offset ``last``."""
        processor = self.processor(partition)
        outcome = processor.apply(events)
        self.checkpoint(partition, last)
        self.received[partition] = time.monotonic()
        self.unstored_records += records
        return outcome

    def apply_hop(
        self,
        partition: int,
        events: Sequence[tuple[int, Event]],
        sources: Sequence[int],
        last: int,
        records: int,
    ) -> BatchOutcome:
        """Apply ``events`` of the repartition hop (at their source offsets, from input
        partitions ``sources``), the good ones of ``records`` records up to repartition
        offset ``last``."""
        outcome = self.processor(partition).apply(events, sources)
        self.hop_checkpoint(partition, last)
        self.received[partition] = time.monotonic()
        self.unstored_records += records
        return outcome

    def advance_idle(self, partition: int, max_event_ms: int) -> BatchOutcome:
        """Move a quiet partition's clock (``PartitionProcessor.advance_idle``); stored at
        the next flush, its checkpoints unchanged."""
        outcome = self.processor(partition).advance_idle(max_event_ms)
        self.advanced.add(partition)
        return outcome

    def close_step(self, partition: int) -> BatchOutcome:
        """The partition's next closing step (``PartitionProcessor.close_step``); stored at
        the next flush, its checkpoints unchanged."""
        outcome = BatchOutcome(closed=self.processor(partition).close_step())
        self.advanced.add(partition)
        return outcome

    def checkpoint(self, partition: int, offset: int) -> None:
        """Everything up to ``offset`` is applied (records or not)."""
        self.processor(partition).checkpoint(offset)
        self.unstored[partition] = offset

    def hop_checkpoint(self, partition: int, offset: int) -> None:
        """Everything up to repartition offset ``offset`` is applied (records or not)."""
        self.processor(partition).hop_checkpoint(offset)
        self.unstored_hop[partition] = offset

    def held_changes(self) -> int:
        """The unstored changes the partitions' states hold (a hopping window's event
        changes one aggregate per window it falls in)."""
        return sum(self.states[partition].held_changes() for partition in self.pending())

    def held_bytes(self) -> int:
        """About the memory the unstored changes take (the write-back buffer)."""
        return sum(self.states[partition].held_bytes() for partition in self.pending())

    def pending(self) -> set[int]:
        """The partitions with changes not stored yet."""
        return self.unstored.keys() | self.unstored_hop.keys() | self.advanced

    def take_unstored(
        self,
    ) -> tuple[list[TablePartitionState], dict[int, int], dict[int, int]]:
        """The states to store and their last applied offsets, of the input and of the
        repartition topic; nothing is unstored after."""
        states = [self.states[partition] for partition in sorted(self.pending())]
        unstored, hop = dict(self.unstored), dict(self.unstored_hop)
        self.unstored.clear()
        self.unstored_hop.clear()
        self.advanced.clear()
        self.unstored_records = 0
        return states, unstored, hop

    def drop(self) -> None:
        """Forget every processor and unstored change; the stores stay as they were."""
        self.processors.clear()
        self.states.clear()
        self.unstored.clear()
        self.unstored_hop.clear()
        self.advanced.clear()
        self.received.clear()
        self.unstored_records = 0

    def live_state(self, partition: int) -> TablePartitionState | None:
        return self.states.get(partition)

    def running_watermark(self, partition: int) -> int | None:
        processor = self.processors.get(partition)
        return None if processor is None else processor.watermark
