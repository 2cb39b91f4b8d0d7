"""The state records kappa keeps per partition, and the keys they are stored under.

Per key, one record (``KeyRecord``): its fence (``SourceFence``: per source input
partition, the offset of the last event applied to it) and the running totals. Per open
window of a key, its own record (``OpenWindow``): its fence and aggregate, so that a
key with many windows is never read or written whole, and only the windows a batch
touches are in memory. Each record's fence makes a replayed event a no-op for that
record, whichever of a batch's writes a crash kept, and whichever lane (direct or the
repartition hop) brought it. Per partition, its ``PartitionProgress`` (newest event time
and checkpoints) and, per closed window instance, the keys that have it (for expiry).
Closed windows' final results (``WindowResult``) are kept under their key, window and
start. An open window is stored as its panes (``tables.windows.base.WindowKind.pane``):
one ``OpenWindow`` record per pane and key, the window's own for a tumbling window.

Key layout (Faust tables ``keys``, ``windows``, ``closed`` and ``meta``):

| table | key | value |
| --- | --- | --- |
| ``keys`` | the event key | ``KeyRecord.to_state()`` |
| ``windows`` | ``window_key(window, pane_start_ms, key)`` | ``OpenWindow.to_state()`` |
| ``closed`` | ``closed_key(key, window, start_ms)`` | the result's JSON object |
| ``meta`` | ``progress_key(partition)`` | ``PartitionProgress.to_state()`` |
| ``meta`` | ``bucket_keys_key(partition, bucket_id)`` | a closed window instance: ``[]`` |
| ``meta`` | ``bucket_chunk_key(partition, bucket_id, n)`` | a chunk of the instance's keys |
| ``meta`` | ``closed_through_key(partition, window)`` | its last ``last_closed_start`` |
| ``meta`` | ``close_cursor_key(partition, window)`` | a closing cut into key ranges |

``windows`` is window-major: its keys sort by window, then start, then key, so the open
windows that a watermark closes are one range of the store. A session is stored there
under its end instead of its start (``tables.windows.session``): the sessions a
watermark closes are one range too, and its bucket (the sessions that end at one time)
lists each one's key and start (``session_entry``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from tables import json_bytes
from tables.aggregates import Agg
from tables.times import ms_to_iso
from tables.windows import WindowKind
from tables.windows.session import Span

SEP = "\x1f"  # cannot appear in JSON text keys users type, so composite keys stay unambiguous


def closed_prefix(key: str, window: str) -> str:
    """The ``closed`` table's keys of a key's closed instances of a window start so."""
    return f"{key}{SEP}{window}{SEP}"


def closed_key(key: str, window: str, start_ms: int) -> str:
    """The ``closed`` table's key of a closed window's result."""
    return f"{closed_prefix(key, window)}{start_ms}"


# Starts are stored shifted to non-negative and in fixed-width hex, so that the store's
# byte order (of the keys' JSON text) is the order of starts, negative ones included.
_START_SHIFT = 1 << 63
_START_DIGITS = 16


@functools.lru_cache(maxsize=1 << 14)
def window_prefix(window: str, start_ms: int) -> str:
    """The ``windows`` table's keys of one window instance start so; they sort by start.
    Cached: a batch's events share a few window instances."""
    return f"{window}{SEP}{start_ms + _START_SHIFT:0{_START_DIGITS}x}{SEP}"


def window_key(window: str, start_ms: int, key: str) -> str:
    """The ``windows`` table's key of one key's open window."""
    return f"{window_prefix(window, start_ms)}{key}"


def parse_window_key(stored: str) -> tuple[str, int, str]:
    """``(window, start_ms, key)`` of a ``windows`` table key."""
    window, start, key = stored.split(SEP, 2)
    return window, int(start, 16) - _START_SHIFT, key


def progress_key(partition: int) -> str:
    """The ``meta`` table's key of a partition's progress record."""
    return f"progress/{partition}"


def progress_record(key: bytes | None, value: bytes | None) -> tuple[int, PartitionProgress] | None:
    """The partition and progress of a ``meta`` changelog record, if it is a progress
    record (its key and value as stored: JSON text)."""
    if key is None or value is None or not key.startswith(b'"progress/'):
        return None
    name = orjson.loads(key)
    partition = int(name.rsplit("/", 1)[1])
    if progress_key(partition) != name:
        return None
    return partition, PartitionProgress.from_state(orjson.loads(value))


def closed_through_key(partition: int, window: str) -> str:
    """The ``meta`` table's key of the bound up to which a window's instances closed."""
    return f"closed/{partition}/{window}"


def close_cursor_key(partition: int, window: str) -> str:
    """The ``meta`` table's key of a closing cut into ranges of keys: the last start of
    the span of a window's instances being closed, and the last key closed in it."""
    return f"closing/{partition}/{window}"


