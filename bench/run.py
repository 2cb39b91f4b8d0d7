"""kappa's benchmark: replay throughput and worker memory, against the physical limit.

    .venv/bin/python -m bench.run               # 200k events on 1k keys
    .venv/bin/python -m bench.run --smoke       # a tiny run that checks the harness works

It starts the project's local Kafka (or uses KAPPA_BOOTSTRAP_SERVERS), generates a
dataset, and measures in one run on this machine:

- P_consume: a bare aiokafka consumer (getmany, counting only) reading the input topic
  after the replay: the physical limit of our stack for reading these events;
- P_decode: the same loop, also decoding each event with orjson;
- replay: ``kappa replay`` file -> input topic, end to end (events/s);
- naive Faust: a plain Faust agent updating a Table once per event (per-key count and
  sum), over the same topic;
- kappa topic → tables: version 2 of the pipeline reading the same, already full topic;
- file → tables: from the start of the replay until a ``kappa worker`` has processed
  every event into its tables (events/s), and the peak RSS of the worker and of the
  replay (which streams the file, so its memory does not grow with the file).

It prints a table with each figure's ratio to P_consume and writes JSON (with the
machine: cores, memory, versions) to bench/results/. It reports; it asserts nothing
about time. Quote medians: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.broker.local import LocalKafka
from app.datagen import DatasetShape, generate, write
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings

ROOT = Path(__file__).resolve().parent.parent
SPEC = """name = "bench{run}"
version = 1
input_topic = "bench-input-{run}"
key = "customer_id"
time_field = "ts"
values = ["amount", "quantity"]
windows = [{{ size = "1h" }}]
lateness = "10m"
retention = "30d"
"""


def _get(port: int, path: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return orjson.loads(response.read())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def consume_all(options: dict[str, Any], topic: str, decode: bool) -> tuple[int, float]:
    """P_consume: read every record of ``topic`` with getmany, counting only; with
    ``decode`` (P_decode), also decoding each value with orjson."""
    ranges = await offset_ranges(options, [topic])
    tps = [TopicPartition(topic, p) for p in ranges[topic]]
    total = sum(end - begin for begin, end in ranges[topic].values())
    consumer = AIOKafkaConsumer(
        **options,
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                seen += len(records)
                if decode:
                    for record in records:
                        orjson.loads(record.value)
        return seen, time.perf_counter() - started
    finally:
        await consumer.stop()


def time_worker(
    command: list[str],
    env: dict[str, str],
    port: int,
    progress: tuple[str, Callable[[Any], int]],
    events: int,
    log_path: Path,
) -> tuple[float, int]:
    """Start a worker over a topic that already holds ``events`` events. Returns the
    seconds from its first processed event to its last (start-up and the consumer
    group's first rebalance are not counted) and its peak RSS in bytes."""
    path, count_of = progress
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    memory = psutil.Process(proc.pid)
    peak_rss = 0
    try:
        first: float | None = None
        while True:
            peak_rss = max(peak_rss, memory.memory_info().rss)
            try:
                done = count_of(_get(port, path))
            except OSError:
                done = 0
            now = time.perf_counter()
            if done and first is None:
                first = now
            if done >= events and first is not None:
                return now - first, peak_rss
            if proc.poll() is not None:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _kappa_count(body: Any) -> int:
    counts = body["counts"]
    return int(counts["events_since_start"] + counts["duplicates_skipped_since_start"])


def run_once(
    settings: KappaSettings, events: int, keys: int, partitions: int, work: Path
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    data = work / f"events-{run}.csv.gz"
    write(generate(DatasetShape(events=events, keys=keys, span_ms=14 * 86_400_000, seed=7)), data)
    spec = work / f"bench-{run}.toml"
    spec.write_text(SPEC.format(run=run))
    port = _free_port()
    env = {
        **os.environ,
        "KAPPA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "KAPPA_PIPELINE": str(spec),
        "KAPPA_WEB_PORT": str(port),
        "KAPPA_PARTITIONS": str(partitions),
        "KAPPA_HOME": str(work / "home"),
        "KAPPA_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    log = (work / f"worker-{run}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    proc = psutil.Process(worker.pid)
    peak_rss = 0
    try:
        while True:
            try:
                if len(_get(port, "/api/status")["partitions_owned"]) == partitions:
                    break
            except OSError:
                time.sleep(0.3)
        started = time.perf_counter()
        with (work / f"replay-{run}.log").open("wb") as replay_log:
            replay = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "replay", str(data)],
                env=env,
                stdout=replay_log,
                stderr=subprocess.STDOUT,
            )
        replay_proc = psutil.Process(replay.pid)
        replay_rss = 0
        replay_s: float | None = None
        while True:
            peak_rss = max(peak_rss, proc.memory_info().rss)
            if replay_s is None:
                if replay.poll() is None:
                    replay_rss = max(replay_rss, replay_proc.memory_info().rss)
                else:
                    replay_s = time.perf_counter() - started
                    if replay.returncode != 0:
                        raise RuntimeError((work / f"replay-{run}.log").read_text())
            counts = _get(port, "/api/status")["counts"]
            done = counts["events_since_start"] + counts["duplicates_skipped_since_start"]
            if done >= events and replay_s is not None:
                break
            time.sleep(0.1)
        worker_s = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
    topic = f"bench-input-{run}"
    # kappa, topic -> tables: version 2 of the pipeline reads the same, already full topic.
    spec_v2 = work / f"bench-{run}-v2.toml"
    spec_v2.write_text(SPEC.format(run=run).replace("version = 1", "version = 2"))
    port_v2 = _free_port()
    env_v2 = {**env, "KAPPA_PIPELINE": str(spec_v2), "KAPPA_WEB_PORT": str(port_v2)}
    kappa_s, kappa_rss = time_worker(
        [sys.executable, "-m", "app.cli", "worker"],
        env_v2,
        port_v2,
        ("/api/status", _kappa_count),
        events,
        work / f"worker-{run}-v2.log",
    )
    naive_port = _free_port()
    naive_env = {
        **env,
        "BENCH_TOPIC": topic,
        "BENCH_PARTITIONS": str(partitions),
        "BENCH_PORT": str(naive_port),
        "BENCH_DIR": str(work / f"naive-{run}"),
    }
    naive_s, naive_rss = time_worker(
        [sys.executable, "-m", "bench.naive_faust"],
        naive_env,
        naive_port,
        ("/processed", lambda body: int(body["processed"])),
        events,
        work / f"naive-{run}.log",
    )
    consumed, consume_s = asyncio.run(consume_all(client_options(settings), topic, False))
    decoded, decode_s = asyncio.run(consume_all(client_options(settings), topic, True))
    assert consumed == decoded == events, (consumed, decoded, events)
    return {
        "events": events,
        "keys": keys,
        "partitions": partitions,
        "p_consume_eps": consumed / consume_s,
        "p_decode_eps": decoded / decode_s,
        "naive_faust_eps": events / naive_s,
        "naive_faust_peak_rss_mb": naive_rss / 2**20,
        "topic_to_tables_eps": events / kappa_s,
        "topic_to_tables_peak_rss_mb": kappa_rss / 2**20,
        "replay_eps": events / replay_s,
        "file_to_tables_eps": events / worker_s,
        "worker_peak_rss_mb": peak_rss / 2**20,
        "replay_peak_rss_mb": replay_rss / 2**20,
    }


def machine() -> dict[str, Any]:
    versions = {
        name: metadata.version(name)
        for name in ("faust-streaming", "aiokafka", "rocksdict", "orjson")
    }
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    parser.add_argument("--smoke", action="store_true", help="2k events, 1 run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.keys, args.repeat = 2_000, 50, 1

    settings = KappaSettings()
    broker = None if settings.uses_external_cluster else LocalKafka(settings)
    started_broker = broker is not None and not all(n.running for n in broker.status())
    if broker is not None:
        broker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="kappa-bench-") as tmp:
            runs = [
                run_once(settings, args.events, args.keys, args.partitions, Path(tmp))
                for _ in range(args.repeat)
            ]
    finally:
        if broker is not None and started_broker:
            broker.stop()

    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    limit = medians["p_consume_eps"]
    print(
        f"\n{args.events:,} events, {args.keys:,} keys, {args.partitions} partitions, "
        f"median of {len(runs)} run(s)"
    )
    print(f"{'measure':<34}{'value':>14}{'÷ P_consume':>14}")
    for label, key in [
        ("P_consume (bare aiokafka)", "p_consume_eps"),
        ("P_decode (aiokafka + orjson)", "p_decode_eps"),
        ("naive Faust: topic → Table", "naive_faust_eps"),
        ("kappa: topic → tables", "topic_to_tables_eps"),
        ("kappa replay: file → topic", "replay_eps"),
        ("kappa file → tables (end to end)", "file_to_tables_eps"),
    ]:
        print(f"{label:<34}{medians[key]:>10,.0f} ev/s{medians[key] / limit:>13.3f}")
    for label, key in [
        ("kappa worker peak RSS (topic)", "topic_to_tables_peak_rss_mb"),
        ("kappa worker peak RSS (replay)", "worker_peak_rss_mb"),
        ("naive Faust peak RSS", "naive_faust_peak_rss_mb"),
    ]:
        print(f"{label:<34}{medians[key]:>11,.0f} MB")
    print(f"{'replay peak RSS':<34}{medians['replay_peak_rss_mb']:>11,.0f} MB")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
        "medians": medians,
    }
    path = args.out / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
