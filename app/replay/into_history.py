"""``kappa replay`` for a spec with a cut: the events before the cut go to the version's
own history topic, never to the shared input, and a seam record seals them.

Before anything is produced: a history that is already sealed is refused (a version's
history is written once: a worker may be reading past it), and so is a cut that leaves
a gap in the live input (``app/replay/seam.py``), unless the user accepts it. Records left in
the history topic by an interrupted replay (no seam yet, so no worker has read past
them) are deleted, and the history starts after them.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pyarrow.compute as pc
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from agents.cut import HistoryCut
from agents.errors import ReplayError
from agents.events import EventParser
from agents.names import PipelineNames
from agents.seam_record import SEAM_KEY, SeamRecord, event_time
from app.kafka_client import offset_ranges
from app.replay.rows import GoodRows
from app.replay.seam import live_starts, read_seam
from tables.times import ms_to_iso


def before_cut(rows: GoodRows, cut_ms: int) -> tuple[GoodRows, int]:
    """The rows with an event time before the cut, and how many were at or after it."""
    mask = pc.less(rows.ts_ms, cut_ms)
    kept = int(pc.sum(mask).as_py() or 0)
    if kept == len(rows.ts_ms):
        return rows, 0
    return (
        GoodRows(
            rows.keys.filter(mask),
            rows.ts_ms.filter(mask),
            None if rows.values is None else rows.values.filter(mask),
        ),
        len(rows.ts_ms) - kept,
    )


async def check_history_replay(
    options: dict[str, Any],
    names: PipelineNames,
    cut: HistoryCut,
    parser: EventParser,
    allow_gap: bool,
) -> None:
    """Refuse, before anything changes, a sealed history or a cut that leaves a gap."""
    sealed = await read_seam(options, names)
    if sealed is not None:
        raise ReplayError(
            f"the history of {names.prefix} is sealed: replay {sealed.replay_id!r} wrote "
            f"{sealed.rows:,} rows before the cut {ms_to_iso(sealed.cut_ms)} at "
            f"{sealed.sealed_at}, and its workers may have read past it; nothing was produced",
            hint="a version's history is written once: to replay other files, start a new "
            "version (bump `version` in the spec, keep the [history] table)",
        )

    gaps = [
        start
        for start in await live_starts(
            options, names.input_topic, functools.partial(event_time, parser)
        )
        if start.gap(cut.cut_ms)
    ]
    if gaps and not allow_gap:
        latest = max(start.first_event_ms or 0 for start in gaps)
        raise ReplayError(
            "the cut leaves a gap: "
            + "; ".join(start.explain(names.input_topic, cut.cut_ms) for start in gaps)
            + "; nothing was produced",
            hint=f"move the cut to {ms_to_iso(latest)} or later, in a new version (and "
            "replay history files that reach it), or accept the missing events with "
            "--allow-gap",
        )


async def clear_unsealed_history(options: dict[str, Any], names: PipelineNames) -> dict[int, int]:
    """Delete what an interrupted replay left in the unsealed history; where each
    partition's history now starts."""
    topic = names.history_topic
    ranges = (await offset_ranges(options, [topic])).get(topic, {})
    left = {p: end for p, (begin, end) in ranges.items() if end > begin}
    if left:
        await delete_records_before(options, topic, left)
    return {p: end for p, (_, end) in ranges.items()}


async def delete_records_before(
    options: dict[str, Any], topic: str, offsets: dict[int, int]
) -> None:
    """Delete each partition's records before its offset in ``offsets``, as retention does."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(o) for p, o in offsets.items()}
        )
    finally:
        await admin.close()


async def seal(
    producer: AIOKafkaProducer,
    options: dict[str, Any],
    names: PipelineNames,
    record: SeamRecord,
) -> SeamRecord:
    """Write ``record`` as the seam, with the history's end offsets as Kafka has them now
    (every record of the replay is acknowledged); acknowledged before it returns."""
    topic = names.history_topic
    ranges = (await offset_ranges(options, [topic]))[topic]
    sealed = replace(record, end_offsets={p: end for p, (_, end) in sorted(ranges.items())})
    sent = await producer.send(names.control_topic, key=SEAM_KEY, value=sealed.encoded())
    await sent
    return sealed
