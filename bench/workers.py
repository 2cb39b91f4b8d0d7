"""The benchmark's pipelines and worker processes, and the clock that times them.

Every measure that runs a worker (kappa, naive Faust, Quix) goes through
``time_workers``: it starts the processes over a topic that is already full and times
them from their first processed event to their last, by the times they report, so
start-up and the consumer group's first rebalance are not counted.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import psutil

from app.broker.local import LocalKafka
from app.ports import free_port
from app.settings import KappaSettings
from bench.workloads import Workload

MB = 2**20
ROOT = Path(__file__).resolve().parent.parent
SPEC = """name = "bench{run}"
version = {version}
input_topic = "bench-input-{run}"
key = "customer_id"
time_field = "ts"
values = ["amount", "quantity"]
windows = [{windows}]
lateness = "10m"
retention = "30d"
"""


@dataclass(frozen=True)
class Seen:
    """What a group of workers reports: the events processed, and (epoch seconds, by
    their own clocks) when they began the first and finished the last."""

    events: int
    first_at: float | None
    last_at: float | None


# Reads the workers' answers to their progress endpoint (None while one does not answer).
Progress = Callable[[Sequence[Any | None]], Seen]


def _span(
    bodies: Sequence[Any], first: Callable[[Any], Any], last: Callable[[Any], Any]
) -> tuple[float | None, float | None]:
    firsts = [at for at in map(first, bodies) if at is not None]
    lasts = [at for at in map(last, bodies) if at is not None]
    return (min(firsts) if firsts else None), (max(lasts) if lasts else None)


@contextlib.contextmanager
def broker_running(settings: KappaSettings) -> Iterator[None]:
    """The project's local Kafka, started if it is not running (and then stopped at the
    end), unless KAPPA_BOOTSTRAP_SERVERS names a cluster."""
    broker = None if settings.uses_external_cluster else LocalKafka(settings)
    started = broker is not None and not all(n.running for n in broker.status())
    if broker is not None:
        broker.start()
    try:
        yield
    finally:
        if broker is not None and started:
            broker.stop()


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return orjson.loads(response.read())


@dataclass(frozen=True)
class Worker:
    command: list[str]
    env: dict[str, str]
    port: int
    log: Path


@dataclass(frozen=True)
class BenchPipeline:
    """One generated pipeline of the benchmark: its input topic, spec files and the
    environment of its workers. Each version reads the same input topic afresh."""

    settings: KappaSettings
    work: Path
    run: str
    partitions: int
    workload: Workload
    # The spec's text, formatted with run, version and windows (bench.derive has its own).
    template: str = SPEC

    @property
    def topic(self) -> str:
        return f"bench-input-{self.run}"

    def spec(self, version: int) -> Path:
        path = self.work / f"bench-{self.run}-v{version}.toml"
        windows = self.workload.windows_toml
        path.write_text(self.template.format(run=self.run, version=version, windows=windows))
        return path

    def env(self, version: int, port: int, name: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAPPA_BOOTSTRAP_SERVERS": self.settings.bootstrap,
            "KAPPA_PIPELINE": str(self.spec(version)),
            "KAPPA_WEB_PORT": str(port),
            "KAPPA_PARTITIONS": str(self.partitions),
            # One home per worker process: two workers on one host need separate state.
            "KAPPA_HOME": str(self.work / f"home-{name}"),
            "KAPPA_LOG_LEVEL": "warning",
            "PYTHONPATH": str(ROOT),
        }

    def worker(self, version: int, name: str = "worker") -> Worker:
        port = free_port()
        return Worker(
            [sys.executable, "-m", "app.cli", "worker"],
            self.env(version, port, name),
            port,
            self.work / f"{name}-{self.run}-v{version}.log",
        )

    def peer(self, command: list[str], name: str) -> Worker:
        """A peer's process (bench.naive_faust, bench.quix_peer) over the input topic: it
        reports its processed count at ``/processed``."""
        port = free_port()
        env = {
            **self.env(1, port, name),
            "BENCH_TOPIC": self.topic,
            "BENCH_PARTITIONS": str(self.partitions),
            "BENCH_WINDOW_MS": str(self.workload.size_ms),
            "BENCH_STEP_MS": str(self.workload.step_ms),
            "BENCH_GAP_MS": str(self.workload.gap_ms),
            "BENCH_PORT": str(port),
            "BENCH_DIR": str(self.work / f"{name}-{self.run}"),
        }
        return Worker(command, env, port, self.work / f"{name}-{self.run}.log")

    def replay(self, data: Path, log: Path) -> subprocess.Popen[bytes]:
        """``kappa replay`` of ``data`` into the input topic (creating it if need be)."""
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "app.cli", "replay", str(data)],
                env=self.env(1, free_port(), "replay"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def run_from(worker: Worker, tree: Path) -> Worker:
    """``worker`` run from another kappa tree (e.g. another commit's, by ``git
    archive``): its code first on the path, and not this one's from the working
    directory (PYTHONSAFEPATH)."""
    return replace(worker, env={**worker.env, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"})


def processed(bodies: Sequence[Any | None]) -> Seen:
    """What the peers report at their ``/processed``."""
    answered = [body for body in bodies if body is not None]
    first_at, last_at = _span(answered, lambda b: b["first_at"], lambda b: b["last_at"])
    return Seen(sum(int(body["processed"]) for body in answered), first_at, last_at)


def kappa_distinct_events(bodies: Sequence[Any | None]) -> Seen:
    """Distinct events stored by a group of kappa workers: per partition, the furthest
    processed offset any of them reports. Summing their counts would count twice the
    events a partition's new owner reads again after a rebalance. Processed offsets move
    when a batch is stored, as ``batches.last_stored_at`` does."""
    answered = [body for body in bodies if body is not None]
    furthest: dict[str, int] = {}
    for body in answered:
        for partition, offset in body["processed_offsets"].items():
            furthest[partition] = max(furthest.get(partition, -1), offset)
    first_at, last_at = _span(
        answered,
        lambda b: b["batches"]["first_started_at"],
        lambda b: b["batches"]["last_stored_at"],
    )
    # Input topics start at offset 0.
    return Seen(sum(offset + 1 for offset in furthest.values()), first_at, last_at)


def started(worker: Worker) -> subprocess.Popen[bytes]:
    with worker.log.open("wb") as log:
        return subprocess.Popen(
            worker.command, env=worker.env, stdout=log, stderr=subprocess.STDOUT
        )


def stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)


def answer(port: int, path: str) -> Any | None:
    """The JSON at ``path``; None when the worker did not answer in time (or at all)."""
    try:
        return get_json(port, path)
    except OSError:
        return None


@dataclass(frozen=True)
class Timed:
    """A timed run of a group of workers: the seconds from their first processed event
    to their last, and each worker's peak RSS (bytes) and CPU seconds (all its threads)
    spent from just before its first event to the end. Events per CPU second tell two
    runs apart on a machine whose load changes between them, where events/s cannot."""

    seconds: float
    peak_rss: list[int]
    cpu_s: list[float]

    def figures(self, prefix: str, events: int) -> dict[str, float]:
        """One worker's events/s, events per CPU second and peak RSS (MB), ``prefix_*``."""
        (rss,), (cpu_s,) = self.peak_rss, self.cpu_s
        return {
            f"{prefix}_eps": events / self.seconds,
            f"{prefix}_events_per_cpu_s": events / cpu_s,
            f"{prefix}_peak_rss_mb": rss / MB,
        }