@dataclass(frozen=True, slots=True)
class ClosingProgress:
    """How far a window's closing has gone (its ``meta`` records): every instance up to
    ``closed_through``, and in the span up to ``cursor``'s start, the keys up to its key
    (in the store's order, a key's JSON text). A window the watermark has passed but its
    closing has not reached yet is still whole in its panes: queries read it there."""

    closed_through: int | None
    cursor: tuple[int, str] | None

    def covers(self, start_ms: int, key: str) -> bool:
        """Whether the key's instance starting at ``start_ms`` has closed."""
        if self.closed_through is not None and start_ms <= self.closed_through:
            return True
        cursor = self.cursor
        return (
            cursor is not None
            and start_ms <= cursor[0]
            and orjson.dumps(key) <= orjson.dumps(cursor[1])
        )


def bucket_keys_prefix(partition: int) -> str:
    """The ``meta`` table's keys of a partition's closed window instances start so."""
    return f"bucket/{partition}/"


def bucket_keys_key(partition: int, bucket: str) -> str:
    """The ``meta`` table's key of the keys that have a closed window instance."""
    return f"{bucket_keys_prefix(partition)}{bucket}"


def bucket_chunks_prefix(partition: int, bucket: str) -> str:
    """The ``meta`` table's keys of the chunks listing a closed window instance's keys
    start so (outside ``bucket_keys_prefix``'s range: ``bucket/`` sorts before ``bucketk``)."""
    return f"bucketkeys/{partition}/{bucket}/"


def bucket_chunk_key(partition: int, bucket: str, index: int) -> str:
    """The ``meta`` table's key of chunk ``index`` of a closed window instance's keys;
    fixed-width, so that chunks sort by index."""
    return f"{bucket_chunks_prefix(partition, bucket)}{index:08d}"


def bucket_id(window: WindowKind, start: int) -> str:
    """Names one aligned window instance, e.g. ``1h@1700000000000``; or the sessions of a
    session window that end at ``start`` (``session/30m@1700000000000``)."""
    return f"{window.name}@{start}"


def parse_bucket_id(bucket: str) -> tuple[str, int]:
    name, _, start = bucket.rpartition("@")
    return name, int(start)


def session_entry(key: str, start_ms: int) -> str:
    """How a closed session is listed among the keys of its bucket: its key and start."""
    return f"{key}{SEP}{start_ms}"


def parse_session_entry(entry: str) -> tuple[str, int]:
    key, _, start = entry.rpartition(SEP)
    return key, int(start)


# Anything that starts with (source input partition, offset): a record to fence.
_Sourced = TypeVar("_Sourced", bound=tuple[Any, ...])


@dataclass(slots=True)
class SourceFence:
    """A record's fence per source input partition: the offset of the last event of each
    source applied to it. An event (source, offset) is applied iff ``offset`` is past
    the fence of ``source`` (``take_new``), whether it came directly (its source is the
    state partition's own input partition) or through the repartition hop (its source and
    offset are the original ones, carried in the hop record's headers), so both lanes are
    judged the same way.

    ``own`` is the fence of the state partition's own input partition: a record whose
    events all came directly is stored as that one integer, as before the hop.
    """

    own: int = -1
    others: dict[int, int] = field(default_factory=dict)

    def take_own(self, items: list[_Sourced]) -> list[_Sourced]:
        """``take_new`` of items all from the state partition's own input partition in
        strictly ascending offsets (the direct lane): one comparison in the usual case."""
        own = self.own
        if items[0][1] <= own:
            items = [item for item in items if item[1] > own]
        if items:
            self.own = items[-1][1]
        return items

    def take_new(self, partition: int, items: list[_Sourced]) -> list[_Sourced]:
        """The ``items`` (each starting with its source and offset, in offset order per
        source) that are new to the fence, which then covers them: one sent twice, even
        within ``items`` (a zombie's late run in the same fetch), is taken once."""
        own = self.own
        others = self.others
        taken: list[_Sourced] = []
        for item in items:
            source, offset = item[0], item[1]
            if source == partition:
                if offset > own:
                    own = offset
                    taken.append(item)
            elif offset > others.get(source, -1):
                others[source] = offset
                taken.append(item)
        self.own = own
        return taken

    def by_source(self, partition: int) -> dict[int, int]:
        """The offset of the last event applied per source input partition, the own one
        (``partition``, the state partition's) included once it has one."""
        own = {partition: self.own} if self.own >= 0 else {}
        return {**own, **self.others}

    def union(self, other: SourceFence) -> SourceFence:
        """The fence of a record holding the events of both records (merged sessions)."""
        others = dict(self.others)
        for source, offset in other.others.items():
            others[source] = max(offset, others.get(source, -1))
        return SourceFence(own=max(self.own, other.own), others=others)

    def to_state(self) -> int | list[Any]:
        if not self.others:
            return self.own
        return [self.own, [[p, o] for p, o in sorted(self.others.items())]]

    @classmethod
    def from_state(cls, state: int | Sequence[Any]) -> SourceFence:
        if isinstance(state, int):
            return cls(own=state)
        own, others = state
        return cls(own=int(own), others={int(p): int(o) for p, o in others})


