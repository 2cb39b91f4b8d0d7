"""Reading the replay ledger whole.

Replays into the shared input topic are seen by every version of the pipeline, so their
ledger is the pipeline's: the compacted topic ``kappa.<name>.control`` (one partition),
under keys ``replay:<id>``. A version's own history (a spec with a cut) needs none: it
is written once and sealed, and an interrupted one is cleared and written again
(``app/replay/into_history.py``).
"""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from app.kafka_client import client_options, read_partition
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
    records = await read_partition(client_options(settings), topic)
    if records is None:
        raise UnknownTopicOrPartitionError(f"topic {topic} does not exist")
    return Ledger.fold([(r.key, r.value, r.offset) for r in records])
