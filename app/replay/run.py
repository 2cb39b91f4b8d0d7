"""``kappa replay``: history files become a bounded stream on the pipeline's input topic.

A replay reads the files once, streaming them, never loading them whole, in two passes:

1. The check validates every row and produces nothing. It counts the bad rows and,
   unless the replay orders by time, folds kappa's lateness policy over the events in
   the order they would be produced (``app/replay/check.py``). If there are more bad
   rows than ``max_bad_rows`` accepts (none by default), the replay stops with
   ``TooManyBadRows``, having produced nothing. If events would be late, it warns.
   The rows it validated are kept in temporary files (``app/replay/checked.py``; with
   ``order_by_time``, the good ones in the external sort), so that the files are read,
   decompressed and decoded once.
2. The production sends each good row with its key set to the event's key (so Kafka's
   default partitioner puts it on the same partition as the key's live events), its
   event time as the record timestamp and the row as a JSON object as its value (a JSON
   Lines row: the line itself, ``app/replay/rows.py``). Bad rows go to the dead-letter
   topic, like bad live records, and are listed in the report at the end.

Before producing anything, a replay reads its ledger (``app/replay/guard.py``): a file
already replayed into the same topic is refused unless ``force``, and a replay id that
exists and is not complete resumes, skipping the rows it already wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.batch_sender import MAX_BATCH_BYTES
from agents.durations import UNITS_MS, format_duration
from agents.errors import ReplayError
from agents.events import EventParser
from agents.names import PipelineNames
from agents.outputs import dead_letter_headers
from agents.partition_columns import partitions_of
from agents.seam_record import SeamRecord
from agents.spec import PipelineSpec
from app.history import ExternalSort, HistoryError, HistoryFile, open_history
from app.history_formats import Format
from app.kafka_client import client_options, offset_ranges
from app.replay.check import BadRowLimit, Disorder
from app.replay.checked import CheckedRows
from app.replay.guard import Guard, guard
from app.replay.into_history import before_cut, check_history_replay, clear_unsealed_history, seal
from app.replay.ledger import Checkpoint, describe_file, ledger_key
from app.replay.resume import Sequencer, seq_headers
from app.replay.rows import ROWS_PER_BATCH, BadRow, GoodRows, read_rows
from app.replay.scratch import scratch_writes
from app.replay.sender import PartitionBatches
from app.settings import KappaSettings
from app.topics import ensure_topics

MAX_LISTED_BAD_ROWS = 20
# How often the progress bar and the control topic hear from a running replay.
PROGRESS_EVERY_S = 0.1
CONTROL_EVERY_S = 2.0
# How long a failed replay tries to say so on the control topic before it gives up.
FAILED_CONTROL_TIMEOUT_S = 5.0


@dataclass
class ReplayReport:
    """What a replay did. ``rows`` counts the rows read, good and bad (blank lines are no
    rows); ``would_be_late`` is None when the replay ordered the events by time."""

    replay_id: str
    files: list[str]
    produced: int = 0
    rows: int = 0
    bad_rows: int = 0
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    first_bad_rows: list[BadRow] = field(default_factory=list)
    would_be_late: int | None = None
    seconds: float = 0.0
    end_offsets: dict[int, int] = field(default_factory=dict)
    # A resumed replay: the rows (good and bad) it had written before and skipped now.
    resumed: bool = False
    skipped: int = 0
    # With a cut: good rows at or after it, left to the live topic (None without a cut).
    after_cut: int | None = None
    seam: SeamRecord | None = None  # with a cut: the record that sealed the history

    def note_bad(self, row: BadRow) -> None:
        self.rows += 1
        self.bad_rows += 1
        self.bad_by_reason[row.reason] += 1
        if len(self.first_bad_rows) < MAX_LISTED_BAD_ROWS:
            self.first_bad_rows.append(row)


class TooManyBadRows(ReplayError):
    """The check found more bad rows than the replay accepts; nothing was produced."""

    def __init__(self, report: ReplayReport, limit: BadRowLimit) -> None:
        super().__init__(
            f"{report.bad_rows:,} of {report.rows:,} rows are bad, more than "
            f"--max-bad-rows {limit.text} accepts; nothing was produced",
            hint="fix the rows listed above, or accept them with --max-bad-rows "
            "(a count such as 10, or a share such as 0.1%), and run the replay again",
        )
        self.report = report


@dataclass(frozen=True)
class ReplayOptions:
    files: list[Path]
    fmt: Format | None = None
    order_by_time: bool = False
    rate: float | None = None  # events per second; None is as fast as possible
    sort_chunk_rows: int = 200_000
    replay_id: str | None = None
    max_bad_rows: BadRowLimit = field(default_factory=BadRowLimit)
    dry_run: bool = False  # check only: produce nothing
    force: bool = False  # replay files the ledger says were replayed into the topic before
    allow_gap: bool = False  # with a cut: replay although the live input has a gap


class ProgressDisplay(Protocol):
    """What the progress bar is told; the CLI passes a rich implementation."""

    def start(self, total_bytes: int) -> None: ...
    def advance(self, bytes_done: int, events: int) -> None: ...
    def warn(self, message: str) -> None: ...
    def resuming(self, rows: int) -> None: ...
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
    # The key's and the time's input fields (a derived key part is not in the file).
    required = [n for n in spec.input_fields() if n in spec.key or n == spec.time_field]
    try:
        return [
            open_history(path, required_fields=required, fmt=options.fmt) for path in options.files
        ]
    except HistoryError as exc:
        raise ReplayError(
            str(exc),
            hint="nothing was produced; fix the file or the pipeline spec and run the replay again",
        ) from None


def late_warning(disorder: Disorder) -> str:
    """What the replay says before producing events that would be late."""
    share = disorder.late / disorder.events if disorder.events else 0.0
    return (
        f"{disorder.late:,} of {disorder.events:,} events ({share:.1%}) would be late: the "
        f"file is out of event-time order by up to {_about(disorder.max_behind_ms)} on a "
        f"partition, more than the pipeline's lateness of "
        f"{format_duration(disorder.lateness_ms)}. Late events count in the totals but in "
        "no window. To produce the events in time order, replay with --order-by-time "
        "(check a file first with --dry-run)."
    )


def _about(ms: int) -> str:
    unit, size = next((u, s) for u, s in UNITS_MS.items() if ms >= s or u == "ms")
    return f"{ms / size:.3g}{unit}"


async def replay(
    settings: KappaSettings,
    spec: PipelineSpec,
    options: ReplayOptions,
    progress: ProgressDisplay,
) -> ReplayReport:
    files = open_all(spec, options)
    names = PipelineNames(spec)
    report = ReplayReport(
        replay_id=options.replay_id
        or f"replay-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        files=[str(path) for path in options.files],
        after_cut=None if spec.history is None else 0,
    )
    run = _Replay(spec, options, progress, files, names, report)
    progress.start(run.total_bytes * (1 if options.dry_run else 2))
    try:
        if spec.history is not None:
            await check_history_replay(
                client_options(settings), names, spec.history, run.parser, options.allow_gap
            )
        if options.dry_run:
            await run.check(await _input_partitions(settings, names))
            report.seconds = time.monotonic() - run.started
        else:
            await _check_and_produce(settings, run)  # which times it
    except KafkaError as exc:
        produced = (
            "nothing was produced"
            if not report.produced
            else f"{report.produced:,} events had been handed to Kafka, and the input topic "
            "may hold some of them; the ledger knows which: resume with "
            f"`kappa replay --id {report.replay_id}` and the same files and options"
            if spec.history is None
            else f"{report.produced:,} events had been handed to Kafka; the history is not "
            "sealed, and a replay run again clears it and starts over"
        )
        raise ReplayError(
            f"Kafka failed: {exc}; {produced}",
            hint=f"check that Kafka answers at {settings.bootstrap} (`kappa kafka start` "
            "starts the local one; KAPPA_BOOTSTRAP_SERVERS names another)",
        ) from exc
    finally:
        progress.stop()
    return report


async def _check_and_produce(settings: KappaSettings, run: _Replay) -> None:
    partitions = await ensure_topics(settings, run.names)
    if run.spec.history is None:  # a version's history is written once: see the seam
        replay_options = run.options
        run.guard = await guard(
            settings,
            run.spec,
            replay_id=run.report.replay_id,
            files=[describe_file(path) for path in replay_options.files],
            fmt=replay_options.fmt,
            order_by_time=replay_options.order_by_time,
            partitions=partitions,
            force=replay_options.force,
        )
    tmp_dir = Path(tempfile.gettempdir())
    with scratch_writes(tmp_dir):
        checked = CheckedRows(tmp_dir)
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,  # dead letters and control records; good rows go in whole batches
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=MAX_BATCH_BYTES,
    )
    try:
        await producer.start()
    except BaseException:
        checked.close()
        raise
    run.producer = producer
    report = run.report
    options = client_options(settings)
    history = run.spec.history
    sort = (
        ExternalSort(chunk_rows=run.options.sort_chunk_rows, tmp_dir=tmp_dir)
        if run.options.order_by_time
        else None
    )
    try:
        await run.control("running")
        with scratch_writes(tmp_dir):
            await run.check(partitions, checked, sort)
        starts = None if history is None else await clear_unsealed_history(options, run.names)
        await run.produce(partitions, checked, sort)
        await producer.flush()
        report.seconds = time.monotonic() - run.started
        if history is not None and starts is not None:
            unsealed = SeamRecord(
                cut_ms=history.cut_ms,
                history_topic=run.names.history_topic,
                start_offsets=starts,
                end_offsets={},
                rows=report.produced,
                after_cut=report.after_cut or 0,
                files=report.files,
                replay_id=report.replay_id,
            )
            report.seam = await seal(producer, options, run.names, unsealed)
        await run.control("complete", wait=True)
    except BaseException as exc:
        report.seconds = time.monotonic() - run.started
        # Kafka may be what failed: the record of the failure is sent if it can be.
        with contextlib.suppress(KafkaError, TimeoutError):
            failed = run.control("failed", error=str(exc), wait=True)
            await asyncio.shield(asyncio.wait_for(failed, FAILED_CONTROL_TIMEOUT_S))
        raise
    finally:
        # The temporary files vanish when closed.
        checked.close()
        if sort is not None:
            sort.close()
        await producer.stop()


async def _input_partitions(settings: KappaSettings, names: PipelineNames) -> int:
    """The input topic's partitions, or how many a replay would create it with."""
    ranges = await offset_ranges(client_options(settings), [names.input_topic])
    created = names.spec.partitions or settings.partitions
    return len(ranges.get(names.input_topic, {})) or created


