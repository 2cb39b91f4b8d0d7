"""``kappa demo``: the whole loop in one command, on a real local Kafka.

It starts Kafka (unless one is configured), runs a worker for a copy of the example
pipeline under fresh names, replays the example history, adds live events after it,
waits until the worker has processed everything, and prints what the worker computed
next to a plain Python fold over the same events. Then it starts PostgreSQL (the local
server, unless KAPPA_POSTGRES_URL names one) and ``kappa sink postgres`` for the
pipeline, and prints rows of the ``<name>_totals`` view next to the worker's numbers.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import math
import signal
import subprocess
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from agents.errors import KappaError
from agents.events import EventParser, Rejected
from agents.spec import PipelineSpec, load_spec
from app.broker.local import LocalKafka, log_tail
from app.datagen import DatasetShape, generate
from app.kafka_client import client_options
from app.ports import free_port
from app.progress import RichProgress, print_replay_report
from app.replay.check import BadRowLimit
from app.replay.run import ReplayOptions, replay
from app.settings import KappaSettings
from app.sink.demo import DemoSink

EXAMPLE_SPEC = Path("examples/orders.toml")
EXAMPLE_HISTORY = Path("examples/orders-history.csv.gz")
# The example history holds 4 bad rows on purpose, to show the dead-letter topic.
EXAMPLE_BAD_ROWS = BadRowLimit.parse("4")
LIVE_EVENTS = 2_000
console = Console()


def run_demo(settings: KappaSettings, keep_kafka: bool, python: str, env: dict[str, str]) -> None:
    broker = None if settings.uses_external_cluster else LocalKafka(settings)
    was_running = broker is not None and all(n.running for n in broker.status())
    if broker is not None:
        console.print("[bold]1.[/] starting the local Kafka broker (first run fetches its jars)")
        broker.start()
    run = uuid.uuid4().hex[:6]
    demo_dir = settings.home / "demo" / run
    demo_dir.mkdir(parents=True, exist_ok=True)
    spec_path = demo_dir / "pipeline.toml"
    spec = _demo_spec(run, spec_path)
    port = free_port()
    worker_env = {
        **env,
        "KAPPA_WEB_PORT": str(port),
        "KAPPA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "KAPPA_HOME": str(settings.home / "demo"),
    }
    log_path = demo_dir / "worker.log"
    console.print(
        f"[bold]2.[/] starting a worker for pipeline {spec.name} "
        f"(HTTP API on 127.0.0.1:{port}, log {log_path})"
    )
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [python, "-m", "app.cli", "worker", str(spec_path)],
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    sink = DemoSink(settings, spec, demo_dir / "sink.log")
    try:
        _wait(
            lambda: bool(_get(base, "/api/status")["partitions_owned"]),
            worker,
            log_path,
            "the worker to join its consumer group",
        )
        console.print(f"[bold]3.[/] replaying {EXAMPLE_HISTORY}")
        report = asyncio.run(
            replay(
                settings.model_copy(),
                spec,
                ReplayOptions(files=[EXAMPLE_HISTORY], max_bad_rows=EXAMPLE_BAD_ROWS),
                RichProgress(),
            )
        )
        print_replay_report(report)
        live = list(live_events())
        console.print(f"[bold]4.[/] producing {len(live):,} live events after the history")
        asyncio.run(_produce(settings, spec.input_topic, live))
        _wait(
            lambda: _caught_up(base, report.replay_id, len(live) + report.produced),
            worker,
            log_path,
            "the worker to process every event",
        )
        got = _show(base, spec, live)
        where = "KAPPA_POSTGRES_URL" if sink.server is None else "the local PostgreSQL"
        console.print(
            f"[bold]5.[/] starting {where} and `kappa sink postgres` (log {sink.log_path})"
        )
        sink_proc = sink.start(python, spec_path, worker_env)
        _wait(sink.caught_up, sink_proc, sink.log_path, "the sink to write every result", "sink")
        _show_view(sink, spec, got)
    finally:
        if sink.stop(keep_postgres=keep_kafka):
            console.print("stopped the local PostgreSQL (use --keep-kafka to leave it up)")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
        if broker is not None and not keep_kafka and not was_running:
            broker.stop()
            console.print("stopped the local Kafka broker (use --keep-kafka to leave it up)")


def _demo_spec(run: str, path: Path) -> PipelineSpec:
    """The example pipeline under names unique to this run, so demos never collide."""
    text = EXAMPLE_SPEC.read_text()
    text = text.replace('name = "orders"', f'name = "orders-demo-{run}"', 1)
    text = text.replace('input_topic = "orders"', f'input_topic = "demo-orders-{run}"', 1)
    path.write_text(text)
    return load_spec(path)


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return orjson.loads(response.read())


def _wait(
    check: Any,
    worker: subprocess.Popen[bytes],
    log_path: Path,
    what: str,
    process: str = "worker",
) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise KappaError(
                f"the {process} exited while waiting for {what}:\n{log_tail(log_path)}",
                hint=f"read {log_path}",
            )
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise KappaError(
        f"timed out waiting for {what}:\n{log_tail(log_path)}", hint=f"read {log_path}"
    )


def _caught_up(base: str, replay_id: str, total: int) -> bool:
    status = _get(base, "/api/status")
    replays = {r["id"]: r for r in status["replays"]}
    done = replays.get(replay_id, {}).get("processed_by_this_worker", False)
    counts = status["counts"]
    seen = counts["events_since_start"] + counts["duplicates_skipped_since_start"]
    return bool(done) and seen >= total


def _history_events() -> Iterator[dict[str, Any]]:
    with gzip.open(EXAMPLE_HISTORY, "rt", newline="") as handle:
        yield from csv.DictReader(handle)


def live_events() -> Iterator[dict[str, Any]]:
    """Live events pick up where the history ends."""
    shape = DatasetShape(
        events=LIVE_EVENTS,
        keys=300,
        seed=99,
        start=DatasetShape().start + timedelta(days=3),
        span_ms=3_600_000,
        values="orders",
    )
    yield from generate(shape)


async def _produce(settings: KappaSettings, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=10)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
        await producer.flush()
    finally:
        await producer.stop()


Totals = dict[str, tuple[int, float | None]]


def _money(amount: float | None) -> str:
    """A sum, mean or max as SQL has it: NULL when every value was null."""
    return "NULL" if amount is None else f"{amount:,.2f}"


def _fold(spec: PipelineSpec, rows: Iterator[dict[str, Any]]) -> Totals:
    """Count and sum of the spec's first value per key (NULL when all its values are
    null, as in SQL): the batch computation to compare with. Rows are validated by the
    pipeline's input contract, as the worker does; bad ones are left out, as the worker
    dead-letters them."""
    parser = EventParser(spec)
    counts: dict[str, int] = defaultdict(int)
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        try:
            event = parser.parse_fields(row)
        except Rejected:
            continue
        counts[event.key] += 1
        if (value := event.values[0]) is not None:
            values[event.key].append(value)
    return {
        key: (n, math.fsum(values[key]) if key in values else None) for key, n in counts.items()
    }


def _show(base: str, spec: PipelineSpec, live: list[dict[str, Any]]) -> Totals:
    """Print the worker's numbers; its count and first value's sum per key, checked
    equal to the batch fold."""
    expected = _fold(spec, iter([*_history_events(), *live]))
    first = spec.values[0]
    keys: list[str] = []
    after = ""
    while True:
        page = _get(base, f"/api/keys?limit=1000&after={after}")
        keys.extend(page["keys"])
        if not page["next"]:
            break
        after = page["next"]
    totals = {key: _get(base, f"/api/keys/{key}")["totals"] for key in keys}
    table = Table(
        "customer",
        "orders",
        "amount sum",
        "amount mean",
        "amount max",
        title="top 10 customers by amount (per-key totals from the worker)",
    )
    ranked = sorted(totals.items(), key=lambda kv: -(kv[1]["values"]["amount"]["sum"] or 0))
    for key, result in ranked[:10]:
        amount = result["values"]["amount"]
        table.add_row(
            key,
            f"{result['count']:,}",
            _money(amount["sum"]),
            _money(amount["mean"]),
            _money(amount["max"]),
        )
    console.print(table)
    top = ranked[0][0]
    windows = _get(base, f"/api/keys/{top}/windows?window=1h")["windows"][-5:]
    hourly = Table(
        "window start (UTC)",
        "start (epoch ms)",
        "final",
        "orders",
        "amount sum",
        title=f"{top}: last 5 hourly windows",
    )
    for window in windows:
        hourly.add_row(
            window["start"],
            str(window["start_ms"]),
            str(window["final"]),
            str(window["count"]),
            _money(window["values"]["amount"]["sum"]),
        )
    console.print(hourly)
    status = _get(base, "/api/status")
    console.print(
        f"late events: {status['counts']['late_events']}, dead letters: "
        f"{status['counts']['dead_letters']}"
    )
    for partition, watermark in status["watermarks"].items():
        console.print(
            f"partition {partition}: watermark {status['watermarks_iso'][partition]} ({watermark})"
        )
    got = {key: (r["count"], r["values"][first]["sum"]) for key, r in totals.items()}
    if got != expected:
        wrong = sorted(k for k in expected.keys() | got.keys() if got.get(k) != expected.get(k))
        raise KappaError(
            f"the worker's totals differ from the batch fold for {len(wrong)} "
            f"customers, e.g. {wrong[:5]}",
            hint="this is a bug; please report it",
        )
    console.print(
        f"[green]✓[/] the worker's totals for all {len(got)} customers equal a "
        "batch fold over the same events"
    )
    return got


def _show_view(sink: DemoSink, spec: PipelineSpec, got: Totals) -> None:
    """Rows of the ``<name>_totals`` view next to the worker's numbers; all must be equal."""
    first = spec.values[0]
    rows = sink.view_totals(first)
    table = Table(
        "customer",
        "orders (worker)",
        "orders (view)",
        f"{first} sum (worker)",
        f"{first} sum (view)",
        title=f"PostgreSQL view {sink.tables.schema}.{sink.tables.totals_view}",
    )
    for key in sorted(got, key=lambda k: -(got[k][1] or 0.0))[:5]:
        count, total = rows.get(key, (0, None))
        table.add_row(key, f"{got[key][0]:,}", f"{count:,}", _money(got[key][1]), _money(total))
    console.print(table)
    view = {
        key: (count, None if total is None else float(total))
        for key, (count, total) in rows.items()
    }
    if view != got:
        wrong = sorted(k for k in got.keys() | view.keys() if got.get(k) != view.get(k))
        raise KappaError(
            f"the {sink.tables.totals_view} view differs from the worker for {len(wrong)} "
            f"customers, e.g. {wrong[:5]}",
            hint=f"this is a bug; please report it with {sink.log_path}",
        )
    console.print(
        f"[green]✓[/] the view's rows for all {len(view)} customers equal the worker's totals"
    )
