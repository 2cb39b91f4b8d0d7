"""``kappa replay``: history files become a bounded stream on the pipeline's input topic.

Each good row is produced with its key set to the event's key (so Kafka's default
partitioner puts it on the same partition as the key's live events) and its event time
as the record timestamp. Bad rows go to the dead-letter topic, like bad live records,
and are listed in the report at the end. Files are streamed, never loaded whole.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import orjson
from aiokafka import AIOKafkaProducer

from app.errors import ReplayError
from app.events import EventParser, Rejected
from app.history import HistoryError, HistoryFile, open_history, sort_by_time
from app.kafka_client import client_options, offset_ranges
from app.names import PipelineNames
from app.settings import KappaSettings
from app.spec import PipelineSpec
from app.topics import ensure_topics

Format = Literal["csv", "jsonl", "parquet"]
MAX_LISTED_BAD_ROWS = 20


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    row_number: int
    reason: str
    detail: str


@dataclass
class ReplayReport:
    replay_id: str
    files: list[str]
    produced: int = 0
    bad_rows: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    first_bad_rows: list[BadRow] = field(default_factory=list)
    seconds: float = 0.0
    end_offsets: dict[int, int] = field(default_factory=dict)

    def note_bad(self, row: BadRow) -> None:
        self.bad_rows += 1
        self.bad_by_reason[row.reason] += 1
        if len(self.first_bad_rows) < MAX_LISTED_BAD_ROWS:
            self.first_bad_rows.append(row)


@dataclass(frozen=True)
class ReplayOptions:
    files: list[Path]
    fmt: Format | None = None
    order_by_time: bool = False
    rate: float | None = None  # events per second; None is as fast as possible
    sort_chunk_rows: int = 200_000
    replay_id: str | None = None


class Progress(Protocol):
    """What the progress bar is told; the CLI passes a rich implementation."""

    def start(self, total_bytes: int) -> None: ...
    def advance(self, bytes_done: int, events: int) -> None: ...
    def stop(self) -> None: ...


class RateLimiter:
    """Sleeps so that `sent` events never run ahead of `rate` events per second."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()

    async def wait(self, sent: int) -> None:
        if self.rate is None:
            return
        ahead = sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0.005:
            await asyncio.sleep(ahead)


def open_all(spec: PipelineSpec, options: ReplayOptions) -> list[HistoryFile]:
    """Open (and so validate) every file before anything is produced."""
    required = [*spec.key, spec.time_field]
    try:
        return [
            open_history(path, required_fields=required, fmt=options.fmt) for path in options.files
        ]
    except HistoryError as exc:
        raise ReplayError(
            str(exc),
            hint="nothing was produced; fix the file or the pipeline spec and run the replay again",
        ) from None


async def replay(
    settings: KappaSettings,
    spec: PipelineSpec,
    options: ReplayOptions,
    progress: Progress,
) -> ReplayReport:
    files = open_all(spec, options)
    names = PipelineNames(spec)
    await ensure_topics(settings, names)
    report = ReplayReport(
        replay_id=options.replay_id
        or f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        files=[str(path) for path in options.files],
    )
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        enable_idempotence=True,
    )
    await producer.start()
    started = time.monotonic()
    try:
        await _control(producer, names, report, "running")
        progress.start(sum(f.size_bytes for f in files))
        await _produce_all(producer, names, spec, files, options, report, progress)
        await producer.flush()
        ranges = await offset_ranges(client_options(settings), [names.input_topic])
        report.end_offsets = {p: end for p, (_, end) in ranges[names.input_topic].items()}
        report.seconds = time.monotonic() - started
        await _control(producer, names, report, "complete")
    except BaseException:
        report.seconds = time.monotonic() - started
        await asyncio.shield(_control(producer, names, report, "failed"))
        raise
    finally:
        progress.stop()
        await producer.stop()
    return report


