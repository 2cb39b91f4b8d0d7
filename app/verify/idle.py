"""``kappa verify`` and quiet partitions: the idle advances a version made, read back from
its ``meta`` changelog.

With an ``idle_timeout`` (docs/pipelines.md), a quiet partition's clock moves to the
active partitions' lowest by wall-clock time, not by events, and the windows it passes
close. The worker stores each advance as the partition's progress record marked ``idle``
(``tables.records.PartitionProgress``), with the offset of the last input record it had
applied. So the batch answer can apply each advance where it happened
(``app.verify.batch``): an event read after it, behind the moved watermark, is late, as
the worker judged it, and the windows that differ from the event-time answer by such
events are reported apart, not as differences.

Where it happened, on the input partitions that verify orders events by: a state
partition's own input partition up to the advance's ``offset``, and, for what came
through the repartition hop (``hop_offset``), each source input partition up to the last
of its records that the hop had brought before (read from the repartition topic's
headers). That is exact where a state partition's events come from its own input
partition, on either lane; where the hop mixes several input partitions' keys, verify's
order is already only approximate (docs/reprocessing.md).

The changelog is compacted: an advance is read only while its record is still there
(Kafka keeps every record of a topic's active segment, a week by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from agents.hop import BadSource, source_of
from tables.records import progress_record


@dataclass(frozen=True)
class IdleAdvance:
    partition: int
    after_seq: int  # the last input offset applied before it, on the worker's scale
    clock_ms: int  # the event-time clock it moved the partition to
    hop_after: int = -1  # the last repartition topic offset applied before it


@dataclass(frozen=True)
class InputAdvance:
    """An idle advance as it applies to one input partition's events: those after
    ``after_seq`` are judged against ``clock_ms``."""

    partition: int
    after_seq: int
    clock_ms: int


def idle_advances(records: Iterable[Any]) -> list[IdleAdvance]:
    """The idle advances among ``meta`` changelog records (others are left out)."""
    advances = []
    for record in records:
        found = progress_record(record.key, record.value)
        if found is None:
            continue
        partition, progress = found
        if progress.idle and progress.max_event_ms is not None:
            advances.append(
                IdleAdvance(partition, progress.offset, progress.max_event_ms, progress.hop_offset)
            )
    return advances


def on_inputs(advances: Iterable[IdleAdvance], hop_records: Iterable[Any]) -> list[InputAdvance]:
    """Each advance of state partition P on P's own input partition and on every input
    partition whose records the hop had brought to P before it (``hop_records``: the
    repartition topic's records; one without kappa's source header is left out)."""
    brought: dict[int, list[tuple[int, int, int]]] = {}  # P -> (hop offset, source, offset)
    for record in hop_records:
        try:
            source, offset = source_of(record.headers or ())
        except BadSource:
            continue
        brought.setdefault(record.partition, []).append((record.offset, source, offset))
    out = []
    for advance in advances:
        before = {advance.partition: advance.after_seq}
        for hop_offset, source, offset in brought.get(advance.partition, ()):
            if hop_offset <= advance.hop_after:
                before[source] = max(before.get(source, -1), offset)
        out += [InputAdvance(q, seq, advance.clock_ms) for q, seq in sorted(before.items())]
    return out


def advances_table(advances: Iterable[InputAdvance]) -> pa.Table:
    """The advances as DuckDB reads them: ``p``, ``after_seq``, ``clock``."""
    rows = list(advances)
    return pa.table(
        {
            "p": pa.array([a.partition for a in rows], pa.int32()),
            "after_seq": pa.array([a.after_seq for a in rows], pa.int64()),
            "clock": pa.array([a.clock_ms for a in rows], pa.int64()),
        }
    )
