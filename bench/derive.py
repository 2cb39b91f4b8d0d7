"""The map step's cost: kappa with two derived values and a filter keeping about half the
events, against kappa without them, and Quix Streams doing the same, in the same run.

    .venv/bin/python -m bench.derive [--events 100000] [--runs 3]

One generated dataset is replayed once into an input topic; then, interleaved in each
run so that they share the machine's load, each of four consumers reads that full topic
into its tables from a fresh group: kappa's plain spec (``amount`` and ``quantity``),
kappa's derive spec (``total = amount + quantity``, ``value = amount * quantity``,
``where = "second(ts) < 30"``), Quix plain and Quix derive (bench.quix_peer with
``BENCH_DERIVE``). Rates are events read per second (filtered events included), timed
by the consumers' own clocks from their first event to their last (bench.workers);
medians of ``--runs``. It reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

from app.settings import KappaSettings
from bench import peer, throughput
from bench.workers import (
    SPEC,
    BenchPipeline,
    Progress,
    Worker,
    broker_running,
    processed,
    started,
    stop,
    time_workers,
    wait_owned,
)
from bench.workers import kappa_distinct_events as kappa
from bench.workloads import parse_workload

STATUS, PROCESSED = "/api/status", "/processed"  # kappa's and the peers' progress
# The bench spec with two derived values, aggregated instead of the input's, and a where.
DERIVE_SPEC = SPEC.replace(
    'values = ["amount", "quantity"]\n',
    'values = ["total", "value"]\n'
    'fields = {{ amount = "double", quantity = "double" }}\n'
    'where = "second(ts) < 30"\n',
) + (
    '\n[[derive]]\nname = "total"\nexpr = "amount + quantity"\n'
    '\n[[derive]]\nname = "value"\nexpr = "amount * quantity"\n'
)


def fill(pipeline: BenchPipeline, data: Path, events: int) -> None:
    """Replay ``data`` into the input topic while version 1 runs (which creates it)."""
    worker = pipeline.worker(1, "fill")
    proc = started(worker)
    try:
        wait_owned(worker.port, pipeline.partitions, proc, worker.log)
        replay = pipeline.replay(data, pipeline.work / f"replay-{pipeline.run}.log")
        while replay.poll() is None:
            time.sleep(0.2)
        if replay.returncode != 0:
            raise RuntimeError(f"the replay of {data} failed")
    finally:
        stop([proc])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = KappaSettings()
    workload = parse_workload(f"keys{args.keys}", args.events)
    with broker_running(settings), tempfile.TemporaryDirectory(prefix="kappa-derive-") as tmp:
        work = Path(tmp)
        data = throughput.dataset(work, args.events, args.keys)
        run = uuid.uuid4().hex[:8]
        plain = BenchPipeline(settings, work, run, args.partitions, workload, SPEC)
        derived = BenchPipeline(settings, work, run, args.partitions, workload, DERIVE_SPEC)
        fill(plain, data, args.events)
        quix = [str(peer.python()), "-m", "bench.quix_peer"]
        rates: dict[str, list[float]] = {}
        for index in range(args.runs):
            version = 2 + 2 * index  # a fresh consumer group per measure
            quix_derive = derived.peer(quix, f"quix-derive-{index}")
            quix_derive = replace(quix_derive, env={**quix_derive.env, "BENCH_DERIVE": "1"})
            measures: list[tuple[str, Worker, str, Progress]] = [
                ("kappa plain", plain.worker(version, f"plain-{index}"), STATUS, kappa),
                (
                    "kappa derive+filter",
                    derived.worker(version + 1, f"derive-{index}"),
                    STATUS,
                    kappa,
                ),
                ("quix plain", plain.peer(quix, f"quix-plain-{index}"), PROCESSED, processed),
                ("quix derive+filter", quix_derive, PROCESSED, processed),
            ]
            for name, worker, path, progress in measures:
                seconds = time_workers([worker], path, progress, args.events).seconds
                rates.setdefault(name, []).append(args.events / seconds)
                print(f"run {index + 1}: {name}: {args.events / seconds:,.0f} ev/s", flush=True)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        for name, rate in medians.items():
            print(f"{name}: {rate:,.0f} ev/s (median of {args.runs})")
        for system in ("kappa", "quix"):
            ratio = medians[f"{system} derive+filter"] / medians[f"{system} plain"]
            print(f"{system}: derive+filter / plain = {ratio:.2f}")


if __name__ == "__main__":
    main()
