"""What a worker has done since it started, for status, metrics and the dashboard (the
topics hold the durable totals)."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RECENT = 20  # dead letters and late events kept for the dashboard


@dataclass
class StageTimes:
    """Seconds the worker spent in each stage of its batches since it started."""

    fetch: float = 0.0  # between batches: waiting for and taking the next fetch
    decode: float = 0.0  # decoding and validating records, gap reads included
    aggregate: float = 0.0  # applying events to the partitions' state, queueing outputs
    store: float = 0.0  # flushes: outputs and state to Kafka and RocksDB, and commits


@dataclass
class WorkerStats:
    """Counters since this worker started (the topics hold the durable totals)."""

    events: int = 0
    duplicates: int = 0
    # Events the pipeline's ``where`` left out: data it chose not to aggregate.
    filtered: int = 0
    late: int = 0
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    window_results: int = 0
    batches: int = 0
    flushes: int = 0
    gap_records_read: int = 0
    # The last input offset stored per partition (its effects are all in the tables).
    processed_offsets: dict[int, int] = field(default_factory=dict)
    # The last repartition topic offset stored per partition (the hop's aggregate lane).
    hop_offsets: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    # Epoch seconds: when the first batch with events began, and when the last one was
    # stored; together with processed_offsets (updated at the same moment) they time a run.
    first_batch_at: float | None = None
    last_batch_at: float | None = None
    stages: StageTimes = field(default_factory=StageTimes)
    # The latest dead letters and late events, newest last, for the dashboard.
    recent_dead_letters: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    recent_late: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    # The longest time the event loop was held at once (app/loop_probe.py), seconds.
    longest_loop_stall: float = 0.0
    # Told (seconds, records) once per batch (a fetch): the metrics' histograms.
    batch_observer: Callable[[float, int], None] | None = None

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_letters_by_reason.values())

    def stored(self, offsets: Mapping[int, int], hop: Mapping[int, int] | None = None) -> None:
        """Everything up to ``offsets`` per input partition, and up to ``hop`` per
        repartition topic partition, is stored (or sent on through the hop)."""
        if offsets or hop:
            self.last_batch_at = time.time()
            self.processed_offsets.update(offsets)
            self.hop_offsets.update(hop or {})

    def batch_done(self, seconds: float, records: int) -> None:
        """A fetch is applied (and stored, if a flush was due); none of its records were
        for this worker when ``records`` is 0."""
        if records and self.batch_observer is not None:
            self.batch_observer(seconds, records)

    def loop_stalled(self, seconds: float) -> None:
        """The event loop ran a timer ``seconds`` late: something held it that long."""
        self.longest_loop_stall = max(self.longest_loop_stall, seconds)

    def note_dead_letter(self, reason: str, detail: str, source: dict[str, Any]) -> None:
        self.dead_letters_by_reason[reason] += 1
        self.recent_dead_letters.append(
            {"at": time.time(), "reason": reason, "detail": detail, "source": source}
        )

    def note_late(self, key: str, event_ms: int, watermark_ms: int | None) -> None:
        self.late += 1
        self.recent_late.append(
            {"at": time.time(), "key": key, "event_ms": event_ms, "watermark_ms": watermark_ms}
        )
