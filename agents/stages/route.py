"""The route stage: a partition's records decoded and validated into events, and each
good one sent where its key's state is.

A fetch's records are parsed together (``EventParser.parse_batch``, which also computes
the spec's derived fields and its ``where``). A good event is applied where it is (the
direct lane) when the partition may take it (``BatchLoop._direct_lane``: the input has
the version's N partitions and this worker owns the partition's state) and the record is
on its key's partition for N. Every other good event (a null key, a key of
another field, a custom partitioner, any record of a grown input) is sent on through the
repartition hop, to its key's partition for N. What cannot be applied is returned with
the reason, for the dead-letter topic; events the ``where`` leaves out are counted as
filtered. A version with a cut (``[history]``) has no hop: its live offsets are virtual
(agents/history_seam.py), so a record off its key's partition is still ``misrouted``.

``unpack`` is the other end of the hop: a repartition partition's records back into
events, each with the input partition and offset it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.events import Event, EventParser, Rejected
from agents.hop import BadSource, source_of
from agents.partitions import expected_partition
from agents.stats import WorkerStats

# A record that cannot be applied: the record, the reason and what to do about it.
Rejection = tuple[Any, str, str]


@dataclass
class Routed:
    """A chunk's records, split by where they go."""

    direct: list[tuple[int, Event]] = field(default_factory=list)  # by offset
    hop: list[tuple[Any, Event]] = field(default_factory=list)  # (record, event)
    rejected: list[Rejection] = field(default_factory=list)


@dataclass
class Unpacked:
    """A repartition chunk's events at their source (input partition, offset)."""

    events: list[tuple[int, Event]] = field(default_factory=list)  # (source offset, event)
    sources: list[int] = field(default_factory=list)  # each event's input partition
    rejected: list[Rejection] = field(default_factory=list)


class RouteStage:
    def __init__(self, parser: EventParser, partitions: int, stats: WorkerStats, hop: bool) -> None:
        self.parser = parser
        self.partitions = partitions
        self.stats = stats
        self.hop = hop

    def split(self, records: Sequence[Any], direct: bool = True) -> Routed:
        """The good events by lane, and the bad (and, without a hop, misrouted) records
        with the reason. Without ``direct`` (the partition's state is not this worker's,
        or the input's count is not N) every good event takes the hop."""
        partitions = self.partitions
        routed = Routed()
        parsed = self.parser.parse_batch([record.value for record in records])
        for record, event in zip(records, parsed, strict=True):
            if isinstance(event, Rejected):
                routed.rejected.append((record, event.reason, event.detail))
            elif not event.kept:
                self.stats.filtered += 1
            elif direct and expected_partition(event.key, partitions) == record.partition:
                routed.direct.append((record.offset, event))
            elif self.hop:
                routed.hop.append((record, event))
            else:
                home = expected_partition(event.key, partitions)
                detail = (
                    f"key {event.key!r} belongs on partition {home}; a version with a cut "
                    "([history]) applies a record only on its key's partition: produce "
                    "with the record key set to the event's key and Kafka's default "
                    "(murmur2) partitioner"
                )
                routed.rejected.append((record, "misrouted", detail))
        return routed

    def unpack(self, records: Sequence[Any]) -> Unpacked:
        """Repartition records back into events at their source coordinates."""
        unpacked = Unpacked()
        parsed = self.parser.parse_batch([record.value for record in records])
        for record, event in zip(records, parsed, strict=True):
            try:
                source, offset = source_of(record.headers)
            except BadSource as bad:
                unpacked.rejected.append((record, "bad_source", f"{bad}: not written by kappa"))
                continue
            if isinstance(event, Rejected):  # a spec that changed under its version
                unpacked.rejected.append((record, event.reason, event.detail))
            elif event.kept:
                unpacked.events.append((offset, event))
                unpacked.sources.append(source)
        return unpacked
