"""``kappa verify`` against a real broker and a real worker, run as a user runs it.

The honest run must pass; a real difference must fail with the difference reported.
The difference is made without mocking anything: a final result with a wrong count is
produced straight into the version's window-results topic, as a buggy or foreign
producer would, and a spec whose values differ from the version's is verified.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from agents.names import PipelineNames
from agents.seam_record import SeamRecord
from agents.spec import load_spec
from app.datagen import generate, write
from app.exit_codes import ExitCode
from app.kafka_client import client_options, offset_ranges
from app.replay.seam import read_seam
from app.settings import KappaSettings
from app.verify.batch import batch_answer, connect
from app.verify.reading import InputReader
from tests.support.datasets import ON_TIME
from tests.support.harness import Harness
from tests.support.kafka import create_topics, produce_events, produce_raw
from tests.support.results import wait_processed
from tests.support.times import iso, ms
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker


def _verify(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any], str]:
    done = kappa_cli(env, "verify", "--json", *args, timeout=300)
    try:
        body = orjson.loads(done.stdout) if done.stdout.strip() else {}
    except orjson.JSONDecodeError:
        body = {}
    return done.returncode, body, done.stderr


def test_verify_passes_on_an_honest_run_and_reports_a_real_difference(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    # Out of order by up to 5 minutes, with a lateness of 1 minute: some events are late.
    spec = make_spec(windows='{ size = "1h" }, { size = "1d", step = "6h" }', lateness="1m")
    worker, env = running_worker(spec, partitions=2)
    topic = f"test-input-{unique}"
    events = list(generate(ON_TIME))
    bad = [(b"c00001", b"{not json"), (b"c00002", orjson.dumps({"customer_id": "c00002"}))]
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    asyncio.run(produce_raw(kafka_settings.bootstrap, topic, bad))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    code, report, stderr = _verify(env)
    assert code == ExitCode.OK, _shown(report) if report else stderr
    assert report["ok"] is True
    assert report["complete"] is True
    assert report["input"]["records"] == len(events) + len(bad)
    assert report["input"]["bad"] == {"malformed_json": 1, "missing_time": 1}
    assert report["input"]["late_events"] > 0
    keys = {e["customer_id"] for e in events}
    assert report["keys"]["compared"] == report["keys"]["equal"] == len(keys)
    assert report["windows"]["compared"] == report["windows"]["equal"] > len(keys)
    assert report["results"]["compared"] == report["results"]["equal"] > 0
    assert report["differences"] == []

    # The people's report says the same in a few lines.
    done = kappa_cli(env, "verify", timeout=300)
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "OK: the version's tables and results are equal to the batch answer" in done.stdout

    # A final result that the worker never computed, in the version's results topic.
    some_final = next(iter(_topic_window(report, kafka_settings, unique)))
    forged = {**some_final, "count": some_final["count"] + 1}
    record_key = f"{forged['key']}|{forged['window']}|{forged['start_ms']}".encode()
    results_topic = f"kappa.t{unique}.v1.window-results"
    asyncio.run(
        produce_raw(kafka_settings.bootstrap, results_topic, [(record_key, orjson.dumps(forged))])
    )
    code, report, stderr = _verify(env)
    assert code == ExitCode.DIFFERENT, report or stderr
    assert report["ok"] is False
    assert report["differences"] == [
        {
            "kind": "different",
            "where": "results topic",
            "key": forged["key"],
            "window": forged["window"],
            "start_ms": forged["start_ms"],
            "field": "count",
            "expected": some_final["count"],
            "actual": forged["count"],
        }
    ]
    done = kappa_cli(env, "verify", timeout=300)
    assert done.returncode == ExitCode.DIFFERENT
    assert f"different: results topic, key {forged['key']!r}" in done.stdout

    # A spec whose lateness differs from the version's: the events that were late
    # for the version's 1 minute are on time for 30 minutes, so windows differ, while
    # every key's totals, which count late events too, stay equal.
    other = spec.with_name("more-lateness.toml")
    other.write_text(spec.read_text().replace('lateness = "1m"', 'lateness = "30m"'))
    code, report, _ = _verify(env, str(other))
    assert code == ExitCode.DIFFERENT
    assert report["keys"]["equal"] == len(keys)
    assert report["windows"]["different"] > 0
    differences = [d for d in report["differences"] if d["where"] == "windows"]
    assert {"count", "values.amount.sum"} <= {d["field"] for d in differences}
    assert all(d["expected"] != d["actual"] for d in differences)


def _shown(report: dict[str, Any]) -> str:
    tallies = {k: report.get(k) for k in ("keys", "windows", "results", "lag")}
    return f"{tallies} {report.get('differences', [])[:5]}"


def _topic_window(
    report: dict[str, Any], kafka_settings: KappaSettings, unique: str
) -> list[dict[str, Any]]:
    from tests.support.kafka import read_all

    records = asyncio.run(read_all(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results"))
    return [orjson.loads(r.value) for r in records]


def test_verify_says_what_to_do_when_it_cannot_compare(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    spec = make_spec()
    worker, env = running_worker(spec)
    topic = f"test-input-{unique}"
    asyncio.run(
        produce_events(kafka_settings.bootstrap, topic, list(generate(ON_TIME))[:50], "customer_id")
    )
    wait_processed([worker], kafka_settings.bootstrap, topic)

    done = kappa_cli(env, "verify", "--version", "7")
    assert done.returncode == ExitCode.ERROR
    assert f"pipeline 't{unique}' has no version 7 on the cluster; it has 1" in done.stderr
    assert "pass --version with one of 1" in done.stderr

    unknown = spec.with_name("unknown.toml")
    unknown.write_text(spec.read_text().replace(f'name = "t{unique}"', f'name = "u{unique}"'))
    done = kappa_cli(env, "verify", str(unknown))
    assert done.returncode == ExitCode.ERROR
    assert f"pipeline 'u{unique}' has no version on the cluster" in done.stderr

    worker.stop()
    done = kappa_cli(env, "verify")
    assert done.returncode == ExitCode.ERROR
    assert "version 1 of pipeline" in done.stderr
    assert "has no running worker" in done.stderr
    assert "start one with `kappa worker`" in done.stderr


def test_verify_passes_while_live_events_keep_arriving(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    """Records that arrive during the run are not differences: each key is compared as
    of the last record the version applied to it, and the uncertain windows skipped."""
    spec = make_spec(windows='{ size = "1h" }', lateness="1m")
    worker, env = running_worker(spec, partitions=2)
    topic = f"test-input-{unique}"
    events = list(generate(ON_TIME))
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)

    newest = max(ms(e["ts"]) for e in events)
    stop = threading.Event()
    produced = []

    def live() -> None:
        async def run() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap, acks="all")
            await producer.start()
            try:
                i = 0
                while not stop.is_set():
                    for _ in range(20):
                        i += 1
                        event = {
                            "customer_id": f"c{i % 60:05d}",  # new keys too
                            "ts": iso(newest + i * 7_000),
                            "amount": round(0.1 * i, 3),
                            "quantity": 1,
                        }
                        key = str(event["customer_id"]).encode()
                        await producer.send(topic, orjson.dumps(event), key=key)
                        produced.append(event)
                    await producer.flush()
                    await asyncio.sleep(0.05)
            finally:
                await producer.stop()

        asyncio.run(run())

    feeder = threading.Thread(target=live)
    feeder.start()
    try:
        while len(produced) < 200:  # traffic is flowing before verify starts
            time.sleep(0.05)
        code, report, stderr = _verify(env)
    finally:
        stop.set()
        feeder.join(timeout=60)
    assert code == ExitCode.OK, _shown(report) if report else stderr
    assert report["differences"] == []
    assert report["input"]["records"] > len(events) + 200
    assert report["keys"]["equal"] >= 50
    assert report["windows"]["equal"] > 0
    assert report["results"]["equal"] > 0


def test_a_version_with_a_seam_is_read_from_its_history_then_live_from_the_cut(
    kafka_settings: KappaSettings, make_spec: Callable[..., Path], unique: str
) -> None:
    """Without a worker: what verify reads for a version with a sealed seam is the
    history topic up to its sealed end, then the live records at or after the cut, each
    counted once, though history and live overlap on both sides of the cut."""
    spec = load_spec(make_spec())
    names = PipelineNames(spec)
    history_topic = f"{names.prefix}.history"
    cut = ms("2024-01-02T00:00:00+00:00")
    asyncio.run(create_topics(kafka_settings.bootstrap, [spec.input_topic, history_topic], 2))
    asyncio.run(create_topics(kafka_settings.bootstrap, [names.control_topic], 1))
    keys = [f"c{i:03d}" for i in range(20)]

    def events(start: int, end: int, step: int, tag: float) -> list[dict[str, Any]]:
        return [
            {"customer_id": keys[i % len(keys)], "ts": iso(t), "amount": tag, "quantity": 1}
            for i, t in enumerate(range(start, end, step))
        ]

    history = events(cut - 6 * 3_600_000, cut, 60_000, 0.1)  # before the cut
    live_before = events(cut - 3_600_000, cut, 90_000, 0.2)  # in history too: skipped
    live_after = events(cut, cut + 3_600_000, 45_000, 0.3)
    boot = kafka_settings.bootstrap
    asyncio.run(produce_events(boot, history_topic, history, "customer_id"))
    asyncio.run(produce_events(boot, spec.input_topic, live_before + live_after, "customer_id"))
    ends = asyncio.run(offset_ranges({"bootstrap_servers": boot}, [history_topic]))
    seam = SeamRecord(
        cut_ms=cut,
        history_topic=history_topic,
        start_offsets={p: 0 for p in ends[history_topic]},
        end_offsets={p: end for p, (_, end) in ends[history_topic].items()},
        rows=len(history),
        after_cut=0,
        files=["history.csv"],
        replay_id="test",
    )
    asyncio.run(produce_raw(boot, names.control_topic, [(b"seam", seam.encoded())]))
    # History produced after the seam was sealed is not the version's.
    asyncio.run(produce_events(boot, history_topic, history[:5], "customer_id"))

    settings = kafka_settings
    found = asyncio.run(read_seam(client_options(settings), names))
    assert found is not None
    assert found.cut_ms == cut
    reader = InputReader(settings, spec, found)
    live = asyncio.run(offset_ranges({"bootstrap_servers": boot}, [spec.input_topic]))
    live_ends = {p: end for p, (_, end) in live[spec.input_topic].items()}
    asyncio.run(reader.read_to(live_ends, {p: 0 for p in live_ends}))
    read = reader.read
    assert read.history_records == len(history)
    assert read.before_cut == len(live_before)
    table = read.table(2)
    assert len(table) == len(history) + len(live_after)
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for p, seq, t in zip(
        table["p"].to_pylist(), table["seq"].to_pylist(), table["t"].to_pylist(), strict=True
    ):
        by_partition.setdefault(p, []).append((seq, t))
    for p, rows in by_partition.items():
        # History first (virtual offsets below the sealed end), before the cut, live after.
        history_end = found.end_offsets[p]
        history_rows = [t for seq, t in rows if seq < history_end]
        live_rows = [t for seq, t in rows if seq >= history_end]
        assert history_rows
        assert live_rows
        assert max(history_rows) < cut <= min(live_rows)
    # Counted once: every key's total is its history plus its live events from the cut.
    answer = batch_answer(connect(), table, spec)
    for key in keys:
        mine = [e for e in history + live_after if e["customer_id"] == key]
        assert answer.totals[key]["count"] == len(mine)
        amounts = [e["amount"] for e in mine]
        assert answer.totals[key]["values"]["amount"]["sum"] == math.fsum(amounts)


def test_verify_finds_every_worker_of_a_version_from_its_consumer_group(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    """Two workers share the partitions: verify asks both (keys are listed per worker),
    found through the group, and the keys of each are compared."""
    spec = make_spec()
    a = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="a"))
    a.wait_ready(partitions=4)
    b = start_worker(kappa_env(spec, partitions=4, KAPPA_WORKER_NAME="b"))

    def shared() -> bool:
        owned = [set(w.get("/api/status")[1]["partitions_owned"]) for w in (a, b)]
        return all(owned) and owned[0] | owned[1] == {0, 1, 2, 3}

    a.wait_until(shared, 90, "the second worker to take over some partitions")
    events = list(generate(ON_TIME))
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([a, b], kafka_settings.bootstrap, topic)

    code, report, stderr = _verify(a.env)
    assert code == ExitCode.OK, _shown(report) if report else stderr
    assert sorted(report["workers"]) == sorted([a.base, b.base])
    keys = {e["customer_id"] for e in events}
    assert report["keys"]["equal"] == len(keys)
    assert report["windows"]["equal"] > 0


def test_verify_a_version_with_a_cut_beside_the_active_version(kappa: Harness) -> None:
    """v1 runs live and is active; v2 starts from a history file (overlapping the topic on
    both sides of its cut) and then the live topic. Verify passes for both: v2 is asked
    for its own numbers, though its workers pass readers' queries to v1."""
    events = sorted(generate(ON_TIME), key=lambda e: ms(e["ts"]))
    cut = ms(events[len(events) // 2]["ts"])
    before = [e for e in events if ms(e["ts"]) < cut]
    after = [e for e in events if ms(e["ts"]) >= cut]
    history = kappa.tmp_path / "history.csv"
    write(iter(before + after[:300]), history)  # overlaps the topic after the cut
    live = before[-300:] + after  # overlaps the file before the cut

    v1_env = kappa.env(kappa.make_spec(), partitions=2)
    v1 = kappa.start_worker(v1_env)
    v1.wait_ready(partitions=2)
    boot = kappa.settings.bootstrap
    asyncio.run(produce_events(boot, kappa.topic, live, "customer_id"))
    v2_spec = kappa.make_spec(version=2, extra=f'\n[history]\ncut = "{iso(cut)}"\n')
    v2_env = kappa.env(v2_spec, partitions=2)
    v2 = kappa.start_worker(v2_env)
    v2.wait_ready(partitions=2)
    unsealed = kappa_cli(v2_env, "verify")
    assert unsealed.returncode == ExitCode.ERROR
    assert "its history is not sealed yet" in unsealed.stderr
    assert "replay its history first" in unsealed.stderr
    run_kappa(v2_env, "replay", str(history))
    for worker in (v1, v2):
        wait_processed([worker], boot, kappa.topic)
    run_kappa(v1_env, "promote", f"t{kappa.unique}", "1")

    code, report, stderr = _verify(v2_env)
    assert code == ExitCode.OK, _shown(report) if report else stderr
    assert report["seam"]["cut_ms"] == cut
    assert report["input"]["history_records"] == len(before)
    assert report["input"]["before_cut"] == 300
    assert report["input"]["events"] == len(events)  # each event once
    keys = {e["customer_id"] for e in events}
    assert report["keys"]["equal"] == len(keys)
    assert report["windows"]["equal"] > 0
    code, report, stderr = _verify(v1_env)
    assert code == ExitCode.OK, _shown(report) if report else stderr
    assert report["seam"] is None
    assert report["input"]["events"] == len(live)
