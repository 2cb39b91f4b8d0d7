"""Rows per second into PostgreSQL for window results: the sink's COPY into a staging
table followed by one ``INSERT ... SELECT ... ON CONFLICT`` (``SinkStore.write``), against
batched upserts (``executemany`` in psycopg's pipeline mode), each in transactions of
``--batch`` rows with the fenced offsets update.

    .venv/bin/python -m bench.sink_postgres --rows 100000 --keys 1000

It uses KAPPA_POSTGRES_URL, or starts the project's local PostgreSQL. It reports; it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import orjson
import psycopg
from psycopg import sql

from agents.spec import PipelineSpec
from app.postgres.local import LocalPostgres
from app.settings import KappaSettings
from app.sink.schema import Row, SinkTables
from app.sink.store import SinkBatch, SinkStore
from app.sink.views import qualified
from tables.records import WindowResult

HOUR = 3_600_000
SPEC = {
    "name": "benchsink",
    "version": 1,
    "input_topic": "bench",
    "key": ["customer_id"],
    "time_field": "ts",
    "values": ["amount", "quantity"],
    "windows": [{"size": "1h"}],
}
Connection = psycopg.AsyncConnection[tuple[object, ...]]


def window_results(tables: SinkTables, rows: int, keys: int) -> list[Row]:
    """``rows`` final 1h results over ``keys`` keys, encoded as the worker sends them."""
    rng = random.Random(7)
    out = []
    for i in range(rows):
        value = rng.uniform(0, 1000)
        result = WindowResult(
            f"c{i % keys:05d}",
            "1h",
            (i // keys) * HOUR,
            (i // keys + 1) * HOUR,
            True,
            {
                "count": 3,
                "values": {
                    name: {"sum": value, "min": 0.5, "max": value, "mean": value / 3}
                    for name in tables.value_names
                },
            },
        )
        out.append(tables.window_row(orjson.dumps(result.as_json())))
    return out


async def executemany_write(store: SinkStore, conn: Connection, batch: SinkBatch) -> None:
    """The batched-INSERT variant of ``SinkStore.write`` (what the sink did first)."""
    t, columns = store.tables, store.window_columns
    upsert = sql.SQL(
        'INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (key, "window", start_ms) DO UPDATE SET {}'
    ).format(
        qualified(t.schema, t.windows),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns[3:]
        ),
    )
    (tp, (start, end)) = next(iter(batch.offsets.items()))
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(
            sql.SQL(
                "UPDATE {} SET next_offset = %s WHERE topic = %s AND partition = %s "
                "AND next_offset = %s"
            ).format(qualified(t.schema, "sink_offsets")),
            [end, tp[0], tp[1], start],
        )
        await cur.executemany(upsert, list(batch.windows.values()))


async def measure(url: str, schema: str, rows: list[Row], batch_rows: int, variant: str) -> float:
    """Rows per second of writing ``rows`` in transactions of ``batch_rows``, into fresh
    tables (inserts), then again (every row an update)."""
    spec = PipelineSpec.model_validate(SPEC)
    tables = SinkTables.of(spec, schema)
    store = SinkStore(tables)
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        await store.create(conn)
        await store.read_offsets(conn, {("bench", 0): 0})
        write: Callable[[SinkBatch], Awaitable[None]] = (
            (lambda b: store.write(conn, b))
            if variant == "copy"
            else (lambda b: executemany_write(store, conn, b))
        )
        began = time.perf_counter()
        written = offset = 0
        for _ in range(2):  # inserts, then the same rows again as updates
            for start in range(0, len(rows), batch_rows):
                chunk = rows[start : start + batch_rows]
                batch = SinkBatch(windows={(r[0], r[1], r[2]): r for r in chunk})
                batch.offsets = {("bench", 0): (offset, offset + len(chunk))}
                offset += len(chunk)
                await write(batch)
                written += len(chunk)
        elapsed = time.perf_counter() - began
        await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return written / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = KappaSettings()
    if settings.postgres_url is None:
        LocalPostgres(settings).start()
    tables = SinkTables.of(PipelineSpec.model_validate(SPEC), "bench_sink")
    rows = window_results(tables, args.rows, args.keys)
    for variant in ("executemany", "copy"):
        rates = [
            asyncio.run(
                measure(settings.resolved_postgres_url, "bench_sink", rows, args.batch, variant)
            )
            for _ in range(args.repeat)
        ]
        print(
            f"{variant:>11}: {statistics.median(rates):>9,.0f} rows/s (median of {args.repeat}; "
            f"{args.rows:,} rows inserted then updated, {args.batch:,} per transaction)"
        )


if __name__ == "__main__":
    main()
