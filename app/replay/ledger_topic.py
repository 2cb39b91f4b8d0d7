"""Reading the replay ledger whole.

Replays into the shared input topic are seen by every version of the pipeline, so their
ledger is the pipeline's: the compacted topic ``kappa.<name>.control`` (one partition),
under keys ``replay:<id>``. A version's own history (a spec with a cut) needs none: it
is written once and sealed, and an interrupted one is cleared and written again
(``app/replay/into_history.py``).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from app.kafka_client import client_options
from app.replay.ledger import Ledger, LedgerUnreadable
from app.settings import KappaSettings

READ_TIMEOUT_S = 30.0


async def read_ledger(settings: KappaSettings, topic: str) -> Ledger:
    """Every record of the ledger topic, folded; ``LedgerUnreadable`` if Kafka does not
    give them all within ``READ_TIMEOUT_S``."""
    try:
        return await asyncio.wait_for(_read(settings, topic), READ_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        raise LedgerUnreadable(
            f"the replay ledger {topic} could not be read ({type(exc).__name__}: {exc}), so "
            "kappa cannot tell what was replayed before; nothing was produced",
            hint=f"check that Kafka answers at {settings.bootstrap} and that the topic "
            "exists, then run the replay again",
        ) from exc


async def _read(settings: KappaSettings, topic: str) -> Ledger:
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        begin = (await consumer.beginning_offsets([partition]))[partition]
        end = (await consumer.end_offsets([partition]))[partition]
        consumer.seek(partition, begin)  # not seek_to_beginning: its reset waits a backoff
        records: list[tuple[bytes | None, bytes | None, int]] = []
        while await consumer.position(partition) < end:
            batches = await consumer.getmany(partition, timeout_ms=500)
            records += [(r.key, r.value, r.offset) for r in batches.get(partition, [])]
        return Ledger.fold(records)
    finally:
        await consumer.stop()