@dataclass(slots=True)
class KeyRecord:
    """A key's totals, and per source input partition the offset of the last event they
    hold; and per session window, the key's open sessions as (first, last) event times,
    ascending (``tables.windows.session``)."""

    fence: SourceFence
    totals: Agg
    sessions: dict[str, list[Span]] = field(default_factory=dict)

    def to_state(self) -> list[Any]:
        state: list[Any] = [self.fence.to_state(), self.totals.to_state()]
        if self.sessions:  # a pipeline without sessions keeps the layout from before them
            state.append(
                {name: [list(span) for span in spans] for name, spans in self.sessions.items()}
            )
        return state

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> KeyRecord:
        fence, totals, *sessions = state
        return cls(
            fence=SourceFence.from_state(fence),
            totals=Agg.from_state(totals),
            sessions={
                name: [(int(first), int(last)) for first, last in spans]
                for name, spans in (sessions[0].items() if sessions else ())
            },
        )


@dataclass(slots=True)
class OpenWindow:
    """One key's pane of an open window (a tumbling window is one pane): its aggregate,
    and per source input partition the offset of the last event it holds."""

    fence: SourceFence
    agg: Agg

    def to_state(self) -> list[Any]:
        return [self.fence.to_state(), self.agg.to_state()]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> OpenWindow:
        fence, agg = state
        return cls(fence=SourceFence.from_state(fence), agg=Agg.from_state(agg))


@dataclass(slots=True)
class WindowResult:
    """A window's aggregate; ``final`` once the window has closed. Read it, never change
    it: the windows of a key that merge the same panes share one ``result``.

    A plain slotted class, not a frozen one with cached properties: a hopping event
    closes into one result per window, and ``functools.cached_property`` takes a lock
    on every read (Python 3.11), which was the top of the hopping profile."""

    key: str
    window: str
    start_ms: int
    end_ms: int
    final: bool
    result: dict[str, Any]
    # ``as_json`` encoded: given when built with others' parts (``SharedResults``), else
    # built on the first read of ``encoded``.
    json_bytes: bytes | None = field(default=None, compare=False, repr=False)

    def head(self) -> dict[str, Any]:
        """The window's own members of ``as_json``, before the result's."""
        return {
            "key": self.key,
            "window": self.window,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "start": ms_to_iso(self.start_ms),
            "end": ms_to_iso(self.end_ms),
            "final": self.final,
        }

    def as_json(self) -> dict[str, Any]:
        """Its JSON object: the window's members, then the result's."""
        return {**self.head(), **self.result}

    @property
    def encoded(self) -> bytes:
        """``as_json`` as orjson bytes (what Faust's table codec writes too), built once,
        held compactly (``tables.json_bytes``)."""
        encoded = self.json_bytes
        if encoded is None:
            encoded = self.json_bytes = json_bytes.dumps(self.as_json())
        return encoded

    @property
    def result_key(self) -> str:
        """The compacted output topic's key: one final result per key and window."""
        return f"{self.key}|{self.window}|{self.start_ms}"


@dataclass(slots=True)
class PartitionProgress:
    """A partition's progress: its event-time clock, and the checkpoints: the last
    offset of its own input partition (``offset``) and of its repartition topic
    partition (``hop_offset``) whose effects are all stored.

    ``max_event_ms`` is the maximum event time applied, or, after an idle advance
    (``idle_timeout``), the active partitions' lowest one, which it was moved to
    (``idle``, until the partition next receives a record)."""

    max_event_ms: int | None = None
    offset: int = -1
    hop_offset: int = -1
    idle: bool = False

    def to_state(self) -> list[Any]:
        # A partition that never took a hop record, nor went idle, keeps the layout from
        # before the hop.
        if self.idle:
            return [self.max_event_ms, self.offset, self.hop_offset, 1]
        if self.hop_offset < 0:
            return [self.max_event_ms, self.offset]
        return [self.max_event_ms, self.offset, self.hop_offset]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> PartitionProgress:
        max_event_ms, offset, *rest = state
        return cls(
            max_event_ms=max_event_ms,
            offset=int(offset),
            hop_offset=int(rest[0]) if rest else -1,
            idle=len(rest) > 1 and bool(rest[1]),
        )
