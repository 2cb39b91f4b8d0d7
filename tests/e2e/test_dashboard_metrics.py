"""The dashboard's key lookup in a real browser (Debian's headless Chromium) shows every
metric of the spec, the new ones included: a column per metric, a row per value field,
with the values of a plain fold (first, last, count_distinct) and of the API (the
quantiles, whose bound is checked in tests/integration/test_extra_metrics.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.settings import KappaSettings
from tests.support.browser import chromium
from tests.support.kafka import produce_events
from tests.support.results import wait_processed
from tests.support.times import iso
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

METRICS = ("count", "first", "last", "count_distinct", "p50", "p90", "p99")
METRICS_LINE = 'metrics = ["count", "sum", "min", "max", "mean"]'


def js(value: Any) -> str:
    """A JSON number as JavaScript's String() writes it (shortest round trip, as repr;
    a whole float without its ".0"), and null as the page writes it."""
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def test_the_key_lookup_shows_every_metric_of_the_spec(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    spec = make_spec()
    text = spec.read_text()
    assert METRICS_LINE in text
    spec.write_text(text.replace(METRICS_LINE, f"metrics = {list(METRICS)!r}".replace("'", '"')))
    worker, _ = running_worker(spec, partitions=1)
    topic = f"test-input-{unique}"
    # Two events share the earliest and two the latest time: input order decides.
    amounts = [2.5, 7.25, 2.5, 1.75, 9.5, 3.25]
    times = [1000, 1000, 5000, 9000, 9000, 3000]
    events = [
        {"customer_id": "k1", "ts": iso(1_700_000_000_000 + t), "amount": a, "quantity": None}
        for a, t in zip(amounts, times, strict=True)
    ]
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)
    _, body = worker.get("/api/keys/k1")
    api = body["totals"]["values"]
    fold = {"first": 2.5, "last": 9.5, "count_distinct": 5}  # by (time, offset); a set
    assert {m: api["amount"][m] for m in fold} == fold

    with chromium() as browser:
        browser.get(worker.base + "/dashboard")
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.find_element(By.ID, "key-input").send_keys("k1")
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda b: b.find_elements(By.ID, "key-count"))
        rows: list[list[str]] = browser.execute_script(
            """return Array.from(document.querySelectorAll("#key-result tr"),
                (row) => Array.from(row.cells, (cell) => cell.textContent))"""
        )
    head, *cells = rows
    assert head == ["value", *METRICS[1:]]
    shown = {row[0]: dict(zip(head[1:], row[1:], strict=True)) for row in cells}
    assert shown["amount"] == {m: js(api["amount"][m]) for m in METRICS[1:]}
    assert {m: shown["amount"][m] for m in fold} == {m: js(v) for m, v in fold.items()}
    assert shown["quantity"] == {m: "null" if m != "count_distinct" else "0" for m in METRICS[1:]}