class _Replay:
    """One replay's two passes, and what it tells the progress bar and control topic."""

    def __init__(
        self,
        spec: PipelineSpec,
        options: ReplayOptions,
        progress: ProgressDisplay,
        files: list[HistoryFile],
        names: PipelineNames,
        report: ReplayReport,
    ) -> None:
        self.spec = spec
        self.options = options
        self.progress = progress
        self.files = files
        self.names = names
        self.report = report
        self.parser = EventParser(spec)
        self.producer: AIOKafkaProducer | None = None
        self.guard: Guard | None = None
        self.in_ledger = False
        self.sender: PartitionBatches | None = None
        self.dead_sequencer = Sequencer()
        self.total_bytes = sum(f.size_bytes for f in files)
        self.bytes_before = 0  # bytes of the files the check has done
        self.phase = "checking"
        self.started = time.monotonic()
        self._progress_at = self._control_at = self.started

    async def check(
        self,
        partitions: int,
        checked: CheckedRows | None = None,
        sort: ExternalSort | None = None,
    ) -> None:
        """The first pass: count the bad rows and the events that would be late. The rows
        are kept for the production in ``checked`` (the good ones in ``sort`` if given);
        a dry run keeps none."""
        report, options = self.report, self.options
        disorder = None if options.order_by_time else Disorder(self.spec.lateness_ms)
        for history in self.files:
            for item in read_rows(history, self.parser, with_values=checked is not None):
                done = self.bytes_before + history.bytes_read
                if isinstance(item, BadRow):
                    report.note_bad(item)
                    if checked is not None:
                        checked.add_bad(item)
                else:
                    report.rows += len(item.keys)
                    if disorder is not None:
                        disorder.add(partitions_of(item.keys, partitions), item.ts_ms)
                    if sort is not None:
                        sort.add(_packed(item))
                    elif checked is not None:
                        checked.add_good(item, done)
                await self._tick(done)
            self.bytes_before += history.size_bytes
        if disorder is not None:
            report.would_be_late = disorder.late
        if not options.max_bad_rows.allows(report.bad_rows, report.rows):
            raise TooManyBadRows(report, options.max_bad_rows)
        if disorder is not None and disorder.late:
            self.progress.warn(late_warning(disorder))

    async def produce(
        self, partitions: int, checked: CheckedRows, sort: ExternalSort | None
    ) -> None:
        """The second pass, over the rows the check kept: good rows to the input topic
        (from ``sort`` if given), bad rows to the dead-letter topic."""
        assert self.producer is not None
        self.phase = "producing"
        # The ledger hears of the replay once the check has passed (a replay stopped by
        # the check produced nothing), and before its first row, so that a resume finds it.
        self.in_ledger = self.guard is not None
        await self.control("running", wait=True)
        sender = self.sender = self._sender()
        if sender.sequencer.to_skip or self.dead_sequencer.to_skip:
            self.report.resumed = True
            self.progress.resuming(sender.sequencer.to_skip + self.dead_sequencer.to_skip)
        limiter = RateLimiter(self.options.rate)
        checked_bytes = self.bytes_before  # the progress bar counts both passes
        for row in checked.bad():
            await self._dead_letter(row, partitions)
            await self._tick(checked_bytes)
        if sort is not None:
            merged = sort.merged()
            while chunk := list(islice(merged, ROWS_PER_BATCH)):
                await self._send(sender, limiter, _unpacked(chunk), partitions)
                await self._tick(checked_bytes)
        else:
            for rows, done in checked.good():
                await self._send(sender, limiter, rows, partitions)
                await self._tick(checked_bytes + done)
        await sender.flush()
        # The offsets of the input that workers compare their progress with; a
        # history's progress is in the seam report instead (agents/history_seam.py).
        if self.spec.history is None:
            self.report.end_offsets = self._end_offsets()
        self.progress.advance(2 * checked_bytes, self.report.produced)
        self.report.skipped = sender.sequencer.total_skipped + self.dead_sequencer.total_skipped

    async def _send(
        self, sender: PartitionBatches, limiter: RateLimiter, rows: GoodRows, partitions: int
    ) -> None:
        if self.spec.history is not None:
            rows, after = before_cut(rows, self.spec.history.cut_ms)
            self.report.after_cut = (self.report.after_cut or 0) + after
            if not len(rows.keys):
                return
        assert rows.values is not None
        rate = self.options.rate
        # At a limited rate, records go out in slices of about 50 ms worth, each at once.
        step = len(rows.keys) if rate is None else max(1, int(rate / 20))
        for start in range(0, len(rows.keys), step):
            keys = rows.keys[start : start + step]
            self.report.produced += await sender.add(
                partitions_of(keys, partitions),
                keys,
                rows.values[start : start + step],
                rows.ts_ms[start : start + step],
            )
            if rate is not None:
                await sender.submit()
                await limiter.wait(self.report.produced)

    async def _dead_letter(self, row: BadRow, partitions: int) -> None:
        assert self.producer is not None
        key = f"{row.file}:{row.row_number}".encode()
        # The partition is chosen here, as Kafka's default would, to number the rows on it.
        partition = partitions_of(pa.array([key], pa.binary()), partitions)[0].as_py()
        seq = self.dead_sequencer.next(partition)
        if seq is None:
            return  # written before this replay was resumed
        await self.producer.send(
            self.names.dead_letter_topic,
            key=key,
            value=row.raw,
            partition=partition,
            headers=[
                *dead_letter_headers(
                    row.reason, row.detail, {"file": row.file, "row": row.row_number}
                ),
                *seq_headers(self.report.replay_id.encode(), seq),
            ],
        )

    def _sender(self) -> PartitionBatches:
        """The good rows' sender; on a resume, it skips the rows written before. With a
        cut, the events go to the version's own history, never to the input."""
        assert self.producer is not None
        written = self.guard.written if self.guard is not None else {}
        self.dead_sequencer = Sequencer(written.get(self.names.dead_letter_topic))
        topic = self.names.input_topic if self.spec.history is None else self.names.history_topic
        return PartitionBatches(
            self.producer, topic, self.report.replay_id, Sequencer(written.get(topic))
        )

    def _checkpoints(self) -> dict[str, Checkpoint]:
        """Per topic written to, offsets at or before what Kafka acknowledged, with the
        replay's rows before them: where a resume starts looking."""
        assert self.guard is not None
        out = {topic: dict(cp) for topic, cp in self.guard.written.items()}
        sender = self.sender
        if sender is not None:
            own = out.setdefault(self.names.input_topic, {})
            for p, end in sender.end_offsets.items():
                own[p] = (end, sender.sequencer.skipped(p) + sender.acknowledged[p])
        return out

    def _end_offsets(self) -> dict[int, int]:
        """Where the replay's records end in each partition of the input topic."""
        if self.guard is None:
            return {}
        return {
            p: end for p, (end, rows) in self._checkpoints()[self.names.input_topic].items() if rows
        }

    async def _tick(self, done_bytes: int) -> None:
        """Tell the progress bar (``done_bytes`` of both passes), and now and then the
        control topic, how far we are."""
        now = time.monotonic()
        if now - self._progress_at >= PROGRESS_EVERY_S:
            self._progress_at = now
            self.progress.advance(done_bytes, self.report.produced)
        if self.producer is not None and now - self._control_at >= CONTROL_EVERY_S:
            self._control_at = now
            await self.control("running")

    async def control(self, state: str, error: str | None = None, wait: bool = False) -> None:
        """A record of the replay's state on the control topic (``app/replay/tracker.py``);
        ``wait`` for Kafka's acknowledgement (the producer keeps the records in order)."""
        assert self.producer is not None
        report = self.report
        value: dict[str, Any] = {
            "state": state,
            "files": report.files,
            "produced": report.produced,
            "bad_rows": report.bad_rows,
            "seconds": round(report.seconds, 3),
            "end_offsets": {str(p): o for p, o in report.end_offsets.items()},
            "updated_at": datetime.now(UTC).isoformat(),
            "rows": report.rows,
            "would_be_late": report.would_be_late,
            "phase": self.phase,
            "resumed": report.resumed,
            "skipped": report.skipped,
        }
        if error is not None:
            value["error"] = error
        key = report.replay_id.encode()
        sent = [
            await self.producer.send(self.names.control_topic, key=key, value=orjson.dumps(value))
        ]
        if self.guard is not None and self.in_ledger:
            rows = {
                "good": report.rows - report.bad_rows,
                "bad": report.bad_rows,
                "skipped": report.skipped,
            }
            entry = self.guard.value(state, rows=rows, checkpoints=self._checkpoints(), error=error)
            ledger = self.guard.topic
            sent.append(
                await self.producer.send(ledger, key=ledger_key(report.replay_id), value=entry)
            )
        for future in sent:
            if wait:
                await future
            else:  # a progress report: the next one says the same and more
                future.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # seen, so asyncio does not warn that nobody looked


def _packed(rows: GoodRows) -> list[tuple[int, bytes]]:
    """(event time, key and value in one bytes object), which the external sort spills."""
    assert rows.values is not None
    return [
        (ts, len(key).to_bytes(4, "big") + key + value)
        for ts, key, value in zip(
            rows.ts_ms.to_pylist(),
            rows.keys.cast(pa.binary()).to_pylist(),
            rows.values.to_pylist(),
            strict=True,
        )
    ]


def _unpacked(pairs: list[tuple[int, bytes]]) -> GoodRows:
    times, keys, values = [], [], []
    for ts, payload in pairs:
        size = int.from_bytes(payload[:4], "big")
        times.append(ts)
        keys.append(payload[4 : 4 + size])
        values.append(payload[4 + size :])
    return GoodRows(
        pa.array(keys, pa.binary()), pa.array(times, pa.int64()), pa.array(values, pa.binary())
    )
