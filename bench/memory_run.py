"""A bench-style run of one partition's processor on real RocksDB tables, for memory.

Run as a process of its own (``python -m bench.memory_run``), so that its peak
RSS (``VmHWM`` in ``/proc/self/status``) is the run's alone. It applies generated events,
one event per key in turn, in fetch-sized chunks, and stores them as the worker does
(``store_batch`` into the pipeline's RocksDB tables, with the worker's store options and
budgets from ``KappaSettings``), with a changelog sender that acknowledges and forgets.
No Kafka: the changelog records are counted, not sent. Garbage is collected as the
worker collects it (``bench.collection``); the longest collection is reported.

Values are adversarial (magnitudes from 1e-3 to 1e12 with signs, so a plain float sum is
not the correctly rounded one). For ``--sample`` keys, a plain Python fold (``math.fsum``,
window starts by integer arithmetic) written here gives the expected totals and closed
windows, and the run compares the stored ones against it. It prints one JSON line:
events, keys, peak RSS, rate and the number of sample mismatches.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import tracemalloc
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import faust
import orjson

from agents.events import Event
from agents.processor import PartitionProcessor
from agents.spec import parse_spec
from agents.stages.flush import CommitPolicy
from app.settings import KappaSettings
from app.worker import pipeline_options
from bench.collection import TimedCollection
from tables.aggregation_config import AggregationConfig
from tables.faust_store import Appended
from tables.partition_state import store_batch
from tables.pipeline_tables import STORE_URL, PipelineTables

ROOT = Path(__file__).resolve().parent.parent
HOUR_MS = 3_600_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
WINDOWS = {"tumbling": [{"size": "1h"}], "hopping": [{"size": "1h"}, {"size": "1d", "step": "1h"}]}
PARTITION = 0


class ForgettingSender:
    """A changelog sender that acknowledges every send at once, keeping nothing but the
    next offset per (topic, partition)."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = defaultdict(int)
        self._queued: dict[tuple[str, int], int] = defaultdict(int)

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._queued[(topic, partition)] += 1

    async def send(self) -> dict[tuple[str, int], Appended]:
        acked = {
            tp: Appended(self._next[tp], self._next[tp] + n - 1, True)
            for tp, n in self._queued.items()
        }
        for tp, n in self._queued.items():
            self._next[tp] += n
        self._queued.clear()
        return acked


