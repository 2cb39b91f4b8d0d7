"""The invariant: replayed, live, or split at a cutover, on 1 or 4 partitions, kappa
equals a batch computation.

100k generated events on 1k keys over three weeks, out of order within the allowed
lateness, with null values and decimal values whose float sums round, are compared with
DuckDB SQL over the same file: every key's totals, every window (open or closed), and
every final result in the output topic, exactly (sums against ``math.fsum``). The same
events are also replayed as wide JSON Lines (16 fields the pipeline never reads, nested
and non-ASCII among them), whose lines go to Kafka as they are. The windows
include sessions with a 6-hour gap (a key has an event about every 5 hours, so its
sessions hold a few events each and merge when events arrive out of order).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.datagen import generate, write
from app.settings import KappaSettings
from tests.support.datasets import EQUIVALENCE, EQUIVALENCE_WINDOWS
from tests.support.kafka import produce_events
from tests.support.oracle import batch_results, session_results
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.times import DAY, ms
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker

LATENESS_MS = 10 * 60_000
WINDOWS_TOML = '{ size = "1h" }, { size = "1d", step = "6h" }, { gap = "6h" }'
SESSIONS = ("session/6h", 6 * 3_600_000)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    path = tmp_path_factory.mktemp("equivalence") / "orders.csv.gz"
    events = list(generate(EQUIVALENCE))
    write(iter(events), path)
    return path, events


@pytest.fixture(scope="module")
def oracle(dataset: tuple[Path, list[dict[str, Any]]]) -> tuple[dict[str, Any], dict[Any, Any]]:
    totals, windows = batch_results(dataset[0], EQUIVALENCE_WINDOWS)
    return totals, windows | session_results(dataset[0], *SESSIONS)


def _wide_json_lines(events: list[dict[str, Any]], path: Path) -> None:
    """The events as gzipped JSON Lines with fields the pipeline does not read, written
    by two encoders (with and without spaces), so that the lines are not orjson's own."""
    rng = random.Random(5)
    with gzip.open(path, "wb") as out:
        for i, event in enumerate(events):
            extra = {
                "order_id": f"o-{i:09d}",
                "city": rng.choice(["Zürich", "Kraków", "東京"]),
                "meta": {"tags": ["a", "b"], "score": rng.randrange(100), "ok": None},
                **{f"f{n}": rng.random() for n in range(13)},
            }
            record = {**extra, **event} if i % 2 else {**event, **extra}
            out.write((json.dumps(record) if i % 3 else orjson.dumps(record).decode()).encode())
            out.write(b"\n")


def _shuffled_within_lateness(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Sorted by event time plus a random delay below the lateness: a different arrival
    order in which every event is still within the lateness of all before it."""
    rng = random.Random(seed)
    return sorted(events, key=lambda e: ms(e["ts"]) + rng.randrange(int(LATENESS_MS * 0.9)))


@pytest.mark.parametrize(
    ("mode", "partitions"),
    [("replay", 1), ("replay", 4), ("wide-jsonl", 4), ("live", 1), ("live", 4), ("cutover", 4)],
)
def test_kappa_equals_batch_computation(
    mode: str,
    partitions: int,
    dataset: tuple[Path, list[dict[str, Any]]],
    oracle: tuple[dict[str, Any], dict[Any, Any]],
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    path, events = dataset
    spec = make_spec(windows=WINDOWS_TOML, lateness="10m", retention="30d")
    worker, env = running_worker(spec, partitions=partitions)
    topic = f"test-input-{unique}"

    if mode in ("replay", "wide-jsonl"):
        if mode == "wide-jsonl":
            path = tmp_path / "orders.jsonl.gz"
            _wide_json_lines(events, path)
        printed = run_kappa(env, "replay", str(path), "--id", "eq")
        assert "100,000 events produced" in printed
    elif mode == "live":
        live = _shuffled_within_lateness(events, seed=partitions)
        assert live != events
        asyncio.run(produce_events(kafka_settings.bootstrap, topic, live, "customer_id"))
    else:
        # The first 60% as history, then the rest live: no gap, no overlap.
        cut = len(events) * 6 // 10
        history = tmp_path / "history.csv.gz"
        write(iter(events[:cut]), history)
        printed = run_kappa(env, "replay", str(history), "--id", "eq")
        assert f"{cut:,} events produced" in printed
        live = _shuffled_within_lateness(events[cut:], seed=3)
        asyncio.run(produce_events(kafka_settings.bootstrap, topic, live, "customer_id"))

    wait_processed([worker], kafka_settings.bootstrap, topic)
    want_totals, want_windows = oracle
    t_from = ms(min(e["ts"] for e in events)) - 2 * DAY
    t_to = ms(max(e["ts"] for e in events)) + 2 * DAY
    totals, windows, final = api_results([worker], set(want_totals), t_from, t_to)

    assert totals == want_totals
    assert windows.keys() == want_windows.keys()
    assert windows == want_windows

    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    assert finals, "no window closed"
    assert finals == {k: v for k, v in windows.items() if final[k]}
    assert all(want_windows[k] == v for k, v in finals.items())
    _, body = worker.get("/api/status")
    if mode != "live":
        (replay,) = body["replays"]
        assert replay["id"] == "eq"
        assert replay["state"] == "complete"
        assert replay["produced"] == (cut if mode == "cutover" else len(events))
        assert replay["processed_by_this_worker"] is True
    assert body["counts"]["late_events"] == 0
    assert body["counts"]["dead_letters"] == 0
