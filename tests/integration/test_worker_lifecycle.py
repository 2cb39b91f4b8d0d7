"""Workers stop cleanly; two versions of a pipeline run side by side on one input."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate
from app.kafka_client import offset_ranges
from app.settings import KappaSettings
from tests.support.kafka import produce_events
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_worker_stops_cleanly(
    sig: signal.Signals,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
) -> None:
    worker, _ = running_worker(make_spec())
    assert worker.stop(sig, timeout=60) == 0
    assert "Traceback" not in worker.log_tail(400)


@pytest.mark.parametrize(
    ("extra", "signals", "why"),
    [
        # A Ctrl-C and at once a SIGTERM: two kinds of signal are never merged while
        # pending, so whichever the worker handles first begins the clean stop and the
        # other cuts it short. (Waiting to see that stop in the log before a second
        # signal raced an idle worker's clean stop, which can end within the wait.)
        ({}, (signal.SIGINT, signal.SIGTERM), "second {} during shutdown"),
        (
            {"KAPPA_SHUTDOWN_TIMEOUT": "0.01"},
            (signal.SIGTERM,),
            "shutdown took longer than 0.01s",
        ),
    ],
    ids=["second signal", "timeout"],
)
def test_a_stuck_shutdown_is_cut_short(
    extra: dict[str, str],
    signals: tuple[signal.Signals, ...],
    why: str,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
) -> None:
    worker, _ = running_worker(make_spec(), **extra)
    assert worker.proc is not None
    for sig in signals:
        worker.proc.send_signal(sig)
    code = worker.proc.wait(timeout=60)
    # Exits at once, with the status of the signal that cut the stop short.
    assert code in [128 + sig for sig in signals], code
    assert why.format(signal.Signals(code - 128).name) in worker.log_tail(50)


def test_two_versions_run_side_by_side(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
) -> None:
    v1 = start_worker(kappa_env(make_spec(version=1), partitions=2))
    v2 = start_worker(kappa_env(make_spec(version=2, windows='{ size = "1d" }'), partitions=2))
    v1.wait_ready(partitions=2)
    v2.wait_ready(partitions=2)
    events = list(generate(DatasetShape(events=600, keys=15, seed=8)))
    topic = f"test-input-{unique}"
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([v1], kafka_settings.bootstrap, topic)
    wait_processed([v2], kafka_settings.bootstrap, topic)

    expected = Counter(e["customer_id"] for e in events)
    for worker in (v1, v2):
        for key, count in expected.items():
            assert worker.get(f"/api/keys/{key}")[1]["totals"]["count"] == count
    key = events[0]["customer_id"]
    assert {w["window"] for w in v1.get(f"/api/keys/{key}/windows")[1]["windows"]} == {"1h"}
    assert {w["window"] for w in v2.get(f"/api/keys/{key}/windows")[1]["windows"]} == {"1d"}
    names = [f"kappa.t{unique}.v{v}.{t}" for v in (1, 2) for t in ("late", "window-results")]
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": kafka_settings.bootstrap}, names))
    assert set(ranges) == set(names)