def vm_hwm_bytes() -> int:
    """This process's peak resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def generated(keys: int, events: int, hours: int, seed: int) -> Iterator[tuple[str, int, float]]:
    """``events`` events over ``keys`` keys in turn, event times rising evenly over
    ``hours`` hours, with adversarial values."""
    rng = random.Random(seed)
    span = hours * HOUR_MS
    for i in range(events):
        value = rng.choice((-1, 1)) * rng.uniform(1, 10) * 10.0 ** rng.randint(-3, 12)
        yield f"k{i % keys}", START_MS + span * i // events, value


def window_starts(ts: int, size_ms: int, step_ms: int) -> list[int]:
    """The starts of the epoch-aligned windows holding ``ts`` (integer arithmetic)."""
    last = ts - ts % step_ms
    return list(range(last, ts - size_ms, -step_ms))


class SampleFold:
    """The expected totals and windows of the sample keys: a plain Python fold."""

    def __init__(self, windows: Sequence[tuple[str, int, int]]) -> None:
        self.windows = windows
        self.totals: dict[str, list[float]] = defaultdict(list)
        self.in_windows: dict[tuple[str, str, int], list[float]] = defaultdict(list)

    def add(self, key: str, ts: int, value: float) -> None:
        self.totals[key].append(value)
        for name, size, step in self.windows:
            for start in window_starts(ts, size, step):
                self.in_windows[(key, name, start)].append(value)

    @staticmethod
    def expected(values: list[float]) -> dict[str, Any]:
        total = math.fsum(values)
        return {
            "count": len(values),
            "values": {
                "x": {
                    "sum": total,
                    "min": min(values),
                    "max": max(values),
                    "mean": total / len(values),
                }
            },
        }


def mismatches(
    fold: SampleFold, processor: PartitionProcessor, config: AggregationConfig, watermark: int
) -> list[str]:
    """What the stored state says differently from the fold, for the sample keys."""
    state: Any = processor.state
    found: list[str] = []
    for key, values in fold.totals.items():
        record = state.get_key(key)
        got = None if record is None else record.totals.result(config.value_names, config.metrics)
        if got != fold.expected(values):
            found.append(f"totals of {key}: {got} != {fold.expected(values)}")
    sizes = {name: size for name, size, _ in fold.windows}
    for (key, name, start), values in fold.in_windows.items():
        if start + sizes[name] > watermark:
            continue  # still open
        got = state.get_closed(key, name, start)
        if got is None or got.get("values") != fold.expected(values)["values"]:
            found.append(f"window {name}@{start} of {key}: {got}")
    return found


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = KappaSettings()
    options = pipeline_options(settings)
    spec = parse_spec(
        {
            "name": "memory",
            "version": 1,
            "input_topic": "memory-input",
            "key": "k",
            "time_field": "t",
            "values": ["x"],
            "windows": WINDOWS[args.windows],
            "lateness": "0s",
            "retention": "30d",
        },
        "memory_run",
    )
    config = AggregationConfig(
        value_names=spec.values,
        metrics=spec.metrics,
        windows=spec.windows,
        lateness_ms=spec.lateness_ms,
        retention_ms=spec.retention_ms,
    )
    app = faust.App(
        f"memory-{uuid.uuid4().hex[:8]}",
        broker="kafka://127.0.0.1:9",  # never connected: the app is not started
        store=STORE_URL,
        datadir=str(args.datadir),
    )
    tables = PipelineTables.declare(app, 1, options.store, options.key_cache_bytes)
    policy = options.commit
    processor = PartitionProcessor(
        config, tables.partition_state(PARTITION), PARTITION, policy.buffer_bytes
    )
    sender = ForgettingSender()
    sample_every = max(1, args.keys // args.sample) if args.sample else 0
    fold = SampleFold([(w.name, w.size_ms, w.step_ms) for w in config.paned])
    baseline = vm_hwm_bytes()
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)
    collection = TimedCollection()
    started = time.perf_counter()
    cpu_started = time.process_time()
    chunk: list[tuple[int, Event]] = []
    rocksdb_peak = 0
    last_ts = START_MS
    for offset, (key, ts, value) in enumerate(
        generated(args.keys, args.events, args.hours, args.seed)
    ):
        chunk.append((offset, Event(key, ts, (value,), {})))
        last_ts = ts
        if sample_every and int(key[1:]) % sample_every == 0:
            fold.add(key, ts, value)
        if len(chunk) == args.chunk:
            apply(processor, chunk)
            chunk = []
            collection.tick()
            # As the batch loop: a store when due, and between the steps of a closing.
            while True:
                if due(processor, policy):
                    await store_batch([processor.state], sender)  # type: ignore[list-item]
                    rocksdb_peak = max(rocksdb_peak, tables.rocksdb.usage())
                if not processor.closing:
                    break
                processor.close_step()
            if args.progress and offset % (args.chunk * 100) == args.chunk * 100 - 1:
                print(
                    f"{offset + 1:,} events, peak RSS {vm_hwm_bytes() / 2**20:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
    if chunk:
        apply(processor, chunk)
    while True:
        await store_batch([processor.state], sender)  # type: ignore[list-item]
        if not processor.closing:
            break
        processor.close_step()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    collection.finish()
    rocksdb_peak = max(rocksdb_peak, tables.rocksdb.usage())
    python_peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
    if args.tracemalloc:
        for stat in tracemalloc.take_snapshot().statistics("lineno")[:10]:
            print(
                f"{stat.size / 2**20:.1f} MB in {stat.count} blocks at {stat.traceback}",
                file=sys.stderr,
            )
    watermark = last_ts - config.lateness_ms
    wrong = mismatches(fold, processor, config, watermark) if sample_every else []
    return {
        "keys": args.keys,
        "events": args.events,
        "windows": args.windows,
        "peak_rss_mb": vm_hwm_bytes() / 2**20,
        "baseline_rss_mb": baseline / 2**20,
        # RocksDB's block cache and memtables (sampled at each store), and with
        # --tracemalloc Python's own allocations, at their peaks.
        "rocksdb_peak_mb": rocksdb_peak / 2**20,
        "python_peak_mb": None if python_peak is None else python_peak / 2**20,
        "events_per_s": args.events / seconds,
        # Per second of the process's CPU time: steadier than the wall clock on a shared
        # machine (RocksDB's own threads count too).
        "events_per_cpu_s": args.events / cpu_seconds,
        "longest_gc_s": collection.longest_s,
        "sample_keys": len(fold.totals),
        "sample_windows": len(fold.in_windows),
        "mismatches": len(wrong),
        "first_mismatches": wrong[:5],
    }


def apply(processor: PartitionProcessor, chunk: list[tuple[int, Event]]) -> None:
    """Apply a chunk and checkpoint it, as the aggregate stage does."""
    processor.apply(chunk)
    processor.checkpoint(chunk[-1][0])


def due(processor: PartitionProcessor, policy: CommitPolicy) -> bool:
    """Whether the flusher would store now (``Flusher.due``, but for the time and the
    outputs, which this run has none of): by the held changes or their bytes."""
    state = processor.state
    held: int = state.held_changes()  # type: ignore[attr-defined]
    return held >= policy.events or state.held_bytes() >= policy.buffer_bytes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--hours", type=int, default=48, help="event-time span of the run")
    parser.add_argument("--windows", choices=sorted(WINDOWS), default="tumbling")
    parser.add_argument("--datadir", type=Path, required=True)
    parser.add_argument(
        "--chunk", type=int, default=2_000, help="events per apply (about one fetch's worth)"
    )
    parser.add_argument("--sample", type=int, default=0, help="keys checked against a fold")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--tracemalloc", type=int, default=0, metavar="FRAMES", help="trace Python's allocations"
    )
    print(orjson.dumps(asyncio.run(run(parser.parse_args(argv)))).decode(), flush=True)


if __name__ == "__main__":
    main()
