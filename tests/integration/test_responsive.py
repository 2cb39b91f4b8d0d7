"""A worker that always answers: while it works through a hopping-window backlog (24
windows per event, fetches that take seconds to apply in one go), ``/api/status`` and
``/metrics``, asked every 0.25 s as a liveness probe or a scraper would, each answer with
200 within a 1 s client timeout; and the results still equal DuckDB's."""

from __future__ import annotations

import threading
import urllib.request
from dataclasses import dataclass
from itertools import cycle

import orjson
import pytest

from app.datagen import generate, write
from tests.support.datasets import HOPPING_BACKLOG, HOPPING_BACKLOG_WINDOWS
from tests.support.harness import Harness
from tests.support.invariant import assert_equals_batch
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker
PATHS = ("/api/status", "/metrics")
ASK_EVERY_S = 0.25
PROBE_TIMEOUT_S = 1.0  # Kubernetes' default probe timeout


@dataclass(frozen=True)
class Answer:
    path: str
    status: int | None  # None: no answer within the timeout, or no connection
    error: str = ""
    processed: int | None = None  # /api/status: events processed so far


class Prober:
    """Asks the worker's status and metrics in turn, every 0.25 s, until stopped."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        for path in cycle(PATHS):
            if self._stop.wait(ASK_EVERY_S):
                return
            self.answers.append(self._ask(path))

    def _ask(self, path: str) -> Answer:
        try:
            with urllib.request.urlopen(self.worker.base + path, timeout=PROBE_TIMEOUT_S) as r:
                body = r.read()
                processed = None
                if path == "/api/status":
                    processed = int(orjson.loads(body)["counts"]["events_since_start"])
                return Answer(path, r.status, processed=processed)
        except OSError as err:  # a timeout, a refused connection or an HTTP error
            return Answer(path, getattr(err, "code", None), repr(err))


def test_status_and_metrics_answer_throughout_a_hopping_backlog(kappa: Harness) -> None:
    events = list(generate(HOPPING_BACKLOG))
    path = kappa.tmp_path / "history.csv"
    write(iter(events), path)
    spec = kappa.make_spec(windows='{ size = "1d", step = "1h" }', retention="30d")
    # Status and scrapes wait this long at most for Kafka's offsets, then answer without
    # them (and say so): below the probe's timeout.
    env = kappa.env(spec, partitions=2, KAPPA_KAFKA_QUERY_TIMEOUT="0.25")
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    with Prober(worker) as prober:
        run_kappa(env, "replay", str(path))
        worker.wait_until(
            lambda: worker.get("/api/status")[1]["counts"]["events_since_start"] == len(events),
            600,
            "every event",
        )
    answers = prober.answers
    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} asks failed: {failed[:5]}"
    during = [a for a in answers if a.processed is not None and 0 < a.processed < len(events)]
    # The backlog was asked about while it was being worked through, again and again.
    assert len(during) >= 3, f"only {len(during)} status answers during the backlog"
    assert {a.path for a in answers} == set(PATHS)
    assert_equals_batch(
        [worker], kappa.settings.bootstrap, kappa.unique, path, events, HOPPING_BACKLOG_WINDOWS
    )
