"""Throughput on one dataset: the physical limit, kappa, and the two peers.

- P_consume: a bare aiokafka consumer (getmany, counting only) reading the input topic
  after the replay: the physical limit of our stack for reading these events;
- P_decode: the same loop, also decoding each event with orjson;
- replay: ``kappa replay`` file -> input topic, end to end (events/s);
- naive Faust: a plain Faust agent updating a Table once per event, over the same topic;
- Quix Streams: the same aggregation in Quix (bench.quix_peer), over the same topic;
- kappa topic → tables: version 2 of the pipeline reading the same, already full topic,
  and the share of that run the worker spent in each stage of its hot path, by its own
  counters (``/api/status`` ``stages``); with a baseline tree, version 3 run from that
  tree (another commit's code) over the same topic too;
- unkeyed: the same events with null record keys, through kappa's repartition hop and
  through Quix's ``group_by`` (bench.unkeyed);
- file → tables: from the start of the replay until a ``kappa worker`` has processed
  every event into its tables (events/s), and the peak RSS of the worker and of the
  replay (which streams the file, so its memory does not grow with the file);
- the batch anchor: DuckDB's single-thread time for the same aggregation over the same
  file (bench.anchor);
- on a sessions workload, the cross-check that kappa and Quix computed DuckDB's sessions
  (bench.session_check).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.names import PipelineNames
from agents.spec import load_spec
from app.datagen import DatasetShape, generate, write
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings
from bench import anchor, peer, produce, session_check, unkeyed
from bench.wide import generate_wide
from bench.workers import (
    MB,
    BenchPipeline,
    Seen,
    Worker,
    answer,
    kappa_distinct_events,
    processed,
    run_from,
    started,
    stop,
    time_workers,
    wait_owned,
)
from bench.workloads import Workload

# The worker's hot-path stages (``/api/status`` ``stages``, cumulative seconds);
# ack_wait is the part of store spent waiting for Kafka's acknowledgements.
STAGES = ("fetch", "decode", "aggregate", "store", "ack_wait")


def dataset(work: Path, events: int, keys: int, wide: bool = False) -> Path:
    """``events`` generated orders on ``keys`` keys over 14 days, as CSV.gz; ``wide``:
    the same orders as bench.wide's 20-field records, as JSON Lines (.jsonl.gz)."""
    shape = DatasetShape(events=events, keys=keys, span_ms=14 * 86_400_000, seed=7)
    if wide:
        path = work / f"wide-{events}-{keys}.jsonl.gz"
        write(generate_wide(shape), path)
    else:
        path = work / f"events-{events}-{keys}.csv.gz"
        write(generate(shape), path)
    return path


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


def file_to_tables(pipeline: BenchPipeline, data: Path, events: int) -> dict[str, float]:
    """Replay ``data`` while version 1's worker runs: replay and end-to-end rates, and
    both processes' peak RSS."""
    worker = pipeline.worker(1)
    proc = started(worker)
    try:
        wait_owned(worker.port, pipeline.partitions, proc, worker.log)
        memory = psutil.Process(proc.pid)
        peak_rss = replay_rss = 0
        replay_s: float | None = None
        unanswered = 0
        log = pipeline.work / f"replay-{pipeline.run}.log"
        began = time.time()  # the worker reports when it stored its last batch, in epoch s
        replay = pipeline.replay(data, log)
        replay_proc = psutil.Process(replay.pid)
        while True:
            peak_rss = max(peak_rss, memory.memory_info().rss)
            if replay_s is None:
                if replay.poll() is None:
                    replay_rss = max(replay_rss, replay_proc.memory_info().rss)
                else:
                    replay_s = time.time() - began
                    if replay.returncode != 0:
                        raise RuntimeError(log.read_text())
            status = answer(worker.port, "/api/status")
            if status is None:  # not answered in time: counted below, the next one will do
                if proc.poll() is not None:
                    raise RuntimeError(worker.log.read_text()[-3000:])
                unanswered += 1
                continue
            seen = kappa_distinct_events([status])
            if replay_s is not None and seen.events >= events and seen.last_at is not None:
                break
            time.sleep(0.1)
        worker_s = seen.last_at - began
    finally:
        stop([proc])
    return {
        "replay_eps": events / replay_s,
        "file_to_tables_eps": events / worker_s,
        "file_to_tables_s": worker_s,
        "worker_peak_rss_mb": peak_rss / MB,
        "replay_peak_rss_mb": replay_rss / MB,
        "file_to_tables_longest_stall_s": longest_stall(status),
        "file_to_tables_unanswered_status": unanswered,
    }


