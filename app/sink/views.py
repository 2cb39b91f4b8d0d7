"""What ``kappa promote``, ``retire`` and ``versions`` do in PostgreSQL: the views over
the active version, dropping a retired version's tables, and each version's sink lag.

A pipeline has a sink when its views exist. ``<name>_windows`` and ``<name>_totals`` are
plain views (``SELECT *``) over one version's tables; the version is in their comment.
Promotion replaces both in one transaction: PostgreSQL's DDL is transactional, a query
that starts during the switch waits for its lock and then resolves the view's name
again, so a reader sees the old version's rows or the new one's, never a mix or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from agents.errors import KappaError
from app.settings import KappaSettings
from app.sink.schema import OFFSETS_TABLE, VersionTables

Connection = psycopg.AsyncConnection[tuple[object, ...]]
TopicPartition = tuple[str, int]


class PostgresUnreachable(KappaError):
    """The sink's PostgreSQL does not answer; ``reason`` is psycopg's first line."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"PostgreSQL does not answer: {reason}",
            hint="start it (`kappa postgres start`) or check KAPPA_POSTGRES_URL, then retry; "
            "nothing was changed",
        )
        self.reason = reason


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def connect(settings: KappaSettings, statement_timeout_ms: int = 0) -> Connection:
    """A connection to the sink's PostgreSQL; ``statement_timeout_ms`` (0: none) bounds
    each of its statements, for readers that must answer even when a table is locked."""
    try:
        return await psycopg.AsyncConnection.connect(
            settings.resolved_postgres_url,
            autocommit=True,
            connect_timeout=5,
            options=f"-c statement_timeout={statement_timeout_ms}",
        )
    except psycopg.OperationalError as exc:
        raise PostgresUnreachable(first_line(exc)) from None


def qualified(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


async def _regclass(conn: Connection, schema: str, name: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f'"{schema}"."{name}"'])
    row = await cur.fetchone()
    return bool(row and row[0])


async def view_version(conn: Connection, tables: VersionTables) -> int | None:
    """The version the pipeline's views point at; None when it has no views (no sink)."""
    cur = await conn.execute(
        "SELECT obj_description(to_regclass(%s), 'pg_class')",
        [f'"{tables.schema}"."{tables.windows_view}"'],
    )
    row = await cur.fetchone()
    comment = row[0] if row else None
    return int(str(comment).rsplit(" v", 1)[1]) if comment else None


async def replace_views(conn: Connection, tables: VersionTables) -> None:
    """Point both views at ``tables``' version (inside the caller's transaction)."""
    for view, table in ((tables.windows_view, tables.windows), (tables.totals_view, tables.totals)):
        target = qualified(tables.schema, view)
        await conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(target))
        await conn.execute(
            sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                target, qualified(tables.schema, table)
            )
        )
        await conn.execute(
            sql.SQL("COMMENT ON VIEW {} IS {}").format(target, sql.Literal(tables.view_comment))
        )


async def switch_views(conn: Connection, tables: VersionTables) -> None:
    """Point both views at ``tables``' version, in one transaction."""
    async with conn.transaction():
        await replace_views(conn, tables)


async def drop_version(conn: Connection, tables: VersionTables, topics: Sequence[str]) -> bool:
    """Drop the version's tables and forget its offsets; False when it had none."""
    had = await _regclass(conn, tables.schema, tables.windows)
    async with conn.transaction():
        for table in (tables.windows, tables.totals, tables.dead_letters):
            await conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(tables.schema, table))
            )
        if await _regclass(conn, tables.schema, OFFSETS_TABLE):
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE topic = ANY(%s)").format(
                    qualified(tables.schema, OFFSETS_TABLE)
                ),
                [list(topics)],
            )
    return had


async def stored_offsets(
    conn: Connection, schema: str, topics: Sequence[str]
) -> dict[TopicPartition, int]:
    """The next offset to write of each partition of ``topics`` the sink has started."""
    if not await _regclass(conn, schema, OFFSETS_TABLE):
        return {}
    cur = await conn.execute(
        sql.SQL("SELECT topic, partition, next_offset FROM {} WHERE topic = ANY(%s)").format(
            qualified(schema, OFFSETS_TABLE)
        ),
        [list(topics)],
    )
    return {(str(r[0]), int(str(r[1]))): int(str(r[2])) for r in await cur.fetchall()}


@dataclass(frozen=True)
class SinkLag:
    """How far a version's tables in PostgreSQL are behind its topics."""

    version: int
    started: bool  # a sink has recorded offsets for it
    lag: dict[str, dict[int, int]]  # topic -> partition -> records not yet written

    @property
    def total(self) -> int:
        return sum(n for partitions in self.lag.values() for n in partitions.values())


def sink_lag(
    version: int, ends: dict[str, dict[int, int]], stored: dict[TopicPartition, int]
) -> SinkLag:
    """The lag of each partition of ``ends`` (topic -> partition -> end offset): records
    past the stored offset; a partition no sink has started counts whole."""
    lag = {
        topic: {p: max(0, end - stored.get((topic, p), 0)) for p, end in partitions.items()}
        for topic, partitions in ends.items()
    }
    return SinkLag(version, bool(stored), lag)
