"""One partition's state on Faust tables (RocksDB stores with changelog topics).

The processor reads and writes a partition through the ``PartitionState`` protocol;
``TablePartitionState`` implements it on the ``keys``, ``windows``, ``closed`` and ``meta``
tables (``tables.records`` has their key layout), and the unit tests with dicts. Within a
batch every write is held back (``TableBuffer``), and reads see it; ``store_batch`` then
writes each table's changes to the partition's RocksDB in one write batch and to its
changelog as one message per changed key: a key touched N times in a batch is written once.
Only the records a batch touches, and a cache of recently used ones bounded in bytes, are
decoded in memory; the rest stay in RocksDB.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import orjson

from tables.faust_store import (
    ChangelogReader,
    ChangelogSender,
    Encoded,
    TableBuffer,
    decode,
    encode,
)
from tables.records import (
    SEP,
    ClosingProgress,
    KeyRecord,
    OpenWindow,
    PartitionProgress,
    WindowResult,
    bucket_chunk_key,
    bucket_chunks_prefix,
    bucket_keys_key,
    bucket_keys_prefix,
    close_cursor_key,
    closed_key,
    closed_prefix,
    closed_through_key,
    parse_window_key,
    progress_key,
    window_key,
    window_prefix,
)

R = TypeVar("R", KeyRecord, OpenWindow)

log = logging.getLogger(__name__)

# The most JSON bytes one chunk of a closed window instance's keys holds. Each chunk is
# one changelog record, which must stay below Kafka's message.max.bytes (1 MB by
# default) however many keys closed; and a closing in steps adds a chunk per step rather
# than rewriting one list of every key closed so far (quadratic in the keys).
BUCKET_CHUNK_BYTES = 256 * 1024

# Counts of stored keys and windows run here, one at a time, beside the event loop.
COUNTING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kappa-count")


class StoredCounts(NamedTuple):
    keys: int
    open_windows: int


class PartitionState(Protocol):
    """Storage of one partition, as the processor sees it."""

    def get_key(self, key: str) -> KeyRecord | None: ...
    def put_key(self, key: str, record: KeyRecord) -> None: ...
    def get_window(self, window: str, start_ms: int, key: str) -> OpenWindow | None: ...
    def put_window(self, window: str, start_ms: int, key: str, record: OpenWindow) -> None: ...
    def delete_window(self, window: str, start_ms: int, key: str) -> None: ...
    def take_panes(
        self,
        window: str,
        read_to: int,
        expire_to: int,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> tuple[dict[int, dict[str, OpenWindow]], str | None]: ...
    def take_sessions(
        self, window: str, watermark: int, limit: int | None
    ) -> tuple[dict[int, dict[str, OpenWindow]], bool]: ...
    def first_pane(self, window: str, read_to: int) -> int | None: ...
    def get_close_cursor(self, window: str) -> tuple[int, str] | None: ...
    def put_close_cursor(self, window: str, last_start_ms: int, key: str | None) -> None: ...
    def held_bytes(self) -> int: ...
    def get_closed_through(self, window: str) -> int | None: ...
    def put_closed_through(self, window: str, last_start_ms: int) -> None: ...
    def get_progress(self) -> PartitionProgress | None: ...
    def put_progress(self, progress: PartitionProgress) -> None: ...
    def put_closed(self, result: WindowResult) -> None: ...
    def get_closed(self, key: str, window: str, start_ms: int) -> dict[str, Any] | None: ...
    def delete_closed(self, key: str, window: str, start_ms: int) -> None: ...
    def add_bucket_keys(self, bucket: str, keys: list[str]) -> None: ...
    def take_bucket_chunk(self, bucket: str) -> list[str] | None: ...
    def count_stored(self) -> Future[StoredCounts]: ...
    def iter_buckets(self) -> Iterator[str]: ...


# What one held change takes besides its record: its key string, and its slots in the
# records dict and the dirty set.
HELD_KEY_BYTES = 160


def deep_bytes(value: Any) -> int:
    """The bytes a value of lists, tuples, dicts and scalars takes in Python, counting
    each part as its own (shared parts count once per place)."""
    if isinstance(value, list | tuple):
        return sys.getsizeof(value) + sum(deep_bytes(item) for item in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(
            deep_bytes(key) + deep_bytes(item) for key, item in value.items()
        )
    return 0 if value is None else sys.getsizeof(value)


def decoded_bytes(record: KeyRecord | OpenWindow) -> int:
    """The bytes a decoded record takes in Python, measured on its state's containers
    (the decoded record is as many floats, ints and lists)."""
    return sys.getsizeof(record) + deep_bytes(record.to_state()) + HELD_KEY_BYTES


def result_bytes(result: WindowResult) -> int:
    """The bytes a closed window's result takes in Python until it is queued: the
    object, its key, its result and its encoding."""
    return (
        sys.getsizeof(result)
        + sys.getsizeof(result.key)
        + deep_bytes(result.result)
        + sys.getsizeof(result.encoded)
    )


class DecodedRecords(Generic[R]):
    """One table's decoded records: the batch's changes until they are written, then up
    to ``cache_bytes`` of the most recently used, so that a hot record is not read and decoded
    again every batch. Dropped with their state whenever the partition's store may have
    changed without them (a failed batch, a revoked partition)."""

    def __init__(
        self, buffer: TableBuffer, from_state: Callable[[Any], R], cache_bytes: int
    ) -> None:
        self.buffer = buffer
        self._from_state: Callable[[Any], R] = from_state
        self._cache_bytes = cache_bytes
        self._records: dict[str, R] = {}  # least recently used first
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()
        # Keys read since the last write and found in no store: a record created after
        # that read and deleted before the next write was never stored.
        self._absent: set[str] = set()
        # The size of one decoded record, measured on the first one read or changed: a
        # pipeline's records all have the same shape.
        self.record_bytes = 0

    def get(self, key: str, *, may_be_stored: bool = True) -> R | None:
        """The record of ``key``: from memory, else from the store's buffer and RocksDB,
        which ``may_be_stored=False`` skips for a record known to be in no store (one
        created since the last write, or none)."""
        if key in self.deleted:
            return None
        records = self._records
        record = records.pop(key, None)
        if record is None:
            state = self.buffer.get(key) if may_be_stored else None
            if state is None:
                self._absent.add(key)
                return None
            record = self._from_state(state)
            if not self.record_bytes:
                self.record_bytes = decoded_bytes(record)
        records[key] = record  # now the most recently used
        return record

    def put(self, key: str, record: R) -> None:
        self._records.pop(key, None)
        self._records[key] = record
        self.dirty.add(key)
        self.deleted.discard(key)
        if not self.record_bytes:
            self.record_bytes = decoded_bytes(record)

    def decoded(self) -> int:
        """The records decoded in memory: the held changes and the cache."""
        return len(self._records)

    def held_bytes(self) -> int:
        """About the bytes the changes held until the next store take."""
        return (len(self.dirty) + len(self.deleted)) * self.record_bytes

    def delete(self, key: str) -> None:
        """Deleted at the next store, after its last value, if it changed, is written."""
        self.deleted.add(key)

    def write(self, deletes: TableBuffer | None = None) -> None:
        """Hand the changes to the buffers: values to ``self.buffer``, deletions to
        ``deletes`` (stored in a later step); then trim the cache.

        A record created and deleted since the last write (a window that opened and
        closed between two stores, the usual case on many keys) was never stored: it is
        neither written nor deleted, which saves two changelog messages and two RocksDB
        writes. A crash leaves the same state as if it had been written: after the key
        records (step 2 of ``TablePartitionState.steps``) their fences keep its events
        out; before them, its result and the bound of the closed windows are stored
        (step 1), so the restart rebuilds the record from the same events, never closes
        it again, and the next advance deletes it, as it deletes a written one."""
        records = self._records
        never_stored = self.deleted & self._absent
        self._absent.clear()
        for key in self.dirty:
            if key not in never_stored:
                self.buffer.put(key, records[key].to_state())
        self.dirty.clear()
        if self.deleted:
            for key in self.deleted:
                records.pop(key, None)
                if key not in never_stored:
                    assert deletes is not None, "deleted records need a step to delete them in"
                    deletes.delete(key)
            self.deleted.clear()
        cached = self._cache_bytes // self.record_bytes if self.record_bytes else 0
        for key in list(itertools.islice(records, max(0, len(records) - cached))):
            del records[key]


class TablePartitionState:
    """One partition's view of the ``keys``, ``windows``, ``closed`` and ``meta`` tables."""

    def __init__(
        self, keys: Any, windows: Any, closed: Any, meta: Any, partition: int, cache_bytes: int
    ) -> None:
        self.partition = partition
        self.keys = DecodedRecords(TableBuffer(keys, partition), KeyRecord.from_state, cache_bytes)
        self.windows = DecodedRecords(
            TableBuffer(windows, partition), OpenWindow.from_state, cache_bytes
        )
        # Closed windows' records are deleted in a step of their own (see ``steps``).
        self.window_deletes = TableBuffer(windows, partition)
        # Per window: the starts and keys of the panes changed since the last store, and
        # the start up to which every pane is taken out (the store's range below it
        # holds only deleted records until the next store, or none).
        self._changed_windows: dict[str, dict[int, set[str]]] = {}
        # Per window: the newest start (a session's: end) that a record of it in the
        # store (RocksDB, or writes pending or staged) may have, read from RocksDB once,
        # then raised at each write by the newest start put since (``_put_newest``). A
        # newer record can only be in memory, created since the last write: on many keys
        # almost every event opens its window, and its read skips RocksDB. Only this
        # state writes the partition's store while it lives (Faust's recovery runs before
        # it is built, and a rebalance or a failed batch drops it).
        self._stored_newest: dict[str, int | None] = {}
        self._put_newest: dict[str, int] = {}
        self._closed_to: dict[str, int] = {}
        # Per window closing in steps: its span's bounds and the starts of its panes.
        self._closing_starts: dict[str, tuple[tuple[str, str], set[int]]] = {}
        # Per session window closing in steps: the last stored session taken out.
        self._sessions_from: dict[str, str] = {}
        # Per closed window instance listed since this state was built: the index of its
        # next chunk of keys; and per instance listed, the chunks this state wrote since
        # its last store (only this state writes them while it lives).
        self._next_chunk: dict[str, int] = {}
        self._held_chunks: dict[str, set[str]] = {}
        self.closed = TableBuffer(closed, partition)
        self.meta = TableBuffer(meta, partition)
        # An expired instance's listing is deleted in a later step than its results (see
        # ``steps``); until then, the chunks taken out of it since the last store.
        self.listing_deletes = TableBuffer(meta, partition)
        self._taken_chunks: set[str] = set()
        # The partition's progress record lives in ``meta`` too, but is written last.
        self.progress = TableBuffer(meta, partition)

    def steps(self) -> list[list[TableBuffer]]:
        """The batch's writes, in an order that makes any prefix of them safe to crash
        after (each record's fence makes replaying the batch a no-op for what is stored):

        1. closed windows, the keys of each closed window, and the changed open windows,
           those that close in this batch too (so a window's record is whole wherever
           a crash leaves it, and closing it again gives the same result), except those
           created since the last store (``DecodedRecords.write``);
        2. the key records;
        3. the deletion of the closed windows' records: after 2, so that a replayed
           event of a closed window is fenced by its key record and never starts the
           window anew; and the deletion of expired instances' listings: after their
           results' deletions (1), so that a crash between the two leaves the listing,
           and the expiry after the restart deletes the results again, rather than
           results no listing names, which would never expire;
        4. the progress record: watermark and checkpoint (never ahead of 1 to 3).

        A step with nothing to write is skipped by ``store_batch``.
        """
        self.windows.write(self.window_deletes)
        self._changed_windows.clear()
        for window, start in self._put_newest.items():
            stored = self._newest_stored(window)
            if stored is None or start > stored:
                self._stored_newest[window] = start
        self._put_newest.clear()
        self.keys.write()
        # In RocksDB once stored (a store that fails drops this state).
        self._held_chunks.clear()
        self._taken_chunks.clear()
        return [
            [self.closed, self.meta, self.windows.buffer],
            [self.keys.buffer],
            [self.window_deletes, self.listing_deletes],
            [self.progress],
        ]

    def held_changes(self) -> int:
        """Changes held until the next store: changed keys and windows, closed and
        expired windows."""
        windows = self.windows
        return (
            len(self.keys.dirty)
            + len(windows.dirty)
            + len(windows.deleted)
            + len(self.closed.pending)
            + len(self.meta.pending)
            + len(self.listing_deletes.pending)
        )

    def held_bytes(self) -> int:
        """About the bytes the changes held until the next store take in memory: the
        decoded records, and the closed windows' encoded results."""
        return (
            self.keys.held_bytes()
            + self.windows.held_bytes()
            + self.closed.pending_bytes
            + len(self.closed.pending) * HELD_KEY_BYTES
        )

    def get_key(self, key: str) -> KeyRecord | None:
        return self.keys.get(key)

    def put_key(self, key: str, record: KeyRecord) -> None:
        self.keys.put(key, record)

    def keys_after(self, after: str | None, limit: int) -> list[tuple[bytes, str]]:
        """Up to ``limit`` of the partition's keys after ``after`` (from the first, for
        None), each with its JSON text, in the store's order: by that text's bytes. The
        stored ones are one seek and a scan of at most ``limit``, merged with the keys
        held in memory (applied, not stored yet), so a page costs the same on a million
        keys as on a hundred. Key records are never deleted: a stored key is a key."""
        bound = None if after is None else encode(after)
        keys = self.keys
        held = sorted(
            raw
            for raw in map(encode, {*keys.dirty, *keys.buffer.held_keys()})
            if bound is None or raw > bound
        )
        stored = itertools.islice(keys.buffer.keys_after(bound), limit)
        merged = (raw for raw, _ in itertools.groupby(heapq.merge(held, stored)))
        return [(raw, decode(raw)) for raw in itertools.islice(merged, limit)]

    def get_window(self, window: str, start_ms: int, key: str) -> OpenWindow | None:
        newest = self._newest_stored(window)
        if newest is None or start_ms > newest:
            return self.windows.get(window_key(window, start_ms, key), may_be_stored=False)
        return self.windows.get(window_key(window, start_ms, key))

    def _newest_stored(self, window: str) -> int | None:
        """The newest start a stored record of ``window`` may have; None if none is."""
        try:
            return self._stored_newest[window]
        except KeyError:
            last = self.windows.buffer.last_key(f"{window}{SEP}", f"{window}{SEP}~")
            newest = self._stored_newest[window] = (
                None if last is None else parse_window_key(last)[1]
            )
            return newest

    def put_window(self, window: str, start_ms: int, key: str, record: OpenWindow) -> None:
        self.windows.put(window_key(window, start_ms, key), record)
        put = self._put_newest.get(window)
        if put is None or start_ms > put:
            self._put_newest[window] = start_ms
        # Not setdefault: its new dict and set would be built on every call.
        changed = self._changed_windows.get(window)
        if changed is None:
            changed = self._changed_windows[window] = {}
        keys = changed.get(start_ms)
        if keys is None:
            keys = changed[start_ms] = set()
        keys.add(key)

    def delete_window(self, window: str, start_ms: int, key: str) -> None:
        """Deleted at the next store, with the closed windows (a session that moved)."""
        self.windows.delete(window_key(window, start_ms, key))
        self._changed_windows.get(window, {}).get(start_ms, set()).discard(key)

    def take_panes(
        self,
        window: str,
        read_to: int,
        expire_to: int,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> tuple[dict[int, dict[str, OpenWindow]], str | None]:
        """The stored panes of ``window`` starting at or before ``read_to``, by start and
        key; those starting at or before ``expire_to`` (at most ``read_to``) are taken
        out: deleted at the next store. With the batch's changes read over them.

        Without a ``limit``, every such pane: one range of the window-major store, from
        where the last taking out stopped. With one, the panes of the keys after
        ``after_key``, a key's panes all together, until about ``limit`` panes are
        taken; with the last key taken, or None when no key is left."""
        closed_to = self._closed_to.get(window)
        lo = self._untaken_from(window)
        hi = window_prefix(window, read_to + 1)
        windows = self.windows
        changed = self._changed_windows.get(window, {})
        starts = [start for start in changed if start <= read_to]
        if limit is None or (
            after_key is None
            and sum(1 for _ in itertools.islice(windows.buffer.range_keys(lo, hi), limit + 1))
            + sum(len(changed[start]) for start in starts)
            <= limit
        ):
            by_start = self._take_all(window, lo, hi, starts, expire_to)
            last_key = None
        else:
            by_start, last_key = self._take_keys(window, lo, hi, starts, after_key, limit)
            for start, keys in by_start.items():
                changed_keys = changed.get(start)
                if start <= expire_to:
                    for key in keys:
                        windows.delete(window_key(window, start, key))
                        if changed_keys is not None:
                            changed_keys.discard(key)
        if last_key is None:
            self._closing_starts.pop(window, None)
            # A pane kept for later windows stays changed: a later closing reads it too.
            for start in starts:
                if start <= expire_to:
                    changed.pop(start, None)
            if closed_to is None or expire_to > closed_to:
                self._closed_to[window] = expire_to
        return by_start, last_key

    def take_sessions(
        self, window: str, watermark: int, limit: int | None
    ) -> tuple[dict[int, dict[str, OpenWindow]], bool]:
        """The sessions of ``window`` that end at or before ``watermark``, by end and key,
        taken out (deleted at the next store): all of them, or about ``limit`` (those the
        batch changed, then stored ones in the store's order, from where the last step
        stopped); and whether any is left. Sessions are stored under their end, each
        key's its own: a closing's sessions are one range of the store, cut anywhere."""
        windows = self.windows
        by_end: dict[int, dict[str, OpenWindow]] = {}
        taken = 0
        changed = self._changed_windows.get(window, {})
        for end in [end for end in changed if end <= watermark]:
            for key in changed.pop(end):
                by_end.setdefault(end, {})[key] = self._changed_pane(window, end, key)
                windows.delete(window_key(window, end, key))
                taken += 1
        lo = self._sessions_from.get(window) or self._untaken_from(window)
        for stored, state in windows.buffer.range_items(lo, window_prefix(window, watermark + 1)):
            if stored in windows.deleted:
                continue  # taken already, or changed in the batch (taken above)
            if limit is not None and taken >= limit:
                self._sessions_from[window] = stored
                return by_end, True
            _, end, key = parse_window_key(stored)
            by_end.setdefault(end, {})[key] = OpenWindow.from_state(state)
            windows.delete(stored)
            taken += 1
        self._sessions_from.pop(window, None)
        closed_to = self._closed_to.get(window)
        if closed_to is None or watermark > closed_to:
            self._closed_to[window] = watermark
        return by_end, False

    def _take_all(
        self, window: str, lo: str, hi: str, starts: list[int], expire_to: int
    ) -> dict[int, dict[str, OpenWindow]]:
        """Every pane in [``lo``, ``hi``), stored or changed in the batch (those of the
        changed ``starts``), by start and key; those up to ``expire_to`` deleted."""
        windows = self.windows
        by_start: dict[int, dict[str, OpenWindow]] = {}
        for stored, state in windows.buffer.range_items(lo, hi):
            if stored in windows.deleted:
                continue
            _, start, key = parse_window_key(stored)
            by_start.setdefault(start, {})[key] = OpenWindow.from_state(state)
        changed = self._changed_windows.get(window, {})
        for start in starts:
            for key in changed[start]:
                by_start.setdefault(start, {})[key] = self._changed_pane(window, start, key)
        for start, keys in by_start.items():
            if start <= expire_to:
                for key in keys:
                    windows.delete(window_key(window, start, key))
        return by_start

    def _take_keys(
        self,
        window: str,
        lo: str,
        hi: str,
        starts: list[int],
        after_key: str | None,
        limit: int,
    ) -> tuple[dict[int, dict[str, OpenWindow]], str | None]:
        """The panes in [``lo``, ``hi``) of the keys after ``after_key``, by start and key,
        taken in the store's key order (a key's JSON text), a key's panes together,
        until ``limit`` panes are taken at a key's end: one seek per stored pane start,
        and their ranges merged. With the last key taken, or None when no key is left."""
        windows = self.windows
        changed = self._changed_windows.get(window, {})
        pane_starts = self._span_starts(window, lo, hi)
        # Kept with the span's (in place): the batch's changed panes are in RocksDB after
        # the next store, where the later steps read them.
        pane_starts.update(starts)

        # Keys compare as the store orders them: by their JSON text. The range from
        # ``after_key`` holds keys that extend it with a character sorting before the
        # closing quote, taken already: those at or before it are skipped.
        after = b"" if after_key is None else orjson.dumps(after_key)

        def stored(start: int) -> Iterator[tuple[bytes, int, str, OpenWindow | None]]:
            begin = window_key(window, start, after_key or "")
            mine = changed.get(start, set())
            for stored_key, state in windows.buffer.range_items(
                begin, window_prefix(window, start + 1)
            ):
                if stored_key in windows.deleted:
                    continue
                key = parse_window_key(stored_key)[2]
                text = orjson.dumps(key)
                if text > after and key not in mine:
                    yield text, start, key, OpenWindow.from_state(state)

        def fresh(start: int) -> Iterator[tuple[bytes, int, str, OpenWindow | None]]:
            for text, key in sorted((orjson.dumps(key), key) for key in changed[start]):
                if text > after:
                    yield text, start, key, None

        # Items compare by their key's text, then (one pane per start) by their start.
        merged = heapq.merge(
            *(stored(start) for start in sorted(pane_starts)),
            *(fresh(start) for start in starts),
        )
        by_start: dict[int, dict[str, OpenWindow]] = {}
        last: bytes | None = None
        last_key: str | None = None
        for taken, (text, start, key, record) in enumerate(merged):
            if text != last:
                if taken >= limit:
                    return by_start, last_key
                last, last_key = text, key
            panes = by_start.get(start)
            if panes is None:
                panes = by_start[start] = {}
            panes[key] = record or self._changed_pane(window, start, key)
        return by_start, None

    def _span_starts(self, window: str, lo: str, hi: str) -> set[int]:
        """The starts of ``window``'s panes in [``lo``, ``hi``), read from RocksDB (one
        seek per start) at the closing's first step, then kept with the starts changed
        since: every later step reads the same span, and the same seeks would skip the
        deletions of every pane the earlier steps took (RocksDB keeps them until it
        compacts), quadratic in the keys. No pane is written in a span while it closes:
        its events are behind the watermark, late."""
        found = self._closing_starts.get(window)
        if found is not None and found[0] == (lo, hi):
            return found[1]
        starts: set[int] = set()
        probe = lo
        while (first := next(self.windows.buffer.range_keys(probe, hi), None)) is not None:
            start = parse_window_key(first)[1]
            starts.add(start)
            probe = window_prefix(window, start + 1)
        self._closing_starts[window] = ((lo, hi), starts)
        return starts

    def _changed_pane(self, window: str, start: int, key: str) -> OpenWindow:
        record = self.windows.get(window_key(window, start, key))
        assert record is not None, "a pane changed in the batch is decoded"
        return record

    def _untaken_from(self, window: str) -> str:
        """Where ``window``'s panes not taken out yet start in the window-major store."""
        closed_to = self._closed_to.get(window)
        return f"{window}{SEP}" if closed_to is None else window_prefix(window, closed_to + 1)

    def first_pane(self, window: str, read_to: int) -> int | None:
        """The start of the first pane of ``window`` not taken out yet, if one starts at
        or before ``read_to``: one seek of the store, with the batch's changes."""
        closed_to = self._closed_to.get(window)
        lo = self._untaken_from(window)
        windows = self.windows
        first = None
        for stored in windows.buffer.range_keys(lo, window_prefix(window, read_to + 1)):
            if stored not in windows.deleted:
                first = parse_window_key(stored)[1]
                break
        changed = [
            start
            for start, keys in self._changed_windows.get(window, {}).items()
            if keys and start <= read_to and (closed_to is None or start > closed_to)
        ]
        return min([*changed, *([] if first is None else [first])], default=None)

    def get_close_cursor(self, window: str) -> tuple[int, str] | None:
        cursor = self.meta.get(close_cursor_key(self.partition, window))
        return None if cursor is None else (int(cursor[0]), str(cursor[1]))

    def put_close_cursor(self, window: str, last_start_ms: int, key: str | None) -> None:
        """Where a closing cut into key ranges stands (None: it is not)."""
        name = close_cursor_key(self.partition, window)
        if key is None:
            self.meta.delete(name)
        else:
            self.meta.put(name, [last_start_ms, key])

    def get_closed_through(self, window: str) -> int | None:
        last: int | None = self.meta.get(closed_through_key(self.partition, window))
        return last

    def put_closed_through(self, window: str, last_start_ms: int) -> None:
        self.meta.put(closed_through_key(self.partition, window), last_start_ms)

    def closing_progress(self, window: str) -> ClosingProgress:
        return ClosingProgress(self.get_closed_through(window), self.get_close_cursor(window))

    def get_progress(self) -> PartitionProgress | None:
        state = self.progress.get(progress_key(self.partition))
        return None if state is None else PartitionProgress.from_state(state)

    def put_progress(self, progress: PartitionProgress) -> None:
        self.progress.put(progress_key(self.partition), progress.to_state())

    def put_closed(self, result: WindowResult) -> None:
        self.closed.put(
            closed_key(result.key, result.window, result.start_ms), Encoded(result.encoded)
        )

    def delete_closed(self, key: str, window: str, start_ms: int) -> None:
        self.closed.delete(closed_key(key, window, start_ms))

    def get_closed(self, key: str, window: str, start_ms: int) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.closed.get(closed_key(key, window, start_ms))
        return result

    def closed_of(self, key: str, window: str) -> list[dict[str, Any]]:
        """The key's retained closed results of ``window`` (stored or held), for listing
        its sessions: one range of the key-major ``closed`` table."""
        prefix = closed_prefix(key, window)
        # Starts are decimal ('-' and digits), which all sort before ':'.
        stored = (name for name, _ in self.closed.range_items(prefix, f"{prefix}:"))
        held = (name for name in self.closed.held_keys() if name.startswith(prefix))
        results = (self.closed.get(name) for name in {*stored, *held})
        return [result for result in results if result is not None]

    def add_bucket_keys(self, bucket: str, keys: list[str]) -> None:
        """List ``keys`` for a closed window instance, after those listed already: in new
        chunks of at most ``BUCKET_CHUNK_BYTES``."""
        index = self._next_chunk.get(bucket)
        if index is None:
            marker = bucket_keys_key(self.partition, bucket)
            if self.meta.get(marker) is None:
                self.meta.put(marker, [])
                index = 0  # a new listing (sessions make one per end: no read for it)
            else:
                chunks = self._bucket_chunks(bucket)
                index = int(chunks[-1].rsplit("/", 1)[1]) + 1 if chunks else 0
        chunk: list[str] = []
        size = 0
        for key in keys:
            length = len(orjson.dumps(key)) + 1
            if chunk and size + length > BUCKET_CHUNK_BYTES:
                self._put_chunk(bucket, index, chunk)
                index, chunk, size = index + 1, [], 0
            chunk.append(key)
            size += length
        if chunk:
            self._put_chunk(bucket, index, chunk)
            index += 1
        self._next_chunk[bucket] = index

    def _put_chunk(self, bucket: str, index: int, keys: list[str]) -> None:
        name = bucket_chunk_key(self.partition, bucket, index)
        self.meta.put(name, keys)
        self._held_chunks.setdefault(bucket, set()).add(name)

    def take_bucket_chunk(self, bucket: str) -> list[str] | None:
        """The next keys listed for a closed window instance, taken out of the listing
        (deleted at the next store, in the step after their results' deletions); None
        when none is left, and then the instance's own record is deleted too. A bucket an
        earlier kappa listed in its own record gives that list first. A key listed again
        by a closing repeated after a crash may come twice."""
        marker = bucket_keys_key(self.partition, bucket)
        taken = self._taken_chunks
        own = self.meta.get(marker)
        if own and marker not in taken:
            taken.add(marker)
            self.listing_deletes.put(marker, [])
            return list(own)
        for chunk in self._bucket_chunks(bucket):
            if chunk in taken:
                continue
            keys = self.meta.get(chunk)
            if keys is not None:
                taken.add(chunk)
                self.listing_deletes.delete(chunk)
                return list(keys)
        self.listing_deletes.delete(marker)
        self._next_chunk.pop(bucket, None)
        self._held_chunks.pop(bucket, None)
        return None

    def _bucket_chunks(self, bucket: str) -> list[str]:
        """The ``meta`` keys of a closed window instance's chunks, stored or written by
        this state, in order: one seek of the store, never a scan of every
        held write (a batch closing sessions lists thousands of buckets)."""
        prefix = bucket_chunks_prefix(self.partition, bucket)
        stored = self.meta.range_keys(prefix, _past(prefix))
        return sorted({*stored, *self._held_chunks.get(bucket, ())})

    def iter_buckets(self) -> Iterator[str]:
        prefix = bucket_keys_prefix(self.partition)
        # Their keys alone, one range of the store (each value is a bucket's marker).
        for key in self.meta.range_keys(prefix, _past(prefix)):
            yield key[len(prefix) :]

    def count_stored(self, executor: Executor = COUNTING) -> Future[StoredCounts]:
        """The keys and open windows of this partition stored now, counted by
        ``executor`` on a snapshot of its RocksDB stores taken now. A restarted partition
        may hold millions (2.5 million keys take 0.6 s to count), which the event loop
        must not wait for."""
        keys, windows = self.keys.buffer.counter(), self.windows.buffer.counter()
        counts = executor.submit(lambda: StoredCounts(keys(), windows()))
        counts.add_done_callback(self._counted)
        return counts

    def _counted(self, counts: Future[StoredCounts]) -> None:
        if (error := counts.exception()) is not None:
            log.error(
                "partition %d: its stored keys could not be counted (%s); its key and "
                "window counts stay unknown until a restart",
                self.partition,
                error,
            )


def _past(prefix: str) -> str:
    """The first key after every key that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class ClaimedAway(Exception):
    """Another worker claimed a state partition this worker was storing."""


async def store_batch(
    states: Sequence[TablePartitionState],
    sender: ChangelogSender,
    reader: ChangelogReader | None = None,
) -> list[TableBuffer]:
    """Store a batch's state changes, step by step (see ``TablePartitionState.steps``).

    Each step goes, for every partition at once, to the changelogs as one record batch
    per partition and, once Kafka has acknowledged it, to RocksDB in one write batch
    per store; then the next step starts. Returns the buffers whose changelogs got
    another worker's records in between, for ``faust_store.rewrite_foreign``.

    With a ``reader`` of the changelogs, a step whose records came after another
    worker's claim on their partition (``tables.claims``) raises ClaimedAway before
    anything of it reaches RocksDB: readers of the changelog skip those records. Only a
    process that is its partitions' only writer (a benchmark, a test) goes without.
    """
    foreign: list[TableBuffer] = []
    for step in zip(*(state.steps() for state in states), strict=True):
        buffers = [buffer for group in step for buffer in group if buffer.pending]
        if not buffers:
            continue
        for buffer in buffers:
            buffer.stage(sender)
        acked = await sender.send()
        if reader is not None:
            for buffer in buffers:
                if await buffer.fenced_out(acked, reader):
                    raise ClaimedAway(
                        f"another worker claimed state partition {buffer.partition} "
                        f"(changelog {buffer.changelog}) while this one stored it: this "
                        "worker was out of the group (frozen past its session timeout?). "
                        "Its unstored changes are dropped; the group gives the partition "
                        "back or to the other worker at the next rebalance"
                    )
        for buffer in buffers:
            buffer.commit(acked)
            if buffer.foreign is not None:
                foreign.append(buffer)
    return foreign
