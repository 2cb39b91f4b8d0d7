"""The pure core of kappa's aggregation: one partition's events in, state updates out.

Nothing here touches Kafka or Faust. ``PartitionProcessor`` reads and writes through
the ``tables.partition_state.PartitionState`` protocol, which the worker implements with
RocksDB-backed Faust tables and the unit tests with dicts. The records it keeps are in
``tables.records``; the lateness, closing and expiry policy in ``tables.watermark``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agents.events import Event
from tables.aggregates import Agg
from tables.aggregation_config import AggregationConfig, SharedResults
from tables.partition_state import PartitionState, StoredCounts, result_bytes
from tables.records import (
    KeyRecord,
    OpenWindow,
    PartitionProgress,
    SourceFence,
    WindowResult,
    bucket_id,
    parse_bucket_id,
    parse_session_entry,
    session_entry,
)
from tables.watermark import expired, expiry_ms, is_late, watermark_of
from tables.windows import PanedKind, Sessions, WindowKind

# The memory one deletion of a closed result takes until the store (its key in the
# closed table's pending writes): an expiry step stops at the closing's byte budget.
DELETION_BYTES = 200

# An event of a batch: (source input partition, offset, event, the watermark it is
# behind if it is late, else None).
Sourced = tuple[int, int, Event, int | None]


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event behind the watermark: counted in its key's totals, kept out of windows."""

    offset: int
    event: Event
    watermark: int  # the watermark it was behind at its arrival
    source: int  # its input partition (another than the state's for a hop record)


@dataclass(slots=True)
class BatchOutcome:
    """What a batch did, for the I/O side to act on."""

    applied: int = 0
    duplicates: int = 0
    late: list[LateEvent] = field(default_factory=list)
    closed: list[WindowResult] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """What one event did, for the I/O side to act on."""

    duplicate: bool = False
    late: bool = False
    watermark: int | None = None
    closed: list[WindowResult] = field(default_factory=list)


