"""The sending end of the repartition hop, and how far each input partition is routed.

A hop record is the input record's value, keyed by the event's key, on the key's
partition for N of the version's repartition topic, with the input partition and offset
it came from in its ``kappa-source`` header (``agents.hop``). It is queued on the
``BatchSender`` with the outputs, so it is acknowledged before the state and before the
input offsets that cover it are committed.

An input partition off the direct lane (the input's count is not N, or this worker does
not own the partition's state: ``BatchLoop._direct_lane``) has no checkpoint in the
tables, so its progress is kept here. ``acked`` is the last offset whose records are all
sent and acknowledged (from the start: the offset before the first record fetched after
the assignment, which is the group's committed offset); ``queued`` the last offset
routed since the last flush. A failed batch forgets ``queued`` only: the next fetch's
gap check reads again from ``acked``, so each partition's run of hop records restarts
right after its acknowledged prefix (the fences drop what is sent twice).
"""

from __future__ import annotations

from typing import Any

from agents.batch_sender import BatchSender
from agents.events import Event
from agents.hop import source_headers
from agents.partitions import expected_partition


class HopStage:
    def __init__(self, topic: str, partitions: int, sender: BatchSender) -> None:
        self.topic = topic
        self.partitions = partitions
        self.sender = sender
        self.acked: dict[int, int] = {}
        self.queued: dict[int, int] = {}
        self.sent = 0  # hop records queued since the worker started

    def send(self, record: Any, event: Event) -> None:
        """Queue ``record`` (an input record) for its key's partition of the hop."""
        key = event.key
        self.sender.add(
            self.topic,
            expected_partition(key, self.partitions),
            key.encode(),
            record.value,
            source_headers(record.partition, record.offset),
        )
        self.sent += 1

    def routed_until(self, partition: int, first: int) -> int:
        """The last routed offset of an input partition whose first record fetched since
        the assignment is at ``first``."""
        acked = self.acked.setdefault(partition, first - 1)
        return self.queued.get(partition, acked)

    def routed(self, partition: int, offset: int) -> None:
        """Every record of ``partition`` up to ``offset`` is queued (or needs nothing)."""
        self.queued[partition] = offset

    def take_queued(self) -> dict[int, int]:
        """After the sender's acknowledgement: the partitions routed since the last
        flush and their last offsets, now acknowledged."""
        queued, self.queued = self.queued, {}
        self.acked.update(queued)
        return queued

    @property
    def pending(self) -> bool:
        return bool(self.queued)

    def drop(self) -> None:
        """A failed batch: what was queued is the next fetch's to route again."""
        self.queued.clear()

    def forget(self) -> None:
        """A rebalance: the partitions may go; a later assignment starts afresh from the
        group's committed offsets."""
        self.queued.clear()
        self.acked.clear()
