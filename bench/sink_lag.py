"""The PostgreSQL sink behind a worker at its full rate: ``kappa replay`` of a workload's
events (``keys1000`` by default: 100k events on 1,000 keys over 14 days, 1h windows)
into a fresh topic, one worker, and one ``kappa sink postgres`` beside it. Sampled every
0.25 s: the worker's processed events, and the sink's lag (records of the results and
``keys`` changelog topics not yet in PostgreSQL).

    .venv/bin/python -m bench.sink_lag --workload keys1000 --events 100000

It reports the worker's rate, the records the sink wrote per second, the sink's largest
lag, and how long after the worker's last event the sink's lag reached 0. It asserts
nothing about time. KAPPA_POSTGRES_URL, or the project's local PostgreSQL, and the
project's local Kafka (or KAPPA_BOOTSTRAP_SERVERS).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from app.postgres.local import LocalPostgres
from app.settings import KappaSettings
from app.sink.versions import survey_sink
from bench.throughput import dataset
from bench.workers import BenchPipeline, broker_running, get_json, started, stop, wait_owned
from bench.workloads import parse_workload


def measure(
    settings: KappaSettings, workload_name: str, events: int, partitions: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kappa-sink-bench-") as tmp:
        work = Path(tmp)
        workload = parse_workload(workload_name, events)
        data = dataset(work, workload.events, workload.keys)
        pipeline = BenchPipeline(settings, work, uuid.uuid4().hex[:8], partitions, workload)
        worker = pipeline.worker(1, "sink-bench")
        schema = f"bench_{pipeline.run}"
        sink_env = {
            **worker.env,
            "KAPPA_POSTGRES_URL": settings.resolved_postgres_url,
            "KAPPA_POSTGRES_SCHEMA": schema,
            "KAPPA_SINK_METRICS_PORT": "0",
        }
        procs = [started(worker)]
        try:
            wait_owned(worker.port, partitions, procs[0], worker.log)
            with (work / "sink.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "app.cli", "sink", "postgres"],
                        env=sink_env, stdout=log, stderr=subprocess.STDOUT,
                    )
                )  # fmt: skip
            replay = pipeline.replay(data, work / "replay.log")
            return _watch(settings, pipeline, worker.port, schema, workload.events, replay, procs)
        finally:
            stop(procs)


def _watch(
    settings: KappaSettings,
    pipeline: BenchPipeline,
    port: int,
    schema: str,
    events: int,
    replay: subprocess.Popen[bytes],
    procs: list[subprocess.Popen[bytes]],
) -> dict[str, float]:
    name = f"bench{pipeline.run}"
    url = settings.resolved_postgres_url
    in_schema = settings.model_copy(update={"postgres_schema": schema})
    began = time.monotonic()
    worker_done: float | None = None
    sink_started: float | None = None
    most_lag = 0
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a process exited ({proc.args!r})")
        try:
            status = get_json(port, "/api/status")
        except OSError:  # a busy worker's status may time out: the next sample will do
            continue
        processed = sum(offset + 1 for offset in status["processed_offsets"].values())
        found = asyncio.run(survey_sink(in_schema, name, [1]))
        lag = None if found is None or found.error else found.lags[1].total
        now = time.monotonic()
        if lag is not None:
            sink_started = sink_started or now
            most_lag = max(most_lag, lag)
        if worker_done is None and processed >= events:
            worker_done = now
        if worker_done is not None and lag == 0 and replay.poll() is not None:
            break
        time.sleep(0.25)
    written = _records_written(url, schema)
    return {
        "events": events,
        "worker_eps": events / (worker_done - began),
        "sink_records": written,
        "sink_records_per_s": written / (now - (sink_started or began)),
        "sink_max_lag_records": most_lag,
        "sink_behind_worker_s": now - worker_done,
    }


def _records_written(url: str, schema: str) -> int:
    """Kafka records the sink has written (its stored offsets; the topics start at 0)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT sum(next_offset) FROM {}").format(
                sql.Identifier(schema, "sink_offsets")
            )
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="keys1000")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    settings = KappaSettings()
    if settings.postgres_url is None:
        LocalPostgres(settings).start()
    with broker_running(settings):
        figures = measure(settings, args.workload, args.events, args.partitions)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