class PartitionProcessor:
    """Applies one partition's events, in offset order, to that partition's state."""

    def __init__(
        self,
        config: AggregationConfig,
        state: PartitionState,
        partition: int,
        close_bytes: int | None = None,
        close_seconds: float | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.partition = partition
        self.progress = state.get_progress() or PartitionProgress()
        # A closing step stops once the state holds this many bytes of unstored changes
        # (``close_step``); None closes all at once.
        self._close_bytes = close_bytes
        # And once it has taken this long (the event loop waits for it); None: no bound.
        self._close_seconds = close_seconds
        # About the unstored bytes one closed pane adds (measured at each range closed):
        # how many panes' keys the next range of a closing takes.
        self._pane_bytes = 2048
        self._pane_seconds = 2e-5
        # The same, measured per session a closing step closes.
        self._session_bytes = 2048
        self._session_seconds = 5e-5
        self._result_bytes = 0
        # The watermark whose windows are not all closed yet. A stored state may hold a
        # closing that a crash cut short between two steps: the first step finds what is
        # left (nothing, mostly, at the cost of one empty range read per window).
        self._closing_to: int | None = self.watermark
        self._stamped = config.stamped  # first/last: each event's stamp is needed
        # Asked for each key of a batch: built once.
        self._paned = config.paned
        self._sessions = config.sessions
        # For the metrics: the stored keys and open windows, counted beside the event
        # loop on a snapshot of the store taken now, plus the keys and windows that came
        # and went since. Keys are never deleted (totals are kept for ever). Open windows
        # stay in the store: the windows a watermark closes are one range of it.
        self._stored_counts = state.count_stored()
        self._new_keys = 0
        self._window_change = 0
        # Closed, retained window instances, a heap by expiry (sessions close one bucket
        # per end, tens of thousands of them): rebuilt from the stored key lists of
        # closed windows, which are written with the closed results.
        self._closed_ids: set[str] = set(state.iter_buckets())
        self._closed: list[tuple[int, str]] = [(self._expiry_ms(b), b) for b in self._closed_ids]
        heapq.heapify(self._closed)

    @property
    def watermark(self) -> int | None:
        return watermark_of(self.progress.max_event_ms, self.config.lateness_ms)

    @property
    def key_count(self) -> int | None:
        """The partition's keys; None until its stored ones are counted."""
        counted = self._counted()
        return None if counted is None else counted.keys + self._new_keys

    def open_window_count(self) -> int | None:
        """Stored panes of open windows, summed over keys: one per key and tumbling
        window, one per key and pane of hopping windows; None until they are counted."""
        counted = self._counted()
        return None if counted is None else counted.open_windows + self._window_change

    def _counted(self) -> StoredCounts | None:
        counts = self._stored_counts
        if not counts.done() or counts.exception() is not None:
            return None
        return counts.result()

    def done(self, offset: int) -> bool:
        """True for a source record at or before the checkpoint: already fully applied."""
        return offset <= self.progress.offset

    def checkpoint(self, offset: int) -> None:
        """Every record of the own input partition up to ``offset`` has been applied (or
        sent on through the hop); the caller stores this last."""
        self.progress.offset = max(self.progress.offset, offset)
        self.progress.idle = False  # it received a record
        self.state.put_progress(self.progress)

    def hop_checkpoint(self, offset: int) -> None:
        """Every record of the repartition topic's partition up to ``offset`` has been
        applied; the caller stores this last."""
        self.progress.hop_offset = max(self.progress.hop_offset, offset)
        self.progress.idle = False  # it received a record
        self.state.put_progress(self.progress)

    def process(self, event: Event, offset: int) -> Outcome:
        """Apply one event: ``apply`` of a batch of one."""
        applied = self.apply([(offset, event)])
        return Outcome(
            duplicate=applied.duplicates == 1,
            late=bool(applied.late),
            watermark=self.watermark,
            closed=applied.closed,
        )

    def apply(
        self, events: Sequence[tuple[int, Event]], sources: Sequence[int] | None = None
    ) -> BatchOutcome:
        """Apply a batch of the partition's events, given in offset order with offsets
        after the checkpoint, with the result of applying them one by one.

        ``sources`` gives each event's source input partition, for the repartition hop's
        events; without it every event comes from the partition's own input partition.
        Each key's and window's fence (``SourceFence``) admits an event iff its offset is
        past the fence of its source, so a record is applied once whichever lane, run or
        worker brought it.

        Each event's lateness is judged against the watermark as it stood just before
        it (the running maximum of the batch's event times so far), exactly as one by
        one. Events are then grouped by key: each key's record is read once, fenced once
        (an event at or before its fence was applied before a crash), and each of its
        totals and windows takes the group's values in one exact fold. Windows close,
        and expire, once at the end: a window that the batch closes holds every event
        of the batch that was not late, which is what closing it mid-batch would hold,
        since any later event inside it is late.
        """
        outcome = BatchOutcome()
        if not events:
            return outcome
        lateness = self.config.lateness_ms
        progress = self.progress
        high = progress.max_event_ms
        own = self.partition
        # Per key: (source, offset, event, the watermark it is behind if late, else None).
        groups: dict[str, list[Sourced]] = {}
        for index, (offset, event) in enumerate(events):
            source = own if sources is None else sources[index]
            ts = event.ts_ms
            if high is None or ts > high:
                high = ts  # a new maximum: not late (an event never makes itself late)
                groups.setdefault(event.key, []).append((source, offset, event, None))
            else:
                watermark = watermark_of(high, lateness)
                behind = watermark if is_late(ts, watermark) else None
                groups.setdefault(event.key, []).append((source, offset, event, behind))
        direct = sources is None
        for key, items in groups.items():
            self._apply_key(key, items, outcome, direct)
        assert high is not None
        if high != progress.max_event_ms:
            outcome.closed = self._move_clock(high)
        return outcome

    def advance_idle(self, max_event_ms: int) -> BatchOutcome:
        """An idle advance (``tables.watermark.idle_advance``): the partition's clock moves
        to ``max_event_ms``, the active partitions' lowest, and its watermark closes and
        expires windows as if an event had come at that time. Marked ``idle`` until the
        partition next receives a record, so that no other partition takes this clock
        for an active one's."""
        outcome = BatchOutcome()
        current = self.progress.max_event_ms
        if current is not None and max_event_ms <= current:
            return outcome  # the clock only moves forward
        self.progress.idle = True
        outcome.closed = self._move_clock(max_event_ms)
        return outcome

    def _move_clock(self, high: int) -> list[WindowResult]:
        """The partition's maximum event time becomes ``high``: the first step of closing
        the windows its watermark closes (``close_step``)."""
        progress = self.progress
        progress.max_event_ms = high
        self._closing_to = high - self.config.lateness_ms
        closed = self.close_step()
        # Written only when the watermark moves: the maximum is all it must keep.
        self.state.put_progress(progress)
        return closed

    @property
    def closing(self) -> bool:
        """Whether windows the watermark has passed are left to close (``close_step``)."""
        return self._closing_to is not None

    def close_step(self) -> list[WindowResult]:
        """Close the windows the watermark has passed, oldest first, until the state holds
        ``close_bytes`` of unstored changes; then, once all are closed, expire what the
        retention lets go. The caller stores the state between steps, so the memory a
        closing takes is bounded by that budget, not by the windows one watermark move
        closes (a day of hopping windows over a million keys). Each step leaves the
        stores as a smaller move of the watermark would: the events they hold are all
        applied, and a window not closed yet holds no event that is not late."""
        watermark = self._closing_to
        if watermark is None:
            return []
        closed: list[WindowResult] = []
        deadline = None if self._close_seconds is None else time.monotonic() + self._close_seconds
        if self._close(watermark, closed, deadline) and self._expire(watermark, deadline):
            self._closing_to = None
        return closed

    def _apply_key(
        self, key: str, items: list[Sourced], outcome: BatchOutcome, direct: bool
    ) -> None:
        config = self.config
        partition = self.partition
        record = self.state.get_key(key)
        if record is None:
            record = KeyRecord(fence=SourceFence(), totals=config.empty())
            self._new_keys += 1
        fence = record.fence
        fresh = fence.take_own(items) if direct else fence.take_new(partition, items)
        if len(fresh) != len(items):
            outcome.duplicates += len(items) - len(fresh)
            if not fresh:
                return
            items = fresh
        outcome.applied += len(items)
        record.totals.add_rows(
            [event.values for _, _, event, _ in items],
            [(event.ts_ms, offset) for _, offset, event, _ in items] if self._stamped else None,
        )
        # Per pane (one per window an event is in): its events (ascending per source).
        by_pane: dict[tuple[int, int], list[Sourced]] = {}
        windows = self._paned
        on_time: list[Sourced] = []
        for item in items:
            source, offset, event, behind = item
            if behind is not None:
                outcome.late.append(LateEvent(offset, event, behind, source))
                continue
            on_time.append(item)
            for index, window in enumerate(windows):
                pane = window.pane(event.ts_ms)
                if pane is not None:
                    by_pane.setdefault((index, pane), []).append(item)
        for (index, start), rows in by_pane.items():
            name = windows[index].name
            open_window = self.state.get_window(name, start, key)
            if open_window is None:
                open_window = OpenWindow(fence=SourceFence(), agg=config.empty())
                self._window_change += 1
            self._add_rows(open_window, rows, direct)
            self.state.put_window(name, start, key, open_window)
        if on_time:
            for sessions in self._sessions:
                self._apply_sessions(key, record, sessions, on_time, direct)
        self.state.put_key(key, record)

    def _add_rows(self, open_window: OpenWindow, rows: list[Sourced], direct: bool) -> None:
        """Add ``rows`` to a window's record, but those it holds already: rows stored
        before a crash that kept the window's record, not its key's."""
        fence = open_window.fence
        rows = fence.take_own(rows) if direct else fence.take_new(self.partition, rows)
        if rows:
            open_window.agg.add_rows(
                [event.values for _, _, event, _ in rows],
                [(event.ts_ms, offset) for _, offset, event, _ in rows] if self._stamped else None,
            )

    def _apply_sessions(
        self, key: str, record: KeyRecord, window: Sessions, rows: list[Sourced], direct: bool
    ) -> None:
        """Join a key's on-time ``rows`` to its open sessions of ``window`` (listed in its
        record), merging those an event bridges. A changed session is stored under its
        new end; the records it replaces are deleted (with the closed windows, after the
        key's record, which says which records are current)."""
        state = self.state
        name = window.name
        spans = record.sessions.get(name, [])
        merges = window.plan(spans, [event.ts_ms for _, _, event, _ in rows])
        for merge in merges:
            if not merge.changed:
                continue
            parts: list[OpenWindow] = []
            for index in merge.parts:
                end = window.end(spans[index][1])
                part = state.get_window(name, end, key)
                if part is not None:
                    parts.append(part)
                state.delete_window(name, end, key)
            self._window_change += 1 - len(parts)
            session = _merged(parts) if parts else OpenWindow(SourceFence(), self.config.empty())
            self._add_rows(session, [rows[index] for index in merge.rows], direct)
            state.put_window(name, window.end(merge.last), key, session)
        if merges:
            record.sessions[name] = [(merge.first, merge.last) for merge in merges]

    def _close(self, watermark: int, closed: list[WindowResult], deadline: float | None) -> bool:
        """Close windows that end at or before ``watermark`` and have not closed yet,
        into ``closed``, until the budget (bytes, and time) is spent; whether none is
        left. Sessions close first, as many at a time as the budget has room for by the
        bytes and the time the last step took per session (``_close_sessions``).

        Each paned window definition closes by spans of consecutive starts, from the
        first start that holds a pane, each span cut into ranges of keys
        (``_close_span``): 1 start, then as many as the budget has room for by the bytes
        the last span took per start (at most twice as many: a window's first starts
        hold fewer panes), and as many keys as it has room for by the bytes and the
        time per pane.
        A few small windows still close in one range of the store; a big closing passes
        the budget by about one range's windows."""
        for sessions in self.config.sessions:
            if not self._close_sessions(sessions, watermark, closed, deadline):
                return False
        results = SharedResults(self.config)
        budget = self._close_bytes
        state = self.state
        for window in self.config.paned:
            last = window.last_closed_start(watermark)
            span = 1
            while True:
                # A closing cut short between two ranges of keys goes on first: its
                # windows all end at or before a watermark the stored panes have passed.
                cursor = state.get_close_cursor(window.name)
                # Stored with the closed results, so that a window whose first panes were
                # deleted after it closed is never closed again (from the rest) after a
                # crash.
                after = state.get_closed_through(window.name)
                if cursor is None and (
                    after is not None and not window.starts_between(after + 1, last + 1)
                ):
                    break
                if budget is None:
                    to = cursor[0] if cursor else last
                    self._close_span(window, after, to, cursor, None, results, closed)
                    continue
                held = self._closing_bytes(closed)
                began = time.monotonic()
                if closed and _spent(budget, held, deadline, began):
                    return False
                limit = _room(budget, held, deadline, began, self._pane_bytes, self._pane_seconds)
                to = cursor[0] if cursor else self._span_end(window, after, last, span)
                panes = self._close_span(window, after, to, cursor, limit, results, closed)
                took = self._closing_bytes(closed) - held
                if panes:
                    self._pane_bytes = max(1, took // panes)
                    self._pane_seconds = max(1e-7, (time.monotonic() - began) / panes)
                room = span * (budget - held - took) // took if took > 0 else span * 2
                span = max(1, min(span * 2, room))
        return True

    def _closing_bytes(self, closed: list[WindowResult]) -> int:
        """The unstored changes' bytes, and the step's results not queued yet (their
        size measured on the step's first)."""
        if closed and not self._result_bytes:
            self._result_bytes = result_bytes(closed[0])
        return self.state.held_bytes() + len(closed) * self._result_bytes

    def _span_end(self, window: PanedKind, after: int | None, last: int, span: int) -> int:
        """The last start of a span of ``span`` starts that close next: from the first
        start after ``after`` whose window holds a stored pane (or ``last``, if none does)."""
        read_to = window.pane_bounds(last)[0]
        first = self.state.first_pane(window.name, read_to)
        if first is None:
            return last
        starts = [s for s in window.starts(first) if after is None or s > after]
        if not starts:
            return last
        following = window.starts_between(starts[0], last + 1)
        return following[min(span, len(following)) - 1] if following else last

    def _close_span(
        self,
        window: PanedKind,
        after: int | None,
        last: int,
        cursor: tuple[int, str] | None,
        limit: int | None,
        results: SharedResults,
        closed: list[WindowResult],
    ) -> int:
        """Close ``window``'s instances starting in ``(after, last]``, merged from their
        panes, for the keys after the stored ``cursor``'s, about ``limit`` panes' worth (all,
        for None); the panes read. The panes no open window uses are taken out (deleted
        at the next store). Until the span's last key, the cursor is stored with the
        results instead of the closed bound."""
        state = self.state
        read_to, expire_to = window.pane_bounds(last)
        after_key = None if cursor is None else cursor[1]
        panes, last_key = state.take_panes(
            window.name, read_to, expire_to, after_key, None if limit is None else max(limit, 1)
        )
        if last_key is not None:
            state.put_close_cursor(window.name, last, last_key)
        else:
            if cursor is not None:
                state.put_close_cursor(window.name, last, None)
            # The last start itself, not the bound: equal however the events were batched.
            state.put_closed_through(window.name, (window.starts(last) or [last])[-1])
        self._window_change -= sum(len(keys) for pane, keys in panes.items() if pane <= expire_to)
        due = _merge_panes(window, panes, after, last)
        for start in sorted(due):
            found = due[start]
            end = window.end(start)
            for key in sorted(found):
                result = results.final(key, window, start, end, found[key])
                state.put_closed(result)
                closed.append(result)
            self._list_closed(bucket_id(window, start), found)
        return sum(map(len, panes.values()))

    def _close_sessions(
        self, window: Sessions, watermark: int, closed: list[WindowResult], deadline: float | None
    ) -> bool:
        """Close the sessions that end at or before ``watermark`` (one range of the store),
        into ``closed``, until the budget (bytes, and time) is spent; whether none is
        left. Each taking of sessions is closed whole (``_close_taken``)."""
        budget = self._close_bytes
        stepped = False
        while True:
            limit = None
            held, began = 0, time.monotonic()
            if budget is not None:
                held = self._closing_bytes(closed)
                if stepped and _spent(budget, held, deadline, began):
                    return False
                limit = max(
                    1,
                    _room(
                        budget, held, deadline, began, self._session_bytes, self._session_seconds
                    ),
                )
            by_end, more = self.state.take_sessions(window.name, watermark, limit)
            self._close_taken(window, by_end, closed)
            taken = sum(map(len, by_end.values()))
            if taken and budget is not None:
                self._session_bytes = max(1, (self._closing_bytes(closed) - held) // taken)
                self._session_seconds = max(1e-7, (time.monotonic() - began) / taken)
            if not more:
                return True
            stepped = True

    def _close_taken(
        self, window: Sessions, by_end: dict[int, dict[str, OpenWindow]], closed: list[WindowResult]
    ) -> None:
        """Close the sessions taken out of the store, by end and key. A stored record that
        its key's record does not list is left over from a batch a crash cut short (the
        key's record is stored after the windows): deleted, never published. A session
        already closed before such a crash is not published again."""
        state = self.state
        name = window.name
        self._window_change -= sum(len(keys) for keys in by_end.values())
        for end in sorted(by_end):
            found = by_end[end]
            entries: dict[str, None] = {}
            for key in sorted(found):
                record = state.get_key(key)
                spans = [] if record is None else record.sessions.get(name, [])
                span = next((span for span in spans if window.end(span[1]) == end), None)
                if record is None or span is None:
                    continue
                spans.remove(span)
                if not spans:
                    del record.sessions[name]
                state.put_key(key, record)
                start = span[0]
                entries[session_entry(key, start)] = None
                if state.get_closed(key, name, start) is None:
                    result = self.config.result(key, window, start, end, found[key].agg, True)
                    state.put_closed(result)
                    closed.append(result)
            if entries:
                self._list_closed(bucket_id(window, end), entries)

    def _list_closed(self, bucket: str, entries: Iterable[str]) -> None:
        """Keep the closed instances' ``entries`` (keys; a closed session's key and start)
        until the bucket expires. Closing again after a crash adds to those stored the
        first time."""
        self.state.add_bucket_keys(bucket, sorted(entries))
        if bucket not in self._closed_ids:
            self._closed_ids.add(bucket)
            heapq.heappush(self._closed, (self._expiry_ms(bucket), bucket))

    def _bucket_end(self, bucket: str) -> tuple[WindowKind, int]:
        """A closed bucket's window, and the end of its instances."""
        name, start = parse_bucket_id(bucket)
        window = self.config.window(name)
        if isinstance(window, PanedKind):
            return window, window.end(start)
        return window, start  # a session bucket is named by its sessions' end

    def _expiry_ms(self, bucket: str) -> int:
        return expiry_ms(self._bucket_end(bucket)[1], self.config.retention_ms)

    def _expire(self, watermark: int, deadline: float | None) -> bool:
        """Drop closed windows whose retention has passed, oldest first (the heap's), a
        chunk of a window instance's keys at a time, until the step's budget (its bytes,
        its time) is spent; whether none is left. A window instance closed for a million
        keys expires over many steps, each stored before the next."""
        buckets = self._closed
        retention = self.config.retention_ms
        budget = self._close_bytes
        state = self.state
        deletions = 0
        while buckets:
            window, end = self._bucket_end(buckets[0][1])
            if not expired(end, retention, watermark):
                break
            bucket = buckets[0][1]
            while (entries := state.take_bucket_chunk(bucket)) is not None:
                for entry in entries:
                    if isinstance(window, Sessions):
                        key, start = parse_session_entry(entry)
                    else:
                        key, start = entry, parse_bucket_id(bucket)[1]
                    state.delete_closed(key, window.name, start)
                deletions += len(entries)
                held = state.held_bytes() + deletions * DELETION_BYTES
                if (budget is not None and held >= budget) or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    return False
            heapq.heappop(buckets)
            self._closed_ids.discard(bucket)
        return True


def _spent(budget: int, held: int, deadline: float | None, now: float) -> bool:
    """Whether a closing step has used its budget of bytes or its time."""
    return held >= budget or (deadline is not None and now >= deadline)


def _room(
    budget: int, held: int, deadline: float | None, now: float, unit_bytes: int, unit_s: float
) -> int:
    """How many more units (panes, sessions) a closing step has room for, by the bytes
    and the time the last step took per unit."""
    room = (budget - held) // unit_bytes
    if deadline is not None:
        room = min(room, int((deadline - now) / unit_s))
    return room


def _merged(parts: list[OpenWindow]) -> OpenWindow:
    """One record of the events of ``parts`` (a session's records that an event merged)."""
    if len(parts) == 1:
        return parts[0]
    fence = parts[0].fence
    for part in parts[1:]:
        fence = fence.union(part.fence)
    return OpenWindow(fence=fence, agg=Agg.merged([part.agg for part in parts]))


def _merge_panes(
    window: PanedKind, panes: dict[int, dict[str, OpenWindow]], after: int | None, last: int
) -> dict[int, dict[str, Agg]]:
    """Per start in ``(after, last]`` and key, the window's aggregate merged from the
    key's ``panes`` (``Agg.merged``: a window of one pane is that pane's own aggregate).
    Each set of panes is merged once: a key's windows that hold the same panes (all 24
    of a 1d/1h window, for a key with one event) share the one aggregate."""
    parts: dict[int, dict[str, list[Agg]]] = {}
    for pane in sorted(panes):
        starts = [s for s in window.starts(pane) if s <= last and (after is None or s > after)]
        for key, record in panes[pane].items():
            for start in starts:
                parts.setdefault(start, {}).setdefault(key, []).append(record.agg)
    # By the ids of the panes' aggregates, which are all alive here, so each its own.
    merged: dict[tuple[int, ...], Agg] = {}
    due: dict[int, dict[str, Agg]] = {}
    for start, keys in parts.items():
        due[start] = found = {}
        for key, aggs in keys.items():
            ids = tuple(map(id, aggs))
            agg = merged.get(ids)
            if agg is None:
                agg = merged[ids] = Agg.merged(aggs)
            found[key] = agg
    return due
