"""The sink's PostgreSQL side against a real PostgreSQL (no broker): a transaction moves
the offsets it started from, with the last worker's claim read, or writes nothing (a
zombie sink is fenced), the views switch between versions, and retiring drops a
version's tables."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import psycopg
import pytest
from psycopg import sql

from agents.spec import PipelineSpec
from app.sink.schema import SinkTables
from app.sink.store import Fenced, SinkBatch, SinkStore
from app.sink.views import drop_version, switch_views, view_version
from tables.records import WindowResult

HOUR = 3_600_000


def _tables(schema: str, version: int) -> SinkTables:
    spec = PipelineSpec.model_validate(
        {
            "name": "shop",
            "version": version,
            "input_topic": "shop",
            "key": ["k"],
            "time_field": "ts",
            "values": ["amount"],
            "metrics": ["count", "sum"],
            "windows": [{"size": "1h"}],
        }
    )
    return SinkTables.of(spec, schema)


def _batch(
    tables: SinkTables, topic: str, start: int, hours: range, owner: bytes | None = None
) -> SinkBatch:
    batch = SinkBatch()
    for hour in hours:
        result = WindowResult(
            "c1", "1h", hour * HOUR, (hour + 1) * HOUR, True,
            {"count": hour, "values": {"amount": {"sum": hour * 0.1}}},
        )  # fmt: skip
        row = tables.window_row(orjson.dumps(result.as_json()))
        batch.windows[(row[0], row[1], row[2])] = row
    batch.offsets = {(topic, 0): (start, start + len(hours))}
    batch.owners = {(topic, 0): owner}
    return batch


async def _count(conn: psycopg.AsyncConnection[tuple[object, ...]], schema: str, rel: str) -> int:
    cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, rel)))
    row = await cur.fetchone()
    return int(str(row[0])) if row else -1


@pytest.fixture
def schema(postgres_url: str) -> str:
    return f"store_{uuid.uuid4().hex[:8]}"


def test_a_zombie_sink_is_fenced_and_the_views_switch_then_retire_drops(
    postgres_url: str, schema: str
) -> None:
    asyncio.run(_scenario(postgres_url, schema))


async def _scenario(url: str, schema: str) -> None:
    v1, v2 = _tables(schema, 1), _tables(schema, 2)
    topic = v1.source_topics[0]
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    zombie = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn, zombie:
        # An offsets table made before the sink kept the last claim: the column is added.
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await conn.execute(
            sql.SQL(
                "CREATE TABLE {} (topic text, partition int, next_offset bigint NOT NULL, "
                "PRIMARY KEY (topic, partition))"
            ).format(sql.Identifier(schema, "sink_offsets"))
        )
        store = SinkStore(v1)
        await store.create(conn)
        await store.create(zombie)
        assert await store.read_offsets(conn, {(topic, 0): 0}) == {(topic, 0): (0, None)}
        # The owner writes offsets 0..3; a zombie that also read 0 then writes 0..5.
        await store.write(conn, _batch(v1, topic, 0, range(3), b"4711"))
        with pytest.raises(Fenced):
            await store.write(zombie, _batch(v1, topic, 0, range(10, 15), b"13"))
        assert await _count(conn, schema, v1.windows) == 3  # none of the zombie's rows
        assert await store.read_offsets(conn, {(topic, 0): 0}) == {(topic, 0): (3, b"4711")}
        # The same results sent again (a worker's retry) leave one row each.
        await store.write(conn, _batch(v1, topic, 3, range(3), b"4711"))
        assert await _count(conn, schema, v1.windows) == 3

        # The first version written got the views; v2's sink leaves them.
        store2 = SinkStore(v2)
        await store2.create(conn)
        assert await view_version(conn, v1) == 1
        await store2.read_offsets(conn, {(v2.source_topics[0], 0): 0})
        await store2.write(conn, _batch(v2, v2.source_topics[0], 0, range(5)))
        assert await _count(conn, schema, v1.windows_view) == 3
        await switch_views(conn, v2)
        assert await view_version(conn, v1) == 2
        assert await _count(conn, schema, v1.windows_view) == 5
        assert await _count(conn, schema, v1.totals_view) == 0

        assert await drop_version(conn, v1, v1.source_topics)
        cur = await conn.execute("SELECT to_regclass(%s)", [f"{schema}.{v1.windows}"])
        assert await cur.fetchone() == (None,)
        forgotten = await store2.read_offsets(conn, {(topic, 0): 0})
        assert forgotten == {(topic, 0): (0, None)}
        await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
