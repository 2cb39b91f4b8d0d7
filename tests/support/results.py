"""Read what kappa computed: totals and windows over the HTTP API, finals from the topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from app.kafka_client import offset_ranges
from tests.support.kafka import read_all
from tests.support.times import DAY, ms
from tests.support.worker import WorkerProcess

WindowKey = tuple[str, str, int]


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    return {"count": body["count"], "values": body["values"]}


def api_results(
    workers: list[WorkerProcess], keys: set[str], t_from: int, t_to: int
) -> tuple[dict[str, Any], dict[WindowKey, dict[str, Any]], dict[WindowKey, bool]]:
    """Totals and windows of every key, asked of whichever worker owns it."""
    totals: dict[str, Any] = {}
    windows: dict[WindowKey, dict[str, Any]] = {}
    final: dict[WindowKey, bool] = {}
    for key in sorted(keys):
        totals[key] = _owner_answer(workers, f"/api/keys/{key}")["totals"]
        body = _owner_answer(workers, f"/api/keys/{key}/windows?from={t_from}&to={t_to}")
        for window in body["windows"]:
            wkey = (key, window["window"], window["start_ms"])
            assert wkey not in windows, f"window {wkey} listed twice"
            windows[wkey] = _shape(window)
            final[wkey] = window["final"]
    return totals, windows, final


def _owner_answer(workers: list[WorkerProcess], path: str, timeout: float = 120) -> dict[str, Any]:
    """The first worker's 200 answer to ``path``; asked again while the answers are 503
    (a partition without an owner, or being recovered, during a rebalance)."""
    deadline = time.monotonic() + timeout
    while True:
        answers: list[tuple[int, Any]] = []
        for worker in workers:
            status, body = worker.get(path)
            if status == 200:
                answer: dict[str, Any] = body
                return answer
            answers.append((status, body))
        if not any(status == 503 for status, _ in answers) or time.monotonic() > deadline:
            raise AssertionError(f"no worker answers {path}: {answers}")
        time.sleep(0.5)


def results_over(
    workers: list[WorkerProcess], keys: set[str], events: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[WindowKey, dict[str, Any]], dict[WindowKey, bool]]:
    """``api_results`` over every window from a day before the first event (``ts``,
    ISO-8601) to a day after the last."""
    t_from = ms(min(e["ts"] for e in events)) - DAY
    t_to = ms(max(e["ts"] for e in events)) + DAY
    return api_results(workers, keys, t_from, t_to)


def topic_finals(bootstrap: str, topic: str) -> dict[WindowKey, dict[str, Any]]:
    """Final results from the compacted output topic; a repeated key must repeat the value."""
    finals: dict[WindowKey, dict[str, Any]] = {}
    for record in asyncio.run(read_all(bootstrap, topic)):
        body = orjson.loads(record.value)
        assert body["final"] is True
        wkey = (body["key"], body["window"], body["start_ms"])
        assert record.key.decode() == f"{body['key']}|{body['window']}|{body['start_ms']}"
        if wkey in finals:
            assert finals[wkey] == _shape(body), f"two different final results for {wkey}"
        finals[wkey] = _shape(body)
    return finals


def processed_offsets(workers: list[WorkerProcess]) -> dict[int, int]:
    """The last input offset stored per partition, by whichever worker is furthest."""
    processed: dict[int, int] = {}
    for worker in workers:
        status, body = worker.get("/api/status")
        if status == 200:
            for p, offset in body["processed_offsets"].items():
                processed[int(p)] = max(processed.get(int(p), -1), offset)
    return processed


def processed_records(workers: list[WorkerProcess]) -> int:
    """Input records processed and stored, on a topic whose partitions start at offset 0."""
    return sum(offset + 1 for offset in processed_offsets(workers).values())


def hop_offsets(workers: list[WorkerProcess]) -> tuple[str | None, dict[int, int]]:
    """The repartition topic and its last offset stored per partition (furthest worker)."""
    topic: str | None = None
    processed: dict[int, int] = {}
    for worker in workers:
        status, body = worker.get("/api/status")
        if status == 200:
            topic = body["hop"]["topic"]
            for p, offset in body["hop"]["processed_offsets"].items():
                processed[int(p)] = max(processed.get(int(p), -1), offset)
    return topic, processed


def wait_processed(
    workers: list[WorkerProcess], bootstrap: str, topic: str, timeout: float = 300
) -> None:
    """Until the workers together have processed every record now in ``topic``, then
    every record the route stages sent on through the repartition hop, and then until
    every state partition has closed the windows its watermark passed."""
    deadline = time.monotonic() + timeout
    _wait_offsets(workers, bootstrap, topic, deadline, processed_offsets)
    hop_topic, _ = hop_offsets(workers)
    if hop_topic is not None:
        _wait_offsets(workers, bootstrap, hop_topic, deadline, lambda w: hop_offsets(w)[1])
    while (unsettled := unsettled_partitions(workers)) != set():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"state partitions not started or still closing windows: {unsettled}\n"
                + workers[0].log_tail()
            )
        time.sleep(0.5)


def unsettled_partitions(workers: list[WorkerProcess]) -> set[int] | None:
    """The state partitions that no worker has started (``status.state``) or whose
    watermark passed windows not closed yet (``status.closing``); None when no worker
    answered. A worker that does not answer (frozen, or busy past the HTTP timeout)
    is asked again at the next poll."""
    partitions: int | None = None
    started: set[int] = set()
    closing: set[int] = set()
    for worker in workers:
        try:
            status, body = worker.get("/api/status")
        except OSError:
            continue
        if status == 200:
            partitions = body["partitions"]
            started |= {int(p) for p in body["state"]}
            closing |= set(body["closing"])
    if partitions is None:
        return None
    return (set(range(partitions)) - started) | closing


def _wait_offsets(
    workers: list[WorkerProcess],
    bootstrap: str,
    topic: str,
    deadline: float,
    stored: Callable[[list[WorkerProcess]], dict[int, int]],
) -> None:
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": bootstrap}, [topic]))
    ends = {p: end for p, (_, end) in ranges[topic].items()}
    while True:
        try:
            processed = stored(workers)
        except TimeoutError:
            # A worker whose loop is busy with a long batch past the HTTP timeout, on a
            # loaded machine: asked again at the next poll.
            processed = {}
        behind = {p: end for p, end in ends.items() if end > 0 and processed.get(p, -1) < end - 1}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{topic}: partitions still behind: {behind}, processed {processed}\n"
                + workers[0].log_tail()
            )
        time.sleep(0.5)


def window_differences(got: dict[WindowKey, Any], want: dict[WindowKey, Any]) -> str:
    """Which windows one side lists and the other does not, a few of each."""
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    return f"{len(missing)} missing, e.g. {missing[:5]}; {len(extra)} extra, e.g. {extra[:5]}"


def key_differences(got: dict[str, Any], want: dict[str, Any]) -> str:
    """Which keys differ and by how many events: lost ones show as a negative count."""
    keys = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    shown = ", ".join(
        f"{k}: {got.get(k, {}).get('count', 0) - want.get(k, {}).get('count', 0):+d}"
        for k in keys[:20]
    )
    return f"{len(keys)} of {len(want)} keys differ (events got - want): {shown}"
