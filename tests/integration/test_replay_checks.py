"""``kappa replay`` checks the files before producing: it refuses files with more bad rows
than --max-bad-rows accepts, warns how many events would be late, and produces records
exactly as a per-row replay would (key, partition, timestamp, value, order)."""

from __future__ import annotations

import asyncio
import csv
import random
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from agents.partitions import default_partition
from app.datagen import DatasetShape, generate, write
from app.kafka_client import offset_ranges
from app.settings import KappaSettings
from tables.times import datetime_to_ms
from tests.support.kafka import read_all
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker

GOOD_ROW = "c1,2024-01-01T00:00:00Z,1.5,2"
BAD_ROWS = ["c2,soon,1,1", ",2024-01-01T00:00:00Z,1,1", "c3,2024-01-01T00:00:00Z,twelve,1"]


def _history(tmp_path: Path, good: int) -> Path:
    """``good`` good rows with the three BAD_ROWS among them (rows 2, 4 and 6)."""
    rows = [GOOD_ROW.replace("c1", f"c{i % 5}") for i in range(good)]
    for position, bad in zip((1, 3, 5), BAD_ROWS, strict=True):
        rows.insert(position, bad)
    path = tmp_path / "history.csv"
    path.write_text("customer_id,ts,amount,quantity\n" + "\n".join(rows) + "\n")
    return path


def _record_counts(bootstrap: str, unique: str) -> tuple[int, int]:
    """Records in the input and the dead-letter topics (0 for a topic not created)."""
    topics = [f"test-input-{unique}", f"kappa.t{unique}.v1.dead-letter"]
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": bootstrap}, topics))
    counts = [sum(end for _, end in ranges.get(topic, {}).values()) for topic in topics]
    return counts[0], counts[1]


def test_bad_rows_stop_the_replay_before_anything_is_produced(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    env = kappa_env(make_spec(), partitions=2)
    path = _history(tmp_path, good=37)

    for limit in ([], ["--max-bad-rows", "2"], ["--max-bad-rows", "7%"]):  # 3 of 40 is 7.5%
        done = kappa_cli(env, "replay", str(path), *limit)
        assert done.returncode == 3, done.stdout + done.stderr
        assert "3 of 40 rows are bad" in done.stderr
        assert "nothing was produced" in done.stderr
        for row, reason in [("2", "bad_time"), ("4", "missing_key"), ("6", "non_numeric")]:
            assert re.search(rf"\b{row}\b.*{reason}", done.stdout), done.stdout
        assert _record_counts(kafka_settings.bootstrap, unique) == (0, 0)

    printed = run_kappa(env, "replay", str(path), "--max-bad-rows", "7.5%")
    assert "37 events produced" in printed
    assert _record_counts(kafka_settings.bootstrap, unique) == (37, 3)


def test_a_dry_run_checks_and_produces_nothing(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    env = kappa_env(make_spec())
    path = _history(tmp_path, good=10)
    done = kappa_cli(env, "replay", str(path), "--dry-run")
    assert done.returncode == 3
    assert "nothing was produced" in done.stderr
    printed = run_kappa(env, "replay", str(path), "--dry-run", "--max-bad-rows", "3")
    assert "10 good rows, 3 bad rows; nothing was produced (--dry-run)" in " ".join(printed.split())
    assert _record_counts(kafka_settings.bootstrap, unique) == (0, 0)


def _late_by_fold(events: list[dict[str, str]], partitions: int, lateness_ms: int) -> int:
    """kappa's lateness policy folded over the events in file order, one at a time."""
    newest: dict[int, int] = {}
    late = 0
    for event in events:
        partition = default_partition(event["customer_id"].encode(), partitions)
        ts = datetime_to_ms(datetime.fromisoformat(event["ts"]))
        if partition in newest and ts < newest[partition] - lateness_ms:
            late += 1
        newest[partition] = max(newest.get(partition, ts), ts)
    return late


def test_a_replay_out_of_time_order_says_how_many_events_will_be_late(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    events = list(generate(DatasetShape(events=3_000, keys=40, seed=11)))
    random.Random(2).shuffle(events)
    path = tmp_path / "shuffled.csv"
    write(iter(events), path)
    late = _late_by_fold(events, partitions=2, lateness_ms=10 * 60_000)
    assert 0 < late < len(events)

    worker, env = running_worker(make_spec(lateness="10m"), partitions=2)
    done = kappa_cli(env, "replay", str(path), "--id", "shuffled")
    assert done.returncode == 0, done.stderr
    warning = " ".join(done.stderr.split())  # rich wraps long lines
    assert f"{late:,} of 3,000 events" in warning
    assert "would be late" in warning
    assert "--order-by-time" in warning
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")
    status = worker.get("/api/status")[1]
    assert status["counts"]["late_events"] == late
    [replay] = [r for r in status["replays"] if r["id"] == "shuffled"]
    assert replay["would_be_late"] == late
    assert f"{late:,} late for the lateness" in " ".join(run_kappa(env, "status").split())

    # In time order, nothing is late and nothing is said.
    ordered = kappa_cli(env, "replay", str(path), "--order-by-time", "--dry-run")
    assert ordered.returncode == 0
    assert "late" not in ordered.stderr + ordered.stdout


def _csv_history(tmp_path: Path) -> tuple[Path, list[tuple[str, str, bytes]]]:
    """A CSV history, and each row's (key, time, value as a per-row replay writes it)."""
    events = list(generate(DatasetShape(events=5_000, keys=300, seed=4)))
    path = tmp_path / "history.csv.gz"
    write(iter(events), path)
    write(iter(events), tmp_path / "plain.csv")
    with open(tmp_path / "plain.csv", newline="") as plain:
        rows = list(csv.DictReader(plain))
    return path, [(row["customer_id"], row["ts"], orjson.dumps(row)) for row in rows]


def _json_lines_history(tmp_path: Path) -> tuple[Path, list[tuple[str, str, bytes]]]:
    """Wide lines (fields the spec does not read, nested, non-ASCII, spaces, CRLF) and
    short ones; each line's value is the line itself."""
    events = list(generate(DatasetShape(events=2_000, keys=100, seed=5)))
    lines = []
    for i, event in enumerate(events):
        extra = {"note": "gift — wrap" * (i % 4), "meta": {"tags": ["a"], "n": i}, "x": i / 3}
        line = orjson.dumps({**extra, **event} if i % 2 else event)
        lines.append(line.replace(b",", b", ") if i % 3 == 0 else line)
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return path, [
        (event["customer_id"], event["ts"], line) for event, line in zip(events, lines, strict=True)
    ]


@pytest.mark.parametrize("history", [_csv_history, _json_lines_history], ids=["csv", "jsonl"])
def test_records_are_keyed_partitioned_stamped_and_ordered_as_each_row(
    history: Callable[[Path], tuple[Path, list[tuple[str, str, bytes]]]],
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    path, rows = history(tmp_path)
    run_kappa(kappa_env(make_spec(), partitions=3), "replay", str(path))

    want: dict[int, list[tuple[bytes, int, bytes]]] = {0: [], 1: [], 2: []}
    for key, ts, value in rows:  # each row on its own, in file order
        ms = datetime_to_ms(datetime.fromisoformat(ts))
        want[default_partition(key.encode(), 3)].append((key.encode(), ms, value))
    records = asyncio.run(read_all(kafka_settings.bootstrap, f"test-input-{unique}"))
    got: dict[int, list[tuple[bytes, int, bytes]]] = {0: [], 1: [], 2: []}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        got[record.partition].append((record.key, record.timestamp, record.value))
    assert got == want
