"""Read what kappa computed: totals and windows over the HTTP API, finals from the topic."""

from __future__ import annotations

import asyncio
import time
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
        for worker in workers:
            status, body = worker.get(f"/api/keys/{key}")
            if status == 200:
                break
        else:
            raise AssertionError(f"no worker knows key {key!r}: {body}")
        totals[key] = body["totals"]
        status, body = worker.get(f"/api/keys/{key}/windows?from={t_from}&to={t_to}")
        assert status == 200, body
        for window in body["windows"]:
            wkey = (key, window["window"], window["start_ms"])
            assert wkey not in windows, f"window {wkey} listed twice"
            windows[wkey] = _shape(window)
            final[wkey] = window["final"]
    return totals, windows, final


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


def wait_processed(
    workers: list[WorkerProcess], bootstrap: str, topic: str, timeout: float = 300
) -> None:
    """Until the workers together have processed every record now in ``topic``."""
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": bootstrap}, [topic]))
    ends = {p: end for p, (_, end) in ranges[topic].items()}
    deadline = time.monotonic() + timeout
    while True:
        processed = processed_offsets(workers)
        behind = {p: end for p, end in ends.items() if end > 0 and processed.get(p, -1) < end - 1}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"partitions still behind after {timeout}s: {behind}, processed {processed}\n"
                + workers[0].log_tail()
            )
        time.sleep(0.5)
