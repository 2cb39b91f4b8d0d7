"""``kappa verify`` reads what a version consumes: its input topic's retained records, or,
for a version with a history seam, its history topic up to the sealed end and then the
live records at or after the cut.

Records are decoded with the pipeline's input contract (``EventParser``), so bad records
are left out exactly as the worker leaves them out; a record off its key's partition is
an event (the worker applies it through the repartition hop), except for a version with
a cut, which has no hop and leaves it out as misrouted; what is kept goes to DuckDB as
Arrow columns (``app.verify.batch``). For a spec with ``[[derive]]`` or ``where``, the
parser only types the input fields, and DuckDB computes the derived fields, the filter
and the key (``app.verify.derived``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import TopicPartition

from agents.events import EventParser, Rejected
from agents.gap_reader import GapReader
from agents.partition_columns import partitions_of
from agents.seam_record import SeamRecord
from agents.spec import PipelineSpec
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings
from app.verify.batch import connect, event_schema
from app.verify.derived import FILTERED, derived_events, input_names, input_schema

# (step, done so far, to do in all or None when unknown): what ``kappa verify`` shows
OnProgress = Callable[[str, int, int | None], None]


@dataclass
class InputRead:
    """The events read, as columns, and what was left out and why."""

    spec: PipelineSpec
    columns: dict[str, list[Any]] = field(default_factory=dict)
    records: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    misrouted: int = 0
    filtered: int = 0
    before_cut: int = 0
    history_records: int = 0
    live_ends: dict[int, int] = field(default_factory=dict)  # read up to (exclusive)
    seconds: float = 0.0

    # Rows DuckDB left out (app.verify.derived), by reason, as of the last ``table``.
    derived_bad: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not self.columns:
            self.columns = {name: [] for name in self._schema().names}

    def _schema(self) -> pa.Schema:
        if self.spec.expressions is not None:
            return input_schema(self.spec)
        return event_schema(len(self.spec.values))

    @property
    def left_out(self) -> dict[str, int]:
        """Records that are no events, by reason (as the worker's dead letters)."""
        return dict(sorted((Counter(self.bad) + self.derived_bad).items()))

    def table(self, partitions: int) -> pa.Table:
        """The good events; for a version with a cut (no repartition hop), misrouted ones
        (counted) left out, as the worker does."""
        table = pa.Table.from_pydict(self.columns, schema=self._schema())
        if self.spec.expressions is not None:
            table, outcomes = derived_events(connect(), table, self.spec)
            self.filtered = outcomes.pop(FILTERED, 0)
            self.derived_bad = outcomes
        if not len(table) or self.spec.history is None:
            return table
        where = pc.equal(partitions_of(table["k"].combine_chunks(), partitions), table["p"])
        kept = table.filter(where)
        self.misrouted = len(table) - len(kept)
        return kept


async def read_topic(settings: KappaSettings, topic: str) -> list[Any]:
    """Every record now in ``topic``, partition by partition; none if it does not exist."""
    ranges = (await offset_ranges(client_options(settings), [topic])).get(topic, {})
    reader = GapReader(client_options(settings))
    records: list[Any] = []
    try:
        for p, (first, end) in sorted(ranges.items()):
            if first < end:
                async for fetched in reader.read(topic, p, first, end):
                    records.extend(fetched)
    finally:
        await reader.stop()
    return records


def history_base(seam: SeamRecord | None, partition: int) -> int:
    """Where ``partition``'s live offsets start on the worker's virtual scale."""
    return 0 if seam is None else seam.end_offsets.get(partition, 0)


def quiet(step: str, done: int, total: int | None) -> None:
    """An ``OnProgress`` that shows nothing."""
    pass


class InputReader:
    """Reads a version's input into an ``InputRead``, in steps: ``read_to`` the end
    offsets of the moment, then ``read_to`` again for what arrived meanwhile."""

    def __init__(
        self,
        settings: KappaSettings,
        spec: PipelineSpec,
        seam: SeamRecord | None,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.seam = seam
        self.parser = EventParser(spec)
        self.input_names = input_names(spec) if spec.expressions is not None else []
        self.read = InputRead(spec)
        self.on_progress = on_progress or quiet

    async def read_to(self, live_ends: dict[int, int], live_begins: dict[int, int]) -> None:
        """Read the live input up to ``live_ends`` (and the sealed history first, once)."""
        started = time.monotonic()
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        if not self.read.live_ends and self.seam is not None:
            # From where this version's history starts: records before it are left from
            # an interrupted replay (agents/seam_record.py).
            for p, end in self.seam.end_offsets.items():
                start = self.seam.start_offsets.get(p, 0)
                ranges[TopicPartition(self.seam.history_topic, p)] = (start, end)
        topic = self.spec.input_topic
        for p, end in live_ends.items():
            start = self.read.live_ends.get(p, live_begins.get(p, 0))
            if start < end:
                ranges[TopicPartition(topic, p)] = (start, end)
        total = sum(end - start for start, end in ranges.values())
        done = 0
        step = "reading the input" if self.read.records == 0 else "reading new input records"
        if total:
            # GapReader starts at the earliest offset still there: a history topic whose
            # first records are gone starts where it can.
            reader = GapReader(
                {**client_options(self.settings), "max_partition_fetch_bytes": 4 * 1024 * 1024}
            )
            try:
                for tp, (start, end) in ranges.items():
                    history = tp.topic != topic
                    async for fetched in reader.read(tp.topic, tp.partition, start, end):
                        for record in fetched:
                            self._take(record, history)
                            done += 1
                            if done % 5000 == 0:
                                self.on_progress(step, done, total)
            finally:
                await reader.stop()
            self.on_progress(step, done, total)
        self.read.live_ends.update(live_ends)
        self.read.seconds += time.monotonic() - started

    def _take(self, record: Any, history: bool) -> None:
        read = self.read
        read.records += 1
        try:
            if self.parser.derives:
                row = self.parser.input_row(record.value)
                ts_ms = row[self.spec.time_field]
            else:
                event = self.parser.parse_bytes(record.value)
                ts_ms = event.ts_ms
        except Rejected as bad:
            read.bad[bad.reason] = read.bad.get(bad.reason, 0) + 1
            return
        # The worker's virtual offsets (agents/history_seam.py), which its fences are
        # in: a history record keeps its offset, a live one comes after the history.
        if history:
            read.history_records += 1
            seq = record.offset
        else:
            if self.seam is not None and ts_ms < self.seam.cut_ms:
                read.before_cut += 1
                return
            seq = history_base(self.seam, record.partition) + record.offset
        columns = read.columns
        columns["p"].append(record.partition)
        columns["seq"].append(seq)
        columns["t"].append(ts_ms)
        if self.parser.derives:
            for i, name in enumerate(self.input_names):
                columns[f"i{i}"].append(row[name])
            return
        columns["k"].append(event.key)
        for i, value in enumerate(event.values):
            columns[f"v{i}"].append(value)
