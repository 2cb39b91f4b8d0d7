"""The seam record, which seals a version's history, and the live input's start, which
tells whether the cut leaves a gap: the records both ``kappa replay`` and the worker read.

``kappa replay`` of a spec with a cut writes the events before the cut into the
version's history topic, and when it is done, one record keyed ``seam`` into the
version's compacted control topic: the cut, the history topic, the offsets its
partitions start and end at, and what was replayed. The version's workers read the
history up to those end offsets, then the live input topic; nothing after the seam
record is ever written to the history (a second replay is refused).

A **gap**: the live input partition's oldest retained record is later than the cut
while records before it are gone (its log does not start at 0). Events between the cut
and that record may have been deleted by retention, and neither side holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from agents.events import EventParser, Rejected
from tables.times import ms_to_iso

SEAM_KEY = b"seam"


@dataclass(frozen=True)
class SeamRecord:
    cut_ms: int
    history_topic: str
    # Per partition: where this version's history starts (records before it are left
    # from an interrupted replay and deleted) and its end offset once sealed.
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    rows: int  # rows written to the history (events before the cut)
    after_cut: int  # rows of the files at or after the cut, left to the live topic
    files: list[str]
    replay_id: str
    sealed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict[str, Any]:
        return {
            "cut_ms": self.cut_ms,
            "cut": ms_to_iso(self.cut_ms),
            "history_topic": self.history_topic,
            "start_offsets": {str(p): o for p, o in sorted(self.start_offsets.items())},
            "end_offsets": {str(p): o for p, o in sorted(self.end_offsets.items())},
            "rows": self.rows,
            "after_cut": self.after_cut,
            "files": self.files,
            "replay_id": self.replay_id,
            "sealed_at": self.sealed_at,
        }

    def encoded(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, value: bytes) -> SeamRecord:
        """The record, or ValueError when the control topic holds something else."""
        try:
            body = orjson.loads(value)
            return cls(
                cut_ms=int(body["cut_ms"]),
                history_topic=str(body["history_topic"]),
                start_offsets={int(p): int(o) for p, o in body["start_offsets"].items()},
                end_offsets={int(p): int(o) for p, o in body["end_offsets"].items()},
                rows=int(body["rows"]),
                after_cut=int(body["after_cut"]),
                files=[str(f) for f in body["files"]],
                replay_id=str(body["replay_id"]),
                sealed_at=str(body["sealed_at"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a seam record: {exc!r}") from None


@dataclass(frozen=True)
class LiveStart:
    """A live input partition's oldest retained record, for the gap check."""

    partition: int
    log_start: int  # the first offset the log holds; 0 when retention removed nothing
    first_event_ms: int | None  # the event time of the first record there that parses

    def gap(self, cut_ms: int) -> bool:
        return (
            self.log_start > 0 and self.first_event_ms is not None and self.first_event_ms > cut_ms
        )

    def explain(self, topic: str, cut_ms: int) -> str:
        return (
            f"partition {self.partition} of {topic} now starts at offset {self.log_start}, "
            f"whose event time {ms_to_iso(self.first_event_ms or 0)} is after the cut "
            f"{ms_to_iso(cut_ms)}: events between the cut and it were deleted by retention "
            "and are in neither the history nor the live topic"
        )


def event_time(parser: EventParser, value: bytes | None) -> int | None:
    """A record's event time, or None when it is no good event (it says nothing of a gap)."""
    try:
        return parser.parse_bytes(value).ts_ms
    except Rejected:
        return None
