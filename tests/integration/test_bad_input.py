"""Bad records and bad history rows go to the dead-letter topic with the reason;
the worker keeps going and no good event is lost or held up."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from agents.partitions import expected_partition
from app.settings import KappaSettings
from tests.support.kafka import produce_raw, read_all
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker

GOOD = {"customer_id": "c1", "ts": "2024-01-01T00:00:00Z", "amount": 1.5, "quantity": 2}


def _good(i: int) -> dict[str, object]:
    return {**GOOD, "customer_id": f"c{i % 7}", "ts": f"2024-01-01T00:{i % 60:02d}:00Z"}


# What each bad record gets: the reason code in the dead-letter record's headers.
BAD_RECORDS: list[tuple[str, bytes, bytes]] = [
    ("malformed_json", b"c1", b'{"customer_id": "c1", "ts": '),
    ("not_an_object", b"c1", b"[1, 2, 3]"),
    ("missing_key", b"c1", orjson.dumps({k: v for k, v in GOOD.items() if k != "customer_id"})),
    ("missing_time", b"c1", orjson.dumps({k: v for k, v in GOOD.items() if k != "ts"})),
    ("bad_time", b"c1", orjson.dumps({**GOOD, "ts": "yesterday-ish"})),
    ("non_numeric", b"c1", orjson.dumps({**GOOD, "amount": "12 dollars"})),
    ("oversized", b"c1", orjson.dumps({**GOOD, "note": "x" * 5_000})),
    ("bad_key", b"c1", orjson.dumps({**GOOD, "customer_id": {"nested": 1}})),
]


def test_bad_live_records_are_dead_lettered_and_good_ones_counted(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, _ = running_worker(make_spec(extra="max_record_bytes = 2000\n"), partitions=2)
    topic = f"test-input-{unique}"

    records: list[tuple[bytes, bytes]] = []
    for i in range(200):
        good = _good(i)
        records.append((str(good["customer_id"]).encode(), orjson.dumps(good)))
        if i % 25 == 0:
            records.extend((key, value) for _, key, value in BAD_RECORDS)
    # A record keyed so that it lands on another partition than its event's key's: a
    # good record, counted through the repartition hop, never dead-lettered.
    wrong_key = next(
        f"k{i}" for i in range(100) if expected_partition(f"k{i}", 2) != expected_partition("c1", 2)
    )
    records.append((wrong_key.encode(), orjson.dumps(GOOD)))
    asyncio.run(produce_raw(kafka_settings.bootstrap, topic, records))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    expected_counts = Counter(f"c{i % 7}" for i in range(200))
    expected_counts["c1"] += 1  # the record off its key's partition
    for key, count in expected_counts.items():
        status, body = worker.get(f"/api/keys/{key}")
        assert status == 200
        assert body["totals"]["count"] == count

    dead = asyncio.run(read_all(kafka_settings.bootstrap, f"kappa.t{unique}.v1.dead-letter"))
    reasons = Counter(dict(r.headers)["kappa.reason"].decode() for r in dead)
    # Each bad record was sent 8 times (i = 0, 25, ..., 175).
    expected_reasons = Counter({reason: 8 for reason, _, _ in BAD_RECORDS})
    assert reasons == expected_reasons
    originals = {value for _, _, value in BAD_RECORDS}
    assert {r.value for r in dead} == originals  # the original bytes, untouched
    for record in dead:
        headers = dict(record.headers)
        assert headers["kappa.detail"]  # a human-readable reason
        assert orjson.loads(headers["kappa.source"])["topic"] == topic
    status, body = worker.get("/api/status")
    assert body["counts"]["dead_letters"] == len(dead)
    assert worker.proc is not None
    assert worker.proc.poll() is None  # still running


def test_bad_history_rows_are_reported_with_row_numbers(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    lines = [orjson.dumps(_good(i)) for i in range(30)]
    lines[4] = b'{"customer_id": "c1", "ts": '  # malformed
    lines[9] = orjson.dumps({**GOOD, "ts": "soon"})  # bad time
    lines[19] = orjson.dumps({**GOOD, "amount": True})  # not a number
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    worker, env = running_worker(make_spec())
    printed = run_kappa(env, "replay", str(path), "--max-bad-rows", "3")
    assert "27 events produced" in printed
    assert "3 bad rows" in printed
    for row, reason in [("5", "malformed_json"), ("10", "bad_time"), ("20", "non_numeric")]:
        assert any(row in line and reason in line for line in printed.splitlines()), printed
    topic = f"test-input-{unique}"
    wait_processed([worker], kafka_settings.bootstrap, topic)
    good = [orjson.loads(line) for i, line in enumerate(lines) if i not in (4, 9, 19)]
    for key, count in Counter(e["customer_id"] for e in good).items():
        assert worker.get(f"/api/keys/{key}")[1]["totals"]["count"] == count
    dead = asyncio.run(read_all(kafka_settings.bootstrap, f"kappa.t{unique}.v1.dead-letter"))
    assert sorted(orjson.loads(dict(r.headers)["kappa.source"])["row"] for r in dead) == [5, 10, 20]
    assert {r.value for r in dead} == {lines[4], lines[9], lines[19]}
