"""Scaling: topic → tables with 2 workers in one consumer group, and on 1 partition.

Both reuse what the 1k-key throughput run left: its full 4-partition input topic (read
by a new pipeline version, so by a new consumer group) and its data file (replayed into
a 1-partition topic). Progress is the distinct events processed (the furthest processed
offset per partition), because after a rebalance a partition's new owner reads again
what its old owner had not committed.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from bench.workers import MB, Pipeline, kappa_distinct_events, time_workers

VERSION = 3  # versions 1 and 2 of the pipeline are the throughput run's


def two_workers(pipeline: Pipeline, events: int) -> dict[str, float]:
    workers = [pipeline.worker(VERSION, name) for name in ("worker-a", "worker-b")]
    seconds, peaks = time_workers(workers, "/api/status", kappa_distinct_events, events)
    return {
        "two_workers_eps": events / seconds,
        "two_workers_peak_rss_mb": max(peaks) / MB,
    }


def one_partition(pipeline: Pipeline, data: Path, events: int) -> dict[str, float]:
    single = replace(pipeline, run=uuid.uuid4().hex[:8], partitions=1)
    log = single.work / f"replay-{single.run}.log"
    if single.replay(data, log).wait() != 0:
        raise RuntimeError(log.read_text())
    seconds, (peak,) = time_workers(
        [single.worker(1)], "/api/status", kappa_distinct_events, events
    )
    return {"one_partition_eps": events / seconds, "one_partition_peak_rss_mb": peak / MB}


def measure(pipeline: Pipeline, data: Path, events: int) -> dict[str, float]:
    return {**two_workers(pipeline, events), **one_partition(pipeline, data, events)}
