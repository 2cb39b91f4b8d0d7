"""One partition's processor on real RocksDB stores, without Kafka: the window work alone.

    .venv/bin/python -m bench.processor_only --windows 1h --keys 20000 --events 200000
    .venv/bin/python -m bench.processor_only --windows 1h,1d/1h --keys 20000 --runs 3

Events on ``--keys`` keys (uniformly drawn), times rising over ``--hours`` hours with a
few minutes of disorder, one adversarial float value; applied in batches of ``--batch``
and stored (``store_batch``, changelog acknowledged in memory) every ``--store-every``
events, as a worker's flush would; garbage is collected as the worker collects it
(``bench.collection``). Each run is its own process, so its peak RSS
(``ru_maxrss``, the VmHWM the issue reports) is its own. Prints one JSON line per run and
the medians; it reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agents.events import Event
from agents.processor import PartitionProcessor
from bench.collection import TimedCollection
from tables.aggregation_config import AggregationConfig
from tables.partition_state import store_batch
from tables.windows import WindowKind, aligned_window
from tests.support.stores import AcknowledgingSender, offline_tables

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
_UNITS = {"m": MINUTE_MS, "h": HOUR_MS, "d": 24 * HOUR_MS}


def _duration(text: str) -> int:
    return int(text[:-1]) * _UNITS[text[-1]]


def parse_windows(text: str) -> tuple[WindowKind, ...]:
    """``1h,1d/1h``: sizes, each with an optional step."""
    windows = []
    for name in text.split(","):
        size, _, step = name.partition("/")
        windows.append(aligned_window(name, _duration(size), _duration(step or size)))
    return tuple(windows)


def events(keys: int, count: int, hours: int, seed: int) -> list[tuple[int, Event]]:
    rng = random.Random(seed)
    span = hours * HOUR_MS
    out = []
    for offset in range(count):
        ts = offset * span // count + rng.randrange(5 * MINUTE_MS)
        value = rng.uniform(-1e6, 1e6) * 10.0 ** rng.randrange(-8, 8)
        out.append((offset, Event(f"k{rng.randrange(keys)}", ts, (value,), {})))
    return out


def run_once(args: argparse.Namespace) -> dict[str, float]:
    config = AggregationConfig(
        value_names=("v",),
        metrics=("count", "sum", "min", "max", "mean"),
        windows=parse_windows(args.windows),
        lateness_ms=10 * MINUTE_MS,
        retention_ms=30 * 24 * HOUR_MS,
    )
    stream = events(args.keys, args.events, args.hours, args.seed)
    sender = AcknowledgingSender()
    closed = 0
    with tempfile.TemporaryDirectory() as tmp, offline_tables(Path(tmp)) as tables:
        state = tables.partition_state(1)
        processor = PartitionProcessor(config, state, 1)
        collection = TimedCollection()
        began, cpu_began = time.perf_counter(), time.process_time()
        for at in range(0, len(stream), args.batch):
            batch = stream[at : at + args.batch]
            closed += len(processor.apply(batch).closed)
            processor.checkpoint(batch[-1][0])
            collection.tick()
            if (at + args.batch) % args.store_every < args.batch:
                asyncio.run(store_batch([state], sender))
                sender.sends.clear()
        asyncio.run(store_batch([state], sender))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
        collection.finish()
    return {
        "events_per_s": round(args.events / elapsed),
        # Steadier than the wall-clock rate on a machine shared with other work.
        "events_per_cpu_s": round(args.events / cpu),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "closed_windows": closed,
        "longest_gc_s": round(collection.longest_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="1h", help="e.g. 1h or 1h,1d/1h")
    parser.add_argument("--keys", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--hours", type=int, default=72, help="event-time span")
    parser.add_argument("--batch", type=int, default=2_000, help="events per apply")
    parser.add_argument("--store-every", type=int, default=20_000, help="events per store")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="runs, each its own process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_once(args)))
        return 0
    child = [sys.executable, "-m", "bench.processor_only", "--child", *(argv or sys.argv[1:])]
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    medians = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    print(json.dumps({"windows": args.windows, "keys": args.keys, "median": medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
