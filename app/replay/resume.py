"""What a resumed replay skips: the rows it really wrote before it was stopped.

Each record a replay produces carries two headers: ``kappa.replay`` (the replay id) and
``kappa.seq`` (its row number among the replay's records on that partition, from 1). The
producer is idempotent and aiokafka keeps one batch in flight per partition, so what a
killed replay left in a partition is a prefix of its rows for that partition. A resume
reads each partition from the ledger's checkpoint (an offset at or before the replay's
last acknowledged record, with the rows before it) to the end, finds the replay's last
``kappa.seq``, and skips that many rows of the partition in the same, deterministic row
order. The checkpoint only bounds how much is read; the headers say what was written.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agents.errors import ReplayError
from app.kafka_client import client_options
from app.replay.ledger import Checkpoint, LedgerUnreadable
from app.settings import KappaSettings

ID_HEADER = "kappa.replay"
SEQ_HEADER = "kappa.seq"
SCAN_TIMEOUT_S = 120.0


def seq_headers(replay_id: bytes, seq: int) -> list[tuple[str, bytes]]:
    return [(ID_HEADER, replay_id), (SEQ_HEADER, str(seq).encode())]


class Sequencer:
    """Numbers one replay's records per partition and says which a resume skips."""

    def __init__(self, written: Checkpoint | None = None) -> None:
        self._skip = {p: rows for p, (_, rows) in (written or {}).items()}
        self._seen: dict[int, int] = {}

    def take(self, partition: int, rows: int) -> tuple[int, int]:
        """For the next ``rows`` rows of a partition: the first one's number, and how many
        of them, from the first, were written already."""
        seen = self._seen.get(partition, 0)
        self._seen[partition] = seen + rows
        return seen + 1, max(0, min(rows, self._skip.get(partition, 0) - seen))

    def next(self, partition: int) -> int | None:
        """The row's number on its partition, or None when it was written already."""
        seq, skip = self.take(partition, 1)
        return None if skip else seq

    def skipped(self, partition: int) -> int:
        return min(self._seen.get(partition, 0), self._skip.get(partition, 0))

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped(p) for p in self._skip)

    @property
    def to_skip(self) -> int:
        return sum(self._skip.values())


async def rows_written(
    settings: KappaSettings, topic: str, replay_id: str, checkpoint: Checkpoint
) -> Checkpoint:
    """Per partition of ``checkpoint``: the offset after the replay's last record on it and
    how many rows of the replay that is (the checkpoint's own pair if none came after)."""
    try:
        return await asyncio.wait_for(
            _scan(settings, topic, replay_id.encode(), checkpoint), SCAN_TIMEOUT_S
        )
    except (KafkaError, TimeoutError) as exc:
        raise LedgerUnreadable(
            f"could not read {topic} from the checkpoint of replay {replay_id} "
            f"({type(exc).__name__}: {exc}), so what it wrote is unknown; nothing was produced",
            hint=f"check that Kafka answers at {settings.bootstrap}, then resume again",
        ) from exc


async def _scan(
    settings: KappaSettings, topic: str, replay_id: bytes, checkpoint: Checkpoint
) -> Checkpoint:
    found = dict(checkpoint)
    if not checkpoint:
        return found
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): p for p in checkpoint}
        consumer.assign(list(tps))
        for tp, p in tps.items():
            consumer.seek(tp, checkpoint[p][0])
        ends = await consumer.end_offsets(list(tps))
        left = {tp for tp in tps if checkpoint[tps[tp]][0] < ends[tp]}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=500)
            for tp, records in batches.items():
                p = tps[tp]
                for record in records:
                    seq = _seq_of(record.headers, replay_id)
                    if seq is None:
                        continue
                    if seq != found[p][1] + 1:
                        raise ReplayError(
                            f"{topic} partition {p} holds row {seq} of replay "
                            f"{replay_id.decode()} at offset {record.offset} after row "
                            f"{found[p][1]}: its rows are not one unbroken run, so a resume "
                            "cannot tell what to skip; nothing was produced",
                            hint="replay under a new --id into a new pipeline version",
                        )
                    found[p] = (record.offset + 1, seq)
            for tp in list(left):
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
        return found
    finally:
        await consumer.stop()


def _seq_of(headers: object, replay_id: bytes) -> int | None:
    values = dict(headers) if isinstance(headers, list | tuple) else {}
    if values.get(ID_HEADER) != replay_id:
        return None
    try:
        return int(values[SEQ_HEADER])
    except (KeyError, ValueError):
        return None
