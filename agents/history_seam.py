"""A version with a cut: its own history first, then the live input, with an exact seam.

Per input partition p, the worker applies the history topic's partition p up to the
end offset H_p that the seam record sealed, then the live input's partition p from
its start, skipping the live events before the cut (the history holds those). Both
are applied in one order, on one checkpoint, by **virtual offsets**: a history record
keeps its offset (0 <= o < H_p), a live record at offset o becomes H_p + o. Every
guarantee of the batch loop (the gap check, the per-key fences, checkpoints stored
last, a restart resuming at the checkpoint) then holds across the seam unchanged, and
no live record of p is applied before p's history is complete, so the watermark never
runs ahead of the history. The consumer group commits live offsets only (H_p + o maps
back to o), so a restart in the history reads the live partition from its start again.

Until the seam record exists, the worker applies nothing and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from agents.events import Event
from agents.names import PipelineNames
from agents.seam_record import LiveStart, SeamRecord
from tables.times import ms_to_iso

log = logging.getLogger(__name__)

WAITING = "waiting for history"
HISTORY = "history"
LIVE = "live"


def to_virtual(base: int, live_offset: int) -> int:
    """A live offset on the partition's one scale, after its ``base`` history records."""
    return base + live_offset


def to_input(base: int, virtual: int) -> int:
    """The last live offset a virtual offset has applied; -1 while still in the history."""
    return virtual - base if virtual >= base else -1


def phase(sealed: bool, base: int, applied: int) -> str:
    """A partition's phase, from its last applied virtual offset."""
    if not sealed:
        return WAITING
    return LIVE if applied >= base - 1 else HISTORY


class HistorySeam:
    """The worker's side of its version's cut: the seam record, the offset mapping, and
    the seam report (counters since this worker started, offsets from its checkpoints)."""

    def __init__(self, cut_ms: int, names: PipelineNames) -> None:
        self.cut_ms = cut_ms
        self.names = names
        self.record: SeamRecord | None = None
        self._sealed = asyncio.Event()
        self._told_waiting = False
        self.history_applied: Counter[int] = Counter()  # history rows applied, this run
        self.live_skipped: Counter[int] = Counter()  # live events before the cut, this run
        self.first_live: dict[int, int] = {}  # the first live offset read, per partition
        self.gaps: dict[int, str] = {}

    # -- the seam record ----------------------------------------------------------------

    def seal(self, record: SeamRecord) -> None:
        """The control topic's seam record arrived (``app.replay.tracker``)."""
        if record.cut_ms != self.cut_ms:
            log.error(
                "the seam record's cut %s is not the spec's cut %s: the spec changed after "
                "its history was replayed; this worker applies nothing. Put the cut back, "
                "or start a new version for the new cut",
                ms_to_iso(record.cut_ms),
                ms_to_iso(self.cut_ms),
            )
            return
        if self.record is None:
            log.info(
                "history sealed: %d rows before the cut %s in %s",
                record.rows,
                ms_to_iso(record.cut_ms),
                record.history_topic,
            )
        self.record = record
        self._sealed.set()

    @property
    def sealed(self) -> bool:
        return self.record is not None

    async def wait_sealed(self, timeout_s: float) -> bool:
        """Whether the history is sealed, waiting up to ``timeout_s`` for it."""
        if self.sealed:
            return True
        if not self._told_waiting:
            self._told_waiting = True
            log.warning(
                "waiting for history: %s has no seam record yet; nothing is applied until "
                "`kappa replay --pipeline <this spec> FILE...` has written the history before "
                "the cut %s",
                self.names.control_topic,
                ms_to_iso(self.cut_ms),
            )
        try:
            async with asyncio.timeout(timeout_s):
                await self._sealed.wait()
        except TimeoutError:
            return False
        return True

    # -- offsets ------------------------------------------------------------------------

    def base(self, partition: int) -> int:
        """H_p: the partition's sealed history end, where its live offsets begin."""
        assert self.record is not None, "the history is not sealed"
        return self.record.end_offsets.get(partition, 0)

    def input_offsets(self, virtual: dict[int, int]) -> dict[int, int]:
        """The last live offsets applied, for the partitions that are live."""
        live = {p: to_input(self.base(p), v) for p, v in virtual.items()}
        return {p: o for p, o in live.items() if o >= 0}

    # -- events -------------------------------------------------------------------------

    def admit(
        self, partition: int, live: bool, base: int, events: list[tuple[int, Event]]
    ) -> list[tuple[int, Event]]:
        """The events to apply, at their virtual offsets: history as it is, live events
        from the cut on (the ones before it are counted, not dead-lettered)."""
        if not live:
            self.history_applied[partition] += len(events)
            return events
        admitted = [
            (base + offset, event) for offset, event in events if event.ts_ms >= self.cut_ms
        ]
        self.live_skipped[partition] += len(events) - len(admitted)
        return admitted

    def started_live(
        self, partition: int, records: Sequence[Any], event_ms: Callable[[bytes | None], int | None]
    ) -> None:
        """The first live records of a partition whose history is complete: where its live
        input starts, and whether retention has left a gap after the cut."""
        first = records[0].offset
        self.first_live[partition] = first
        event = next((t for r in records if (t := event_ms(r.value)) is not None), None)
        start = LiveStart(partition, first, event)
        if start.gap(self.cut_ms):
            self.gaps[partition] = start.explain(self.names.input_topic, self.cut_ms)
            log.warning("GAP AFTER THE CUT: %s", self.gaps[partition])

    # -- the report ---------------------------------------------------------------------

    def report(self, partitions: Sequence[int], applied: Callable[[int], int]) -> dict[str, Any]:
        """The seam, for /api/status and ``kappa versions``: ``applied`` gives a
        partition's last applied virtual offset (-1 for none)."""
        record = self.record
        per_partition = {}
        for p in partitions:
            done = applied(p)
            base = 0 if record is None else self.base(p)
            start = 0 if record is None else record.start_offsets.get(p, 0)
            per_partition[str(p)] = {
                "state": phase(record is not None, base, done),
                "history_end_offset": None if record is None else base,
                "history_rows_taken": max(0, min(done + 1, base) - start),
                "history_rows_applied_since_start": self.history_applied[p],
                "live_skipped_before_cut_since_start": self.live_skipped[p],
                "first_live_offset": self.first_live.get(p),
                "last_live_offset": None if record is None else to_input(base, done),
                "gap": p in self.gaps,
            }
        return {
            "cut": ms_to_iso(self.cut_ms),
            "cut_ms": self.cut_ms,
            "sealed": record is not None,
            "history_topic": self.names.history_topic,
            "seam_record": None if record is None else record.to_json(),
            "partitions": per_partition,
            "rows_taken_from_history": sum(v["history_rows_taken"] for v in per_partition.values()),
            "live_skipped_before_cut": sum(self.live_skipped.values()),
            "gap": bool(self.gaps),
            "gap_explanation": [self.gaps[p] for p in sorted(self.gaps)],
        }
