"""The records ``kappa retire`` would delete that people may still need.

A version's dead-letter topic holds the bad records of everything it consumed, replays
included (a replay sends its bad rows there), with the reason in headers; its late topic
holds the events that came behind its watermark. They are the only copy: retiring the
version deletes them. ``survey`` counts them, by reason, so that retire can list them
and refuse to delete them unseen; ``export`` writes them to JSON Lines files, one per
topic, so that they outlive the version (fix them, and replay them into the pipeline).
Both read the topics a fetch at a time, so memory does not grow with the topics.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from agents.errors import KappaError
from agents.gap_reader import GapReader
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings
from tables.times import ms_to_iso

# Topic suffix -> what its records are, as retire lists them.
KINDS = {".dead-letter": "dead letters", ".late": "late events"}


@dataclass(frozen=True)
class KeptTopic:
    topic: str
    kind: str
    reasons: Counter[str]  # reason -> records

    @property
    def records(self) -> int:
        return sum(self.reasons.values())


def kept_topics(topics: list[str]) -> list[tuple[str, str]]:
    """(topic, kind) of the version's topics whose records retire must not lose unseen."""
    return [
        (topic, kind)
        for topic in sorted(topics)
        for suffix, kind in KINDS.items()
        if topic.endswith(suffix)
    ]


async def survey(settings: KappaSettings, topics: list[str]) -> list[KeptTopic]:
    """The dead-letter and late topics among ``topics``, with their records by reason."""
    found = []
    for topic, kind in kept_topics(topics):
        reasons: Counter[str] = Counter()
        async for record in _records(settings, topic):
            reasons[reason(record)] += 1
        found.append(KeptTopic(topic, kind, reasons))
    return found


async def export(
    settings: KappaSettings, kept: list[KeptTopic], directory: Path
) -> list[tuple[Path, int]]:
    """Write each topic with records to ``directory/<topic>.jsonl`` (``directory``
    exists: see ``export_directory``); (file, records)."""
    written = []
    for topic in kept:
        if not topic.records:
            continue
        path = directory / f"{topic.topic}.jsonl"
        count = 0
        with path.open("wb") as out:
            async for record in _records(settings, topic.topic):
                out.write(orjson.dumps(as_json(record)) + b"\n")
                count += 1
        written.append((path, count))
    return written


def export_directory(directory: Path) -> None:
    """Create ``directory`` if need be, before anything is deleted."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KappaError(
            f"cannot create the export directory {directory}: {exc.strerror or exc}",
            hint="give --export a directory this user can write to; nothing was deleted",
        ) from None


def reason(record: Any) -> str:
    """A dead letter's reason (its ``kappa.reason`` header), or a late event's (in its
    value, agents.outputs)."""
    headers = dict(record.headers or ())
    if "kappa.reason" in headers:
        return bytes(headers["kappa.reason"]).decode(errors="replace")
    try:
        return str(orjson.loads(record.value)["reason"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "unknown"


def as_json(record: Any) -> dict[str, Any]:
    """One exported line: where the record was, its key, value and headers as text
    (a value that is not UTF-8, as a bad record's may not be, as base64 instead)."""
    line: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": ms_to_iso(record.timestamp),
        "timestamp_ms": record.timestamp,
        "reason": reason(record),
        "headers": {name: _text(value) for name, value in record.headers or ()},
    }
    for field, raw in (("key", record.key), ("value", record.value)):
        if raw is None:
            line[field] = None
            continue
        try:
            line[field] = bytes(raw).decode()
        except UnicodeDecodeError:
            line[f"{field}_base64"] = base64.b64encode(raw).decode()
    return line


def _text(value: bytes) -> str:
    return bytes(value).decode(errors="backslashreplace")


async def _records(settings: KappaSettings, topic: str) -> AsyncIterator[Any]:
    options = client_options(settings)
    ranges = (await offset_ranges(options, [topic])).get(topic, {})
    reader = GapReader(options)
    try:
        for partition, (start, end) in sorted(ranges.items()):
            if start < end:
                async for fetched in reader.read(topic, partition, start, end):
                    for record in fetched:
                        yield record
    finally:
        await reader.stop()


def describe(topic: KeptTopic) -> str:
    """``  12 dead letters in kappa.orders.v1.dead-letter (bad_time 8, bad_json 4)``"""
    reasons = ", ".join(f"{why} {n:,}" for why, n in topic.reasons.most_common())
    return f"{topic.records:,} {topic.kind} in {topic.topic}" + (f" ({reasons})" if reasons else "")