async def _produce_all(
    producer: AIOKafkaProducer,
    names: PipelineNames,
    spec: PipelineSpec,
    files: list[HistoryFile],
    options: ReplayOptions,
    report: ReplayReport,
    progress: Progress,
) -> None:
    parser = EventParser(spec)
    limiter = RateLimiter(options.rate)
    topic = names.input_topic
    done_bytes = 0
    last_report = time.monotonic()

    def good_rows(history: HistoryFile) -> Iterator[tuple[int, bytes]]:
        """(event time, [key, fields]) for good rows; bad rows are reported on the way."""
        for row in history.rows():
            if row.fields is None:
                bad.append(
                    (history, row.row_number, row.error or "bad_row", row.detail or "", row.raw)
                )
                continue
            try:
                event = parser.parse_fields(row.fields)
            except Rejected as rejected:
                bad.append((history, row.row_number, rejected.reason, rejected.detail, row.raw))
                continue
            yield event.ts_ms, _pack(event.key.encode(), orjson.dumps(row.fields, default=str))

    bad: list[tuple[HistoryFile, int, str, str, bytes]] = []
    streams: list[tuple[HistoryFile | None, Iterator[tuple[int, bytes]]]]
    if options.order_by_time:
        # The sort spills to unnamed temporary files that vanish when closed.
        tmp = Path(tempfile.gettempdir())
        merged = (item for history in files for item in good_rows(history))
        streams = [(None, sort_by_time(merged, chunk_rows=options.sort_chunk_rows, tmp_dir=tmp))]
    else:
        streams = [(history, good_rows(history)) for history in files]

    for history, stream in streams:
        for ts_ms, payload in stream:
            key, value = _unpack(payload)
            await producer.send(topic, key=key, value=value, timestamp_ms=ts_ms)
            report.produced += 1
            await _drain_bad(producer, names, bad, report)
            if report.produced % 1024 == 0:
                await limiter.wait(report.produced)
                now = time.monotonic()
                progress.advance(done_bytes + _bytes_read(files, history), report.produced)
                if now - last_report > 2.0:
                    last_report = now
                    await _control(producer, names, report, "running")
            elif options.rate is not None:
                await limiter.wait(report.produced)
        await _drain_bad(producer, names, bad, report)
        if history is not None:
            done_bytes += history.size_bytes
    progress.advance(sum(f.size_bytes for f in files), report.produced)


def _pack(key: bytes, value: bytes) -> bytes:
    """Key and value in one bytes object, so the external sort can spill them."""
    return len(key).to_bytes(4, "big") + key + value


def _unpack(payload: bytes) -> tuple[bytes, bytes]:
    size = int.from_bytes(payload[:4], "big")
    return payload[4 : 4 + size], payload[4 + size :]


def _bytes_read(files: list[HistoryFile], current: HistoryFile | None) -> int:
    if current is None:  # sorting: reading happens up front, all files at once
        return sum(f.bytes_read for f in files)
    return current.bytes_read


async def _drain_bad(
    producer: AIOKafkaProducer,
    names: PipelineNames,
    bad: list[tuple[HistoryFile, int, str, str, bytes]],
    report: ReplayReport,
) -> None:
    for history, row_number, reason, detail, raw in bad:
        report.note_bad(BadRow(str(history.path), row_number, reason, detail))
        await producer.send(
            names.dead_letter_topic,
            key=f"{history.path}:{row_number}".encode(),
            value=raw,
            headers=[
                ("kappa.reason", reason.encode()),
                ("kappa.detail", detail.encode()),
                ("kappa.source", orjson.dumps({"file": str(history.path), "row": row_number})),
            ],
        )
    bad.clear()


async def _control(
    producer: AIOKafkaProducer, names: PipelineNames, report: ReplayReport, state: str
) -> None:
    value = {
        "state": state,
        "files": report.files,
        "produced": report.produced,
        "bad_rows": report.bad_rows,
        "seconds": round(report.seconds, 3),
        "end_offsets": {str(p): o for p, o in report.end_offsets.items()},
        "updated_at": datetime.now(UTC).isoformat(),
    }
    await producer.send_and_wait(
        names.control_topic, key=report.replay_id.encode(), value=orjson.dumps(value)
    )