def time_workers(
    workers: Sequence[Worker],
    path: str,
    progress: Progress,
    events: int,
    then: Callable[[Sequence[Worker]], None] | None = None,
) -> Timed:
    """Start ``workers`` over a topic that already holds ``events`` events, and ``watch``
    them; ``then``, if given, is called with them once they are done, before they stop
    (to read their results)."""
    procs = [started(worker) for worker in workers]
    try:
        timed = watch(workers, procs, path, progress, events)
        if then is not None:
            then(workers)
        return timed
    finally:
        stop(procs)


def watch(
    workers: Sequence[Worker],
    procs: Sequence[subprocess.Popen[bytes]],
    path: str,
    progress: Progress,
    events: int,
) -> Timed:
    """Poll running workers until ``progress`` reaches ``events``. The seconds are from
    their first processed event to their last, as their own clocks saw them (so the
    poll interval adds no error, and a tiny run that ends between two polls is still
    timed); the CPU seconds count from the last poll before any of them began its first
    event (or from their start, start-up included, when one was quicker than the first
    poll). That poll is told by the reported first event's time, not by the count of
    events: a count can read 0 after the work (the hop's, while Kafka does not answer
    its offset queries), and counting from there would leave almost no CPU."""
    processes = [psutil.Process(proc.pid) for proc in procs]
    peaks = [0] * len(procs)
    idle_cpu = [0.0] * len(procs)
    while True:
        peaks = [max(p, m.memory_info().rss) for p, m in zip(peaks, processes, strict=True)]
        cpu = [_cpu_seconds(process) for process in processes]
        seen = progress([answer(worker.port, path) for worker in workers])
        if seen.first_at is None:
            idle_cpu = cpu
        if seen.events >= events:
            if seen.first_at is None or seen.last_at is None:
                raise RuntimeError(
                    f"the workers processed {seen.events} events but report no times"
                )
            used = [_cpu_seconds(p) - idle for p, idle in zip(processes, idle_cpu, strict=True)]
            return Timed(seen.last_at - seen.first_at, peaks, used)
        for worker, proc in zip(workers, procs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(worker.log.read_text()[-3000:])
        time.sleep(0.05)


def wait_settled(
    workers: Sequence[Worker], procs: Sequence[subprocess.Popen[bytes]], partitions: int
) -> None:
    """Wait until the kappa workers share all ``partitions``, each owning some."""
    while True:
        bodies = [answer(worker.port, "/api/status") for worker in workers]
        owned = [set(body["partitions_owned"]) if body else set() for body in bodies]
        if all(owned) and len(set().union(*owned)) == partitions == sum(map(len, owned)):
            return
        for worker, proc in zip(workers, procs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(worker.log.read_text()[-3000:])
        time.sleep(0.3)


def wait_owned(port: int, partitions: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the kappa worker at ``port`` owns all ``partitions``."""
    while True:
        body = answer(port, "/api/status")
        if body is not None and len(body["partitions_owned"]) == partitions:
            return
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        time.sleep(0.3)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
