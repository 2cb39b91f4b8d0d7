"""The state records kappa keeps per partition, and the keys they are stored under.

Per key, one record (``KeyRecord``): the source offset of the last event applied (the
fence), the running totals, and the key's open windows, so every update of a key is a
single atomic write and the fence makes a replayed event a no-op. Per partition, its
``PartitionProgress`` (newest event time and checkpoint) and, per closed window instance, the
keys that have it (for expiry). Closed windows' final results (``WindowResult``) are
kept under their key, window and start.

Key layout (Faust tables ``keys``, ``closed`` and ``meta``):

| table | key | value |
| --- | --- | --- |
| ``keys`` | the event key | ``KeyRecord.to_state()`` |
| ``closed`` | ``closed_key(key, window, start_ms)`` | the result's JSON object |
| ``meta`` | ``progress_key(partition)`` | ``PartitionProgress.to_state()`` |
| ``meta`` | ``bucket_keys_key(partition, bucket_id)`` | the keys of a closed window instance |
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tables.aggregates import Agg
from tables.times import ms_to_iso
from tables.windows import WindowDef

SEP = "\x1f"  # cannot appear in JSON text keys users type, so composite keys stay unambiguous


def closed_key(key: str, window: str, start_ms: int) -> str:
    """The ``closed`` table's key of a closed window's result."""
    return f"{key}{SEP}{window}{SEP}{start_ms}"


def progress_key(partition: int) -> str:
    """The ``meta`` table's key of a partition's progress record."""
    return f"progress/{partition}"


def bucket_keys_prefix(partition: int) -> str:
    """The ``meta`` table's keys of a partition's closed window instances start so."""
    return f"bucket/{partition}/"


def bucket_keys_key(partition: int, bucket: str) -> str:
    """The ``meta`` table's key of the keys that have a closed window instance."""
    return f"{bucket_keys_prefix(partition)}{bucket}"


def bucket_id(window: WindowDef, start: int) -> str:
    """Names one aligned window instance, e.g. ``1h@1700000000000``."""
    return f"{window.name}@{start}"


def parse_bucket_id(bucket: str) -> tuple[str, int]:
    name, _, start = bucket.rpartition("@")
    return name, int(start)


@dataclass(slots=True)
class KeyRecord:
    fence: int
    totals: Agg
    windows: dict[str, Agg]

    def to_state(self) -> list[Any]:
        return [
            self.fence,
            self.totals.to_state(),
            {bucket: agg.to_state() for bucket, agg in self.windows.items()},
        ]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> KeyRecord:
        fence, totals, windows = state
        return cls(
            fence=int(fence),
            totals=Agg.from_state(totals),
            windows={bucket: Agg.from_state(agg) for bucket, agg in windows.items()},
        )


@dataclass(frozen=True)
class WindowResult:
    """A window's aggregate; ``final`` once the window has closed."""

    key: str
    window: str
    start_ms: int
    end_ms: int
    final: bool
    result: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """Its JSON object, built once: a closed window's goes to the closed table and to
        the results topic. Read it, never change it."""
        return self._json

    @functools.cached_property
    def encoded(self) -> bytes:
        """``as_json`` as orjson bytes (what Faust's table codec writes too), built once."""
        return orjson.dumps(self._json)

    @functools.cached_property
    def _json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "window": self.window,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "start": ms_to_iso(self.start_ms),
            "end": ms_to_iso(self.end_ms),
            "final": self.final,
            **self.result,
        }

    @property
    def result_key(self) -> str:
        """The compacted output topic's key: one final result per key and window."""
        return f"{self.key}|{self.window}|{self.start_ms}"


@dataclass(slots=True)
class PartitionProgress:
    """A partition's progress: its maximum event time, and the checkpoint: the last
    source offset whose effects are all stored."""

    max_event_ms: int | None = None
    offset: int = -1

    def to_state(self) -> list[Any]:
        return [self.max_event_ms, self.offset]

    @classmethod
    def from_state(cls, state: Sequence[Any]) -> PartitionProgress:
        max_event_ms, offset = state
        return cls(max_event_ms=max_event_ms, offset=int(offset))
