"""Scaling: 1 worker against 2 workers in one consumer group, and 4 partitions
against 1.

Workers against workers: each group is started on a fresh 4-partition topic and left to
settle (every worker owning its share), then the 1k-key data file is replayed into it,
and the group is timed from its first processed event to its last. Started on a full
topic instead, two workers would spend part of the run in the rebalance that the
second one's arrival causes. Progress is the distinct events processed (the furthest
processed offset per partition).

Partitions against partitions: the data file replayed into a 1-partition topic, read by
one worker, against the 4-partition topic → tables run.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from bench.workers import (
    MB,
    BenchPipeline,
    kappa_distinct_events,
    started,
    stop,
    time_workers,
    wait_settled,
    watch,
)


def _group(pipeline: BenchPipeline, data: Path, events: int, names: list[str]) -> tuple[float, int]:
    """Seconds and the largest peak RSS of a settled group of workers over a replay."""
    fresh = replace(pipeline, run=uuid.uuid4().hex[:8])
    workers = [fresh.worker(1, name) for name in names]
    procs = [started(worker) for worker in workers]
    try:
        wait_settled(workers, procs, fresh.partitions)
        log = fresh.work / f"replay-{fresh.run}.log"
        replay = fresh.replay(data, log)
        timed = watch(workers, procs, "/api/status", kappa_distinct_events, events)
        if replay.wait() != 0:
            raise RuntimeError(log.read_text())
        return timed.seconds, max(timed.peak_rss)
    finally:
        stop(procs)


def workers(pipeline: BenchPipeline, data: Path, events: int) -> dict[str, float]:
    one_s, one_peak = _group(pipeline, data, events, ["worker-a"])
    two_s, two_peak = _group(pipeline, data, events, ["worker-a", "worker-b"])
    return {
        "one_worker_eps": events / one_s,
        "one_worker_peak_rss_mb": one_peak / MB,
        "two_workers_eps": events / two_s,
        "two_workers_peak_rss_mb": two_peak / MB,
    }


def one_partition(pipeline: BenchPipeline, data: Path, events: int) -> dict[str, float]:
    single = replace(pipeline, run=uuid.uuid4().hex[:8], partitions=1)
    log = single.work / f"replay-{single.run}.log"
    if single.replay(data, log).wait() != 0:
        raise RuntimeError(log.read_text())
    timed = time_workers([single.worker(1)], "/api/status", kappa_distinct_events, events)
    (peak,) = timed.peak_rss
    return {"one_partition_eps": events / timed.seconds, "one_partition_peak_rss_mb": peak / MB}


def measure(pipeline: BenchPipeline, data: Path, events: int) -> dict[str, float]:
    return {**workers(pipeline, data, events), **one_partition(pipeline, data, events)}
