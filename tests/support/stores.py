"""Faust tables on real RocksDB stores without a broker, and a changelog sender that
acknowledges in memory: what ``TableBuffer`` and ``TablePartitionState`` need in a unit
test.

The tables are real Faust tables with kappa's store driver (rocksdict): a Faust app that
is never started opens a table's partition stores on first use, so the tests read what
kappa wrote through Faust's own store code (``table.get``, ``persisted_offset``) rather
than through kappa's.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from faust.types import TP

from agents.batch_sender import MAX_BATCH_BYTES, Headers
from tables.faust_store import Appended
from tables.pipeline_tables import STORE_URL, PipelineTables, StoreOptions

# Nothing ever connects: the app is not started.
UNREACHABLE_BROKER = "kafka://127.0.0.1:9"


@contextmanager
def offline_tables(
    datadir: Path, partitions: int = 2, app_id: str | None = None
) -> Iterator[PipelineTables]:
    """The pipeline's tables as the worker declares them (``PipelineTables.declare``), on
    an app that is never started, stored under ``datadir``. Two with one ``app_id``
    share their changelogs' names: two workers of one pipeline."""
    app = faust.App(
        app_id or f"kappa-unit-{uuid.uuid4().hex[:8]}",
        broker=UNREACHABLE_BROKER,
        store=STORE_URL,
        datadir=str(datadir),
    )
    store = StoreOptions(block_cache_mb=8, memtables_mb=8, write_buffer_mb=8)
    tables = PipelineTables.declare(app, partitions, store, key_cache_bytes=50_000)
    try:
        yield tables
    finally:
        for table in (tables.keys, tables.windows, tables.closed, tables.meta):
            for db in table.data._dbs.values():
                db.close()


class SendFailed(Exception):
    """What ``AcknowledgingSender`` raises when told to fail."""


class AcknowledgingSender:
    """A ``ChangelogSender`` that records what is sent and acknowledges it at once, as
    ``BatchSender`` does: per (topic, partition), where the send's records landed,
    offsets growing as a log's. With ``fail_on`` = n, its n-th ``send`` (from 1)
    raises and acknowledges nothing. It is a ``ChangelogReader`` of its logs too, where
    ``foreign`` appends another worker's records."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.queued: list[tuple[str, int, bytes, bytes | None]] = []
        # Every acknowledged send's records, in order: one list per send.
        self.sends: list[list[tuple[str, int, bytes, bytes | None]]] = []
        self.attempts = 0
        # Each partition's log: its records' keys and values, the offset their index.
        self.logs: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = {}
        # The headers of the logs' records that have some, by (topic, partition, offset).
        self.headers: dict[tuple[str, int, int], Headers] = {}
        self._queued_headers: list[Headers | None] = []

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: Headers | None = None,
    ) -> None:
        self.queued.append((topic, partition, key, value))
        self._queued_headers.append(headers)

    def foreign(
        self,
        topic: str,
        partition: int,
        records: list[tuple[bytes, bytes | None]],
        headers: Headers | None = None,
    ) -> None:
        """``records`` appended to the partition by someone else (with ``headers``)."""
        log = self.logs.setdefault((topic, partition), [])
        for record in records:
            if headers is not None:
                self.headers[topic, partition, len(log)] = headers
            log.append(record)

    async def append(
        self, topic: str, partition: int, key: bytes, value: bytes | None, headers: Headers | None
    ) -> None:
        """A ``RecordAppender``: the record appended at once."""
        self.foreign(topic, partition, [(key, value)], headers)

    async def send(self) -> dict[tuple[str, int], Appended]:
        queued, self.queued = self.queued, []
        headers, self._queued_headers = self._queued_headers, []
        self.attempts += 1
        if self.attempts == self.fail_on:
            raise SendFailed(f"send {self.attempts} fails")
        # As the broker refuses a record above its message.max.bytes (1 MB by default).
        for topic, _, key, value in queued:
            if len(key) + len(value or b"") > MAX_BATCH_BYTES:
                raise SendFailed(f"a record of {topic} is too large for Kafka: {key[:60]!r}")
        first: dict[tuple[str, int], int] = {}
        for (topic, partition, key, value), tags in zip(queued, headers, strict=True):
            log = self.logs.setdefault((topic, partition), [])
            first.setdefault((topic, partition), len(log))
            if tags is not None:
                self.headers[topic, partition, len(log)] = tags
            log.append((key, value))
        if queued:
            self.sends.append(queued)
        return {tp: Appended(at, len(self.logs[tp]) - 1, True) for tp, at in first.items()}

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[Any]]:
        log = self.logs.get((topic, partition), [])
        yield [
            SimpleNamespace(
                offset=offset,
                key=key,
                value=value,
                headers=self.headers.get((topic, partition, offset), []),
            )
            for offset, (key, value) in enumerate(log[start:end], start)
        ]

    def changelog_events(self, topic: str, partition: int, start: int = 0) -> list[Any]:
        """The partition's records from ``start`` on as the changelog events Faust's
        recovery hands to ``Store.apply_changelog_batch``."""
        log = self.logs.get((topic, partition), [])
        return [
            SimpleNamespace(
                message=SimpleNamespace(
                    tp=TP(topic, partition),
                    partition=partition,
                    offset=offset,
                    key=key,
                    value=value,
                    headers=self.headers.get((topic, partition, offset), []),
                )
            )
            for offset, (key, value) in enumerate(log[start:], start)
        ]
