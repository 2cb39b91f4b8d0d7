"""The sink's PostgreSQL side: a version's tables, and one transaction of rows with its
Kafka offsets.

A transaction moves each partition's stored offset from where this sink instance read
it to just after the batch, and only from there (``WHERE next_offset = expected``): a
sink instance that lost the partition to another one in a rebalance (a zombie) finds
the offset moved and rolls back, so it can never write rows twice or stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from app.sink.schema import OFFSETS_TABLE, Row, SinkTables
from app.sink.views import qualified, replace_views, stored_offsets, view_version

TopicPartition = tuple[str, int]
STAGED_WINDOWS, STAGED_TOTALS = "kappa_staged_windows", "kappa_staged_totals"


class Fenced(Exception):
    """Another sink instance moved a partition's offset: this one no longer owns it."""


@dataclass
class SinkBatch:
    """What one transaction writes: rows (the last per primary key), dead letters, and
    each partition's offset range ``expected -> next``."""

    windows: dict[tuple[str, str, int], Row] = field(default_factory=dict)
    totals: dict[str, Row] = field(default_factory=dict)
    dead_letters: list[tuple[str, int, int, bytes | None, bytes | None, str]] = field(
        default_factory=list
    )
    offsets: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)
    # Per partition of ``offsets``: the token of the last worker's claim read up to its
    # end (``tables.claims``), kept with the offset; None for the results topic.
    owners: dict[TopicPartition, bytes | None] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.windows) + len(self.totals)


