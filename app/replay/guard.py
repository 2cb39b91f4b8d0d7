"""Before a replay produces anything: read its ledger, refuse or resume, and find what a
resumed replay already wrote. Then, while it runs, the ledger record it keeps up to date.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from agents.names import PipelineNames
from agents.spec import PipelineSpec
from app.kafka_client import client_options, offset_ranges
from app.replay.ledger import (
    Checkpoint,
    FileEntry,
    Owner,
    RowOrder,
    checkpoint_json,
    parsing_fingerprint,
    plan,
)
from app.replay.ledger_topic import read_ledger
from app.replay.resume import rows_written
from app.settings import KappaSettings


@dataclass
class Guard:
    """One replay's place in its ledger: where it starts in each topic it writes to."""

    topic: str  # the ledger topic
    replay_id: str
    target: str
    files: list[FileEntry]
    order: RowOrder
    started_at: str
    resumes: int  # how many times this replay was started before
    written: dict[str, Checkpoint]  # per topic written to: what was written before

    def value(
        self,
        state: str,
        *,
        rows: dict[str, int],
        checkpoints: dict[str, Checkpoint],
        error: str | None = None,
    ) -> bytes:
        """The ledger record: the replay as it stands now."""
        now = datetime.now(UTC).isoformat()
        record: dict[str, Any] = {
            "id": self.replay_id,
            "target": self.target,
            "state": state,
            "files": [f.as_json() for f in self.files],
            "row_order": self.order.as_json(),
            "rows": rows,
            "checkpoint": {topic: checkpoint_json(cp) for topic, cp in checkpoints.items()},
            "started_at": self.started_at,
            "updated_at": now,
            "finished_at": now if state != "running" else None,
            "resumes": self.resumes,
            "owner": Owner.me().as_json(),
        }
        if error is not None:
            record["error"] = error
        return orjson.dumps(record)


async def guard(
    settings: KappaSettings,
    spec: PipelineSpec,
    *,
    replay_id: str,
    files: list[FileEntry],
    fmt: str | None,
    order_by_time: bool,
    partitions: int,
    force: bool,
) -> Guard:
    """Refuse (``ReplayError`` subclasses, nothing produced) or say where to start."""
    names = PipelineNames(spec)
    target, dead = names.input_topic, names.dead_letter_topic
    topic = names.pipeline_control_topic
    order = RowOrder(
        files=tuple(f.sha256 for f in files),
        fmt=fmt,
        order_by_time=order_by_time,
        partitions=partitions,
        parsing=parsing_fingerprint(spec),
    )
    ledger = await read_ledger(settings, topic)
    decided = plan(
        ledger,
        replay_id=replay_id,
        target=target,
        files=files,
        order=order,
        force=force,
        now=datetime.now(UTC),
        here=Owner.me(),
        pid_alive=_pid_alive,
    )
    if decided.earlier is None:
        ranges = await offset_ranges(client_options(settings), [target, dead])
        written = {t: {p: (end, 0) for p, (_, end) in ranges.get(t, {}).items()} for t in ranges}
        return Guard(topic, replay_id, target, files, order, _now(), 0, written)
    earlier = decided.earlier
    written = {
        t: await rows_written(settings, t, replay_id, earlier.checkpoint(t)) for t in (target, dead)
    }
    started = str(earlier.record.get("started_at") or _now())
    resumes = int(earlier.record.get("resumes") or 0) + 1
    return Guard(topic, replay_id, target, files, order, started, resumes, written)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
