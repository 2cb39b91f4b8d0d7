"""The dashboard's key lookup lists the key's sessions, in a real browser (Debian's
headless Chromium) against a running worker: each session's start, end, state and
events as a fold of the events fed says, and as the API lists them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.settings import KappaSettings
from tests.support.browser import chromium, text
from tests.support.kafka import produce_events
from tests.support.results import wait_processed
from tests.support.times import ms
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

MINUTE = 60_000
GAP = 30 * MINUTE
LATENESS = 10 * MINUTE
# One key's events: 10:00 and 10:30 (exactly the gap: one session), 11:01 (a new one),
# 13:00 (another, still open: the watermark is 12:50).
TIMES = ["2024-01-02T10:00:00Z", "2024-01-02T10:30:00Z", "2024-01-02T11:01:00Z"]
TIMES.append("2024-01-02T13:00:00Z")


def shown(epoch_ms: int) -> str:
    """ISO-8601 as the API writes it: UTC, ``Z``, milliseconds only when there are some."""
    at = datetime.fromtimestamp(epoch_ms // 1000, UTC)
    millis = f".{epoch_ms % 1000:03d}" if epoch_ms % 1000 else ""
    return f"{at:%Y-%m-%dT%H:%M:%S}{millis}Z"


def fold() -> list[tuple[str, str, str, str]]:
    """(start, end, state, events) of each session, from the rule alone."""
    times = sorted(ms(t) for t in TIMES)
    runs: list[list[int]] = []
    for ts in times:
        if runs and ts - runs[-1][-1] <= GAP:
            runs[-1].append(ts)
        else:
            runs.append([ts])
    watermark = times[-1] - LATENESS
    return [
        (
            shown(run[0]),
            shown(run[-1] + GAP + 1),
            "final" if run[-1] + GAP + 1 <= watermark else "open",
            str(len(run)),
        )
        for run in runs
    ]


def test_the_key_lookup_lists_the_keys_sessions(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, _ = running_worker(make_spec(windows='{ gap = "30m" }', lateness="10m"))
    topic = f"test-input-{unique}"
    events = [{"customer_id": "k1", "ts": t, "amount": 1.5, "quantity": 1} for t in TIMES]
    asyncio.run(produce_events(kafka_settings.bootstrap, topic, events, "customer_id"))
    wait_processed([worker], kafka_settings.bootstrap, topic)
    expected = fold()
    assert [s[2] for s in expected] == ["final", "final", "open"]
    _, body = worker.get("/api/keys/k1/windows?window=session/30m")
    assert [(w["start"], w["end"]) for w in body["windows"]] == [s[:2] for s in expected]
    with chromium() as browser:
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.get(worker.base + "/dashboard?poll_ms=500")
        wait.until(lambda b: text(b, "health") == "running")
        browser.find_element(By.ID, "key-input").send_keys("k1")
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda b: b.find_elements(By.ID, "key-sessions"))
        rows = browser.execute_script(
            """return Array.from(document.querySelectorAll("#key-sessions tr[data-start]"),
                (row) => Array.from(row.cells, (cell) => cell.textContent))"""
        )
    assert [tuple(row[1:]) for row in rows] == expected
    assert {row[0] for row in rows} == {"session/30m"}