def _columns(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


class SinkStore:
    """One version's tables on one connection's transactions."""

    def __init__(self, tables: SinkTables) -> None:
        self.tables = tables
        t = tables
        self.window_columns = [
            "key", "window", "start_ms", "end_ms", "window_start", "window_end",
            *t.metric_columns,
        ]  # fmt: skip
        self.totals_columns = ["key", *t.metric_columns]
        self._windows_upsert = self._upsert(t.windows, STAGED_WINDOWS, self.window_columns, 3)
        self._totals_upsert = self._upsert(t.totals, STAGED_TOTALS, self.totals_columns, 1)

    def _upsert(
        self, table: str, staged: str, columns: Sequence[str], key_columns: int
    ) -> sql.Composed:
        """Every staged row into ``table``, updating the row with the same key."""
        names = _columns(columns)
        return sql.SQL(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged} "
            "ON CONFLICT ({keys}) DO UPDATE SET {updates}"
        ).format(
            table=qualified(self.tables.schema, table),
            columns=names,
            staged=sql.Identifier(staged),
            keys=_columns(columns[:key_columns]),
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                for c in columns[key_columns:]
            ),
        )

    async def _copy(
        self,
        cur: psycopg.AsyncCursor[tuple[object, ...]],
        staged: str,
        columns: Sequence[str],
        rows: Iterable[Row],
        upsert: sql.Composed,
    ) -> None:
        """COPY the rows into the connection's staging table, then upsert them all in one
        statement: faster than batched INSERTs (docs/benchmarks.md#the-postgresql-sink)."""
        copy_in = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(staged), _columns(columns)
        )
        async with cur.copy(copy_in) as copy:
            for row in rows:
                await copy.write_row(row)
        await cur.execute(upsert)

    async def create(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        """The schema, the version's tables and the offsets table, if missing; and the
        views, if no version has them yet (the first version a sink writes is the one
        readers see until a promotion)."""
        t = self.tables
        metrics = [
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(kind))
            for c, kind in zip(t.metric_columns, t.metric_types(), strict=True)
        ]
        statements = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(t.schema)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (topic text, partition int, next_offset bigint "
                "NOT NULL, owner bytea, PRIMARY KEY (topic, partition))"
            ).format(qualified(t.schema, OFFSETS_TABLE)),
            # Made before the sink followed claims: the column is added in place.
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS owner bytea").format(
                qualified(t.schema, OFFSETS_TABLE)
            ),
            sql.SQL(
                'CREATE TABLE IF NOT EXISTS {} (key text NOT NULL, "window" text NOT NULL, '
                "start_ms bigint NOT NULL, end_ms bigint NOT NULL, window_start timestamptz "
                'NOT NULL, window_end timestamptz NOT NULL{}, PRIMARY KEY (key, "window", '
                "start_ms))"
            ).format(
                qualified(t.schema, t.windows), sql.SQL("").join(sql.SQL(", ") + m for m in metrics)
            ),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY{})").format(
                qualified(t.schema, t.totals), sql.SQL("").join(sql.SQL(", ") + m for m in metrics)
            ),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (topic text, partition int, kafka_offset bigint, "
                "key bytea, value bytea, reason text NOT NULL, written_at timestamptz NOT NULL "
                "DEFAULT now(), PRIMARY KEY (topic, partition, kafka_offset))"
            ).format(qualified(t.schema, t.dead_letters)),
        ]
        async with conn.transaction():
            # One sink at a time creates: concurrent CREATE ... IF NOT EXISTS can collide.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kappa sink ddl'))")
            for statement in statements:
                await conn.execute(statement)
            if await view_version(conn, t) is None:
                await replace_views(conn, t)
        # This connection's staging tables, emptied at each commit.
        for staged, table in ((STAGED_WINDOWS, t.windows), (STAGED_TOTALS, t.totals)):
            await conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(staged), qualified(t.schema, table))
            )

    async def read_offsets(
        self,
        conn: psycopg.AsyncConnection[tuple[object, ...]],
        starts: dict[TopicPartition, int],
    ) -> dict[TopicPartition, tuple[int, bytes | None]]:
        """Each partition's next offset to write, and the last claim read before it; a
        partition never written starts at ``starts`` (the topic's beginning), recorded
        now so that the fence has a row."""
        table = qualified(self.tables.schema, OFFSETS_TABLE)
        async with conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (topic, partition, next_offset) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING"
                ).format(table),
                [(topic, partition, start) for (topic, partition), start in starts.items()],
            )
            await cur.execute(
                sql.SQL(
                    "SELECT topic, partition, next_offset, owner FROM {} WHERE topic = ANY(%s)"
                ).format(table),
                [sorted({topic for topic, _ in starts})],
            )
            found = {
                (str(topic), int(str(partition))): (int(str(offset)), _bytes(owner))
                for topic, partition, offset, owner in await cur.fetchall()
            }
        return {tp: found[tp] for tp in starts}

    async def write(
        self, conn: psycopg.AsyncConnection[tuple[object, ...]], batch: SinkBatch
    ) -> None:
        """One transaction: the rows, the dead letters and the offsets, or nothing."""
        t = self.tables
        async with conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                sql.SQL(
                    "UPDATE {} SET next_offset = %s, owner = %s WHERE topic = %s "
                    "AND partition = %s AND next_offset = %s"
                ).format(qualified(t.schema, OFFSETS_TABLE)),
                [
                    (end, batch.owners.get(tp), tp[0], tp[1], start)
                    for tp, (start, end) in batch.offsets.items()
                ],
                returning=False,
            )
            moved = await self._fenced(conn, batch)
            if moved:
                raise Fenced(f"another sink moved the offsets of {moved}")
            if batch.windows:
                await self._copy(
                    cur, STAGED_WINDOWS, self.window_columns, batch.windows.values(),
                    self._windows_upsert,
                )  # fmt: skip
            if batch.totals:
                await self._copy(
                    cur, STAGED_TOTALS, self.totals_columns, batch.totals.values(),
                    self._totals_upsert,
                )  # fmt: skip
            if batch.dead_letters:
                await cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (topic, partition, kafka_offset, key, value, reason) "
                        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                    ).format(qualified(t.schema, t.dead_letters)),
                    batch.dead_letters,
                )

    async def _fenced(
        self, conn: psycopg.AsyncConnection[tuple[object, ...]], batch: SinkBatch
    ) -> list[TopicPartition]:
        """The partitions whose stored offset is not the batch's end (after the update)."""
        stored = await stored_offsets(
            conn, self.tables.schema, sorted({t for t, _ in batch.offsets})
        )
        return [tp for tp, (_, end) in batch.offsets.items() if stored.get(tp) != end]


def _bytes(value: object) -> bytes | None:
    """A ``bytea`` column's value: ``bytes`` as psycopg gives it, or NULL."""
    if value is None:
        return None
    assert isinstance(value, bytes | memoryview), type(value)
    return bytes(value)
