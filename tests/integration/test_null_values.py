"""Null markers through the real broker and worker: a CSV replay, a JSON Lines replay and
live JSON, each with "NA"-style strings in value fields, equal DuckDB reading the same
events with ``nullstr``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.oracle import batch_results
from tests.support.results import results_over, wait_processed
from tests.support.times import DAY, HOUR
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker

MARKERS = ("NA", "NULL", "n/a")


def _with_markers(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Some values become markers, some null, some numeric strings (as CSV has them)."""
    rng = random.Random(seed)
    for event in events:
        for field in ("amount", "quantity"):
            draw = rng.random()
            if draw < 0.12:
                event[field] = rng.choice(MARKERS)
            elif draw < 0.16:
                event[field] = None
            elif draw < 0.25:
                event[field] = str(event[field])
    return events


def test_null_markers_in_csv_jsonl_and_live_equal_duckdb_nullstr(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    shape = DatasetShape(events=3_000, keys=40, span_ms=2 * DAY, null_fraction=0.0, seed=5)
    events = _with_markers(list(generate(shape)), seed=6)
    third = len(events) // 3
    parts = {"csv": events[:third], "jsonl": events[third : 2 * third], "live": events[2 * third :]}
    for part in parts.values():
        assert {e["amount"] for e in part} >= set(MARKERS), "every source carries every marker"
    everything = tmp_path / "all.csv"
    write(iter(events), everything)
    markers = ", ".join(f'"{m}"' for m in MARKERS)
    spec = make_spec(windows='{ size = "1h" }', extra=f"null_values = [{markers}]\n")
    worker, env = running_worker(spec, partitions=2)

    for fmt in ("csv", "jsonl"):
        path = tmp_path / f"part.{fmt}"
        write(iter(parts[fmt]), path)
        run_kappa(env, "replay", str(path))
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, parts["live"], "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    want_totals, want_windows = batch_results(everything, [("1h", HOUR, HOUR)], null_values=MARKERS)
    totals, windows, _ = results_over([worker], set(want_totals), events)
    assert totals == want_totals
    assert windows == want_windows
    _, status = worker.get("/api/status")
    assert status["counts"]["dead_letters"] == 0
    assert status["counts"]["late_events"] == 0
