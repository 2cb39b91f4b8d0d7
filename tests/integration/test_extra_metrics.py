"""``first``, ``last``, ``count_distinct`` and the quantiles through a real broker and
worker: equal to ``kappa verify``'s DuckDB answer (arg_min/arg_max over (time, seq),
count(DISTINCT), quantile_disc within the sketch's 1 %) and to a plain Python fold over
the records read back from the input topic, ordered by (event time, offset), with a
Python set for the distinct values and a sort for the quantiles.

Event times are cut to the half hour, so a key's events tie often and only input order
can decide; some amounts are NULL, some quantities are whole numbers that repeat (the
roaring part of the distinct sets) and the others are not; some events arrive late.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.datagen import generate
from app.exit_codes import ExitCode
from app.settings import KappaSettings
from tables.quantiles import QUANTILES
from tests.support.datasets import ON_TIME
from tests.support.kafka import produce_events, read_all
from tests.support.results import results_over, wait_processed
from tests.support.times import iso, ms
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

HALF_HOUR = 30 * 60_000
METRICS_LINE = 'metrics = ["count", "sum", "min", "max", "mean"]'


def fold(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Each key's count and each value's first and last non-null value, by a sort, its
    number of distinct non-null values, and its exact quantiles (rank ceil(q * n))."""
    by_key: dict[str, list[tuple[int, int, dict[str, Any]]]] = defaultdict(list)
    for record in records:
        event = orjson.loads(record.value)
        by_key[event["customer_id"]].append((ms(event["ts"]), record.offset, event))
    out = {}
    for key, rows in by_key.items():
        rows.sort(key=lambda row: (row[0], row[1]))
        values = {}
        for name in ("amount", "quantity"):
            xs = [event[name] for _, _, event in rows if event[name] is not None]
            values[name] = {
                "first": xs[0] if xs else None,
                "last": xs[-1] if xs else None,
                "count_distinct": len(set(xs)),
                **{
                    metric: sorted(xs)[math.ceil(percent * len(xs) / 100) - 1] if xs else None
                    for metric, percent in QUANTILES.items()
                },
            }
        out[key] = {"count": len(rows), "values": values}
    return out


def within_one_percent(got: dict[str, Any], exact: dict[str, Any]) -> bool:
    """Equal, but each quantile only within 1 % of the exact one."""
    for name, found in exact["values"].items():
        for metric in QUANTILES:
            want, have = found[metric], got["values"][name][metric]
            if (want is None) != (have is None) or (
                want is not None and abs(have - want) > 0.01 * abs(want) * (1 + 1e-12)
            ):
                return False
    plain = [m for m in exact["values"]["amount"] if m not in QUANTILES]
    return got["count"] == exact["count"] and all(
        {m: got["values"][n][m] for m in plain} == {m: found[m] for m in plain}
        for n, found in exact["values"].items()
    )


def test_first_last_count_distinct_and_quantiles_equal_duckdb_and_a_fold(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    spec = make_spec(windows='{ size = "1h" }, { size = "2h", step = "1h" }', lateness="1m")
    text = spec.read_text()
    assert METRICS_LINE in text
    spec.write_text(
        text.replace(
            METRICS_LINE,
            'metrics = ["count", "first", "last", "count_distinct", "p50", "p90", "p99"]',
        )
    )
    worker, env = running_worker(spec, partitions=2)
    topic = f"test-input-{unique}"
    events = list(generate(ON_TIME))
    for i, event in enumerate(events):
        event["ts"] = iso(ms(event["ts"]) // HALF_HOUR * HALF_HOUR)
        if i % 7 == 0:
            event["amount"] = None
        if i % 3 == 0:
            event["quantity"] = i % 40 - 20
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    records = asyncio.run(read_all(kafka_settings.bootstrap, topic))
    expected = fold(records)
    totals, windows, _ = results_over([worker], set(expected), events)
    assert set(totals) == set(expected)
    for key, found in totals.items():
        assert within_one_percent(found, expected[key]), (key, found, expected[key])
    ties = sum(
        len(group) - len({ms(e["ts"]) for e in group})
        for group in ([e for e in events if e["customer_id"] == key] for key in expected)
    )
    assert ties > len(expected), "the data must tie in time for input order to matter"
    firsts = {w: r["values"]["quantity"]["first"] for w, r in windows.items()}
    assert len(set(firsts.values())) > 1

    done = kappa_cli(env, "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, report["differences"][:5]
    assert report["input"]["late_events"] > 0
    assert report["keys"]["compared"] == report["keys"]["equal"] == len(expected)
    assert report["windows"]["compared"] == report["windows"]["equal"] == len(windows)
    assert report["results"]["compared"] == report["results"]["equal"] > 0