def peer_figures(prefix: str, worker: Worker, events: int) -> dict[str, float]:
    """A peer's figures over the full input topic."""
    return time_workers([worker], "/processed", processed, events).figures(prefix, events)


def longest_stall(status: Any) -> float:
    """The longest time the worker's event loop was held at once, from its status."""
    return float(status["event_loop"]["longest_stall_s"])


def stage_shares(status: Any, seconds: float) -> dict[str, float]:
    """Each stage's share of a run of ``seconds``, from a fresh worker's status."""
    stages = status["stages"]
    return {
        f"topic_to_tables_{stage}_share": float(stages[f"{stage}_s"]) / seconds for stage in STAGES
    }


def run_once(
    settings: KappaSettings,
    workload: Workload,
    data: Path,
    partitions: int,
    work: Path,
    baseline: Path | None = None,
) -> tuple[dict[str, float], BenchPipeline]:
    """Every throughput figure for one workload's dataset (with ``baseline``, a kappa
    tree whose worker is measured topic → tables too); returns them and the pipeline,
    whose input topic later measures reuse."""
    events = workload.events
    pipeline = BenchPipeline(settings, work, uuid.uuid4().hex[:8], partitions, workload)
    figures = file_to_tables(pipeline, data, events)
    # kappa, topic -> tables: version 2 of the pipeline reads the same, already full topic.
    last: list[Any] = []

    def progress(bodies: Sequence[Any | None]) -> Seen:
        last[:] = bodies
        return kappa_distinct_events(bodies)

    kappa_sessions: session_check.Sessions = {}
    wanted = session_check.expected(data, workload) if workload.sessions else {}

    def read_sessions(workers: Sequence[Worker]) -> None:
        if workload.sessions:
            keys = session_check.sample(wanted)
            kappa_sessions.update(session_check.kappa_sessions(workers[0], keys, workload))

    kappa = time_workers([pipeline.worker(2)], "/api/status", progress, events, read_sessions)
    figures |= kappa.figures("topic_to_tables", events)
    if baseline is not None:
        before = run_from(pipeline.worker(3, "baseline"), baseline)
        before_timed = time_workers([before], "/api/status", kappa_distinct_events, events)
        figures |= before_timed.figures("baseline_topic_to_tables", events)
    figures.update(unkeyed.measure(pipeline, events))
    naive = pipeline.peer([sys.executable, "-m", "bench.naive_faust"], "naive")
    figures |= peer_figures("naive_faust", naive, events)
    quix = pipeline.peer([str(peer.python()), "-m", "bench.quix_peer"], "quix")
    figures |= peer_figures("quix", quix, events)
    options = client_options(settings)
    if workload.sessions:
        quix_sessions = session_check.quix_sessions(options, pipeline.topic)
        figures |= session_check.check(
            workload, wanted, kappa_sessions, quix_sessions, partitions=pipeline.partitions
        )
    consumed, consume_s = asyncio.run(consume_all(options, pipeline.topic, False))
    decoded, decode_s = asyncio.run(consume_all(options, pipeline.topic, True))
    assert consumed == decoded == events, (consumed, decoded, events)
    results_topic = PipelineNames(load_spec(pipeline.spec(2))).results_topic
    figures |= produce.measure(options, results_topic, events)
    return {
        **figures,
        "p_consume_eps": consumed / consume_s,
        "p_decode_eps": decoded / decode_s,
        **stage_shares(last[0], kappa.seconds),
        "topic_to_tables_longest_stall_s": longest_stall(last[0]),
        "duckdb_s": anchor.duckdb_seconds(data, workload),
    }, pipeline
