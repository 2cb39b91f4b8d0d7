"""examples/seeds.toml as a user runs it: its history file replayed, live events
produced after it, the worker's totals and hourly windows equal to DuckDB summing
``field1 + field2`` (the spec's own expression text) over the same rows, and
``kappa verify`` passing."""

from __future__ import annotations

import asyncio
import csv
import gzip
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from app.exit_codes import ExitCode
from app.settings import KappaSettings
from tests.support.kafka import produce_raw
from tests.support.results import api_results, wait_processed
from tests.support.times import DAY, HOUR, ms
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _live(rows: int, seed: int) -> list[dict[str, Any]]:
    """Events after the history (it ends on 2024-05-01), values as JSON numbers or NULL."""
    rng = random.Random(seed)
    start = ms("2024-05-02T00:00:00Z")
    return [
        {
            "key": f"k{rng.randrange(20):02d}",
            "ts": start + i * 13_000,
            "field1": None if rng.random() < 0.05 else rng.randrange(1, 10**6) / 100,
            "field2": rng.randrange(1, 10**4) / 1000,
        }
        for i in range(rows)
    ]


def test_the_seeds_example_replayed_live_and_verified(
    kafka_settings: KappaSettings,
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    text = (EXAMPLES / "seeds.toml").read_text()
    spec = tmp_path / "seeds.toml"
    spec.write_text(
        text.replace('name = "seeds"', f'name = "s{unique}"').replace(
            'input_topic = "seeds"', f'input_topic = "test-input-{unique}"'
        )
    )
    expr = "field1 + field2"
    assert f'expr = "{expr}"' in text
    worker, env = running_worker(spec, partitions=2)
    run_kappa(env, "replay", str(EXAMPLES / "seeds-history.csv.gz"))
    live = _live(1_500, seed=3)
    topic = f"test-input-{unique}"
    records = [(e["key"].encode(), orjson.dumps(e)) for e in live]
    asyncio.run(produce_raw(kafka_settings.bootstrap, topic, records))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    # DuckDB over the same rows: the history file and the live events, as one CSV.
    rows = tmp_path / "all.csv"
    history_file = EXAMPLES / "seeds-history.csv.gz"
    with gzip.open(history_file, "rt", newline="") as history, rows.open("w", newline="") as out:
        out.write(history.read())
        writer = csv.writer(out)
        for e in live:
            writer.writerow(
                [e["key"], e["ts"], *("" if e[f] is None else e[f] for f in ("field1", "field2"))]
            )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        CREATE TABLE t AS
        SELECT key, CASE WHEN ts LIKE '%Z' THEN epoch_ms(CAST(ts AS TIMESTAMPTZ))
                         ELSE CAST(ts AS BIGINT) END AS t,
               {expr} AS total
        FROM read_csv(?, header = true, auto_detect = false,
                      columns = {{'key': 'VARCHAR', 'ts': 'VARCHAR',
                                  'field1': 'DOUBLE', 'field2': 'DOUBLE'}})
        """,
        [str(rows)],
    )

    def shaped(n: int, values: list[float], low: Any, high: Any) -> dict[str, Any]:
        total = math.fsum(values) if values else None
        mean = None if total is None else total / len(values)
        metrics = {"count": n, "sum": total, "min": low, "max": high, "mean": mean}
        return {"count": n, "values": {"total": {m: metrics[m] for m in metrics if m != "count"}}}

    metrics = "count(*), list(total) FILTER (WHERE total IS NOT NULL), min(total), max(total)"
    want_totals = {
        key: shaped(*rest)
        for key, *rest in con.execute(f"SELECT key, {metrics} FROM t GROUP BY key").fetchall()
    }
    want_windows = {
        (key, "1h", start): shaped(*rest)
        for key, start, *rest in con.execute(
            f"SELECT key, t - t % {HOUR} AS s, {metrics} FROM t GROUP BY key, s"
        ).fetchall()
    }
    t_from, t_to = ms("2024-05-01T00:00:00Z") - DAY, ms("2024-05-03T00:00:00Z")
    totals, windows, _ = api_results([worker], set(want_totals), t_from, t_to)
    assert totals == want_totals
    assert windows == want_windows

    done = kappa_cli(env, "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, report["differences"][:5]
    assert report["keys"]["compared"] == report["keys"]["equal"] == 20
