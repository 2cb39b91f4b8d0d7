"""Which version of a pipeline is active: the one readers are sent to.

``kappa promote`` records it in the pipeline's compacted control topic
(``kappa.<name>.control``, one partition) under the key ``active``, as JSON::

    {"pipeline": "orders", "version": 2, "results_topic": "kappa.orders.v2.window-results",
     "windows": ["30m"], "promoted_at": "2026-12-01T06:00:00.000Z",
     "promoted_at_ms": 1796104800000}

``windows`` are the names the active version's windows have in the query API and in its
results; a promotion can change them (``null`` in a record written before kappa kept
them, or when no worker of the version said).

Compaction keeps the newest record, so the topic itself is the stable lookup for
readers of window results; every worker follows it (``ActiveVersionTracker``) and
serves it at ``GET /api/active``. Without a record, each worker answers for its own
version, as before versions could be promoted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from agents.names import pipeline_control_topic, version_prefix
from app.control_follower import ControlTopicFollower
from app.kafka_client import client_options, read_partition
from app.settings import KappaSettings
from tables.times import ms_to_iso

log = logging.getLogger(__name__)

ACTIVE_KEY = b"active"


@dataclass(frozen=True)
class ActiveRecord:
    pipeline: str
    version: int
    promoted_at_ms: int
    windows: tuple[str, ...] | None = None

    @property
    def results_topic(self) -> str:
        return f"{version_prefix(self.pipeline, self.version)}.window-results"

    def as_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "version": self.version,
            "results_topic": self.results_topic,
            "windows": None if self.windows is None else list(self.windows),
            "promoted_at": ms_to_iso(self.promoted_at_ms),
            "promoted_at_ms": self.promoted_at_ms,
        }

    @classmethod
    def decode(cls, value: bytes) -> ActiveRecord | None:
        """The record, or None (logged) when it is not one kappa wrote."""
        try:
            body = orjson.loads(value)
            windows = body.get("windows")
            return cls(
                str(body["pipeline"]),
                int(body["version"]),
                int(body["promoted_at_ms"]),
                None if windows is None else tuple(str(name) for name in windows),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed active-version record: %r", value[:200])
            return None


async def read_active(settings: KappaSettings, pipeline: str) -> ActiveRecord | None:
    """The active version's record, read once; None when none was promoted (or the
    control topic does not exist yet)."""
    records = await read_partition(client_options(settings), pipeline_control_topic(pipeline))
    active: ActiveRecord | None = None
    for record in records or []:
        if record.key == ACTIVE_KEY and record.value is not None:
            active = ActiveRecord.decode(record.value) or active
    return active


async def write_active(
    settings: KappaSettings, pipeline: str, version: int, windows: tuple[str, ...] | None
) -> ActiveRecord:
    record = ActiveRecord(pipeline, version, int(time.time() * 1000), windows)
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            pipeline_control_topic(pipeline),
            key=ACTIVE_KEY,
            value=orjson.dumps(record.as_json()),
            partition=0,
        )
    finally:
        await producer.stop()
    return record


class ActiveVersionTracker(ControlTopicFollower):
    """Follows the pipeline's control topic: ``active`` is the newest record, None
    until one was read (or if none was ever written)."""

    def __init__(self, settings: KappaSettings, pipeline: str, **kwargs: Any) -> None:
        super().__init__(settings, pipeline_control_topic(pipeline), **kwargs)
        self.active: ActiveRecord | None = None

    def on_record(self, key: bytes | None, value: bytes | None) -> None:
        if key == ACTIVE_KEY and value is not None:
            self.active = ActiveRecord.decode(value) or self.active
