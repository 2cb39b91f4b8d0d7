"""The dashboard in a real browser (Debian's headless Chromium), against a running worker
fed real events: what the page shows is what ``/api/status`` says, and what was fed.

Set ``KAPPA_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the README's picture.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.settings import KappaSettings
from tests.support.browser import NONE, chromium, shown, shown_time, table, text
from tests.support.feed import REPLAY_ID, feed
from tests.support.postgres import SinkProcess, wait_sink_caught_up
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker


def test_the_dashboard_shows_what_the_worker_says(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, env = running_worker(make_spec(), partitions=2)
    topic = f"test-input-{unique}"
    with chromium() as browser:
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.get(worker.base + "/dashboard?poll_ms=500")
        wait.until(lambda b: text(b, "health") == "running")
        # Fed with the page open, so that the charts draw the run as it happens.
        fed = feed(env, kafka_settings.bootstrap, topic, tmp_path, replay_rate=1_500)
        wait_processed([worker], kafka_settings.bootstrap, topic)

        # Nothing moves now: a page drawn from a status asked after this one shows it.
        _, status = worker.get("/api/status")
        asked_at = time.time()
        wait.until(lambda b: text(b, "updated-at") > shown_time(int(asked_at * 1000)))
        counts = status["counts"]

        # The figures: as the status says, and as was fed.
        figures = {
            "events-processed": (counts["events_since_start"], fed.good_events),
            "late-events": (counts["late_events"], fed.late),
            "late-since-start": (counts["late_since_start"], fed.late),
            "dead-letters": (
                counts["dead_letters"],
                fed.replay_bad_rows + sum(fed.bad_records.values()),
            ),
            "dead-letters-since-start": (
                counts["dead_letters_since_start"],
                sum(fed.bad_records.values()),
            ),
            "duplicates": (counts["duplicates_skipped_since_start"], 0),
            "filtered": (counts["filtered_since_start"], 0),  # the spec has no where
            "gap-records": (counts["gap_records_read_back_since_start"], 0),
            "total-lag": (sum(status["lag"].values()), 0),
        }
        for element_id, (said, expected) in figures.items():
            assert said == expected, element_id
            assert text(browser, element_id) == shown(said), element_id
        assert text(browser, "window-results") == shown(counts["window_results_since_start"])
        assert text(browser, "pipeline-name") == status["pipeline"]["name"] == f"t{unique}"
        assert text(browser, "pipeline-version") == str(status["pipeline"]["version"]) == "1"
        assert text(browser, "worker-url") == status["url"] == worker.base

        # Per partition: the status, and the input log read back. Every record is on
        # its key's partition of an input with the version's N: none takes the hop.
        partitions = {row["partition"]: row for row in table(browser, "partitions")}
        states = {row["partition"]: row for row in table(browser, "state-partitions")}
        assert set(partitions) == set(states) == {"0", "1"}
        for p, log in fed.partitions.items():
            row, state, at = partitions[str(p)], states[str(p)], str(p)
            assert row["owner"] == state["owner"] == worker.base
            assert (
                row["processed"] == shown(status["processed_offsets"][at]) == shown(log.records - 1)
            )
            assert row["end"] == shown(status["end_offsets"][at]) == shown(log.records)
            assert row["lag"] == shown(status["lag"][at]) == "0"
            assert state["hop-end"] == shown(status["hop"]["end_offsets"][at]) == "0"
            assert state["hop-lag"] == shown(status["hop"]["lag"][at]) == "0"
            assert state["watermark"] == shown_time(status["watermarks"][at])
            assert log.watermark_ms == status["watermarks"][at]
            assert state["newest"] == shown_time(status["newest_event_times"][at])
            assert state["keys"] == shown(status["state"][at]["keys"]) == shown(len(log.keys))
            assert state["open-windows"] == shown(status["state"][at]["open_windows"])
            assert status["state"][at]["open_windows"] == log.open_windows()
        assert text(browser, "hop-sent") == shown(status["hop"]["records_sent_since_start"])
        assert text(browser, "hop-sent") == text(browser, "hop-lag") == "0"

        reasons = {row["reason"]: row["count"] for row in table(browser, "dead-letter-reasons")}
        assert reasons == {
            r: shown(n) for r, n in status["counts"]["dead_letters_by_reason_since_start"].items()
        }
        assert status["counts"]["dead_letters_by_reason_since_start"] == fed.bad_records
        latest = Counter(row["reason"] for row in table(browser, "latest-dead-letters"))
        assert latest == Counter(d["reason"] for d in status["latest_dead_letters"])

        (replay,) = table(browser, "replays")
        assert replay["id"] == REPLAY_ID
        assert replay["state"] == "complete"
        assert replay["produced"] == shown(fed.replay_rows)
        assert replay["bad-rows"] == shown(fed.replay_bad_rows)
        assert replay["progress"] == "processed by this worker"

        owners = {row["worker"]: row["partitions"] for row in table(browser, "owners")}
        assert owners == {url: ", ".join(map(str, ps)) for url, ps in status["owners"].items()}
        assert owners == {worker.base: "0, 1"}
        assert text(browser, "health") == "running"

        # The charts drew the run: throughput above zero while events flowed.
        flowing = browser.execute_script(
            "return charts.throughput.data[1].filter((v) => v > 0).length"
        )
        assert flowing >= 1

        # The key lookup, for the busiest key and for one nobody has.
        key, count = Counter(e["customer_id"] for e in fed.events).most_common(1)[0]
        browser.find_element(By.ID, "key-input").send_keys(key)
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda b: b.find_elements(By.ID, "key-count"))
        assert text(browser, "key-count") == shown(count)
        assert worker.get(f"/api/keys/{key}")[1]["totals"]["count"] == count
        browser.find_element(By.ID, "key-input").clear()
        browser.find_element(By.ID, "key-input").send_keys("nobody")
        browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
        wait.until(lambda b: "unknown key" in text(b, "key-result"))

        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1400, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        if target := os.environ.get("KAPPA_DASHBOARD_SCREENSHOT"):
            shutil.copyfile(shot, target)
        # No script error (the 404 of the unknown key is the browser's network log).
        logged = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logged if e["level"] == "SEVERE" and e["source"] != "network"]
        assert errors == [], errors

    # Paths the dashboard does not have get a JSON 404, as the API's errors do.
    for path in ("/dashboard/nope", "/dashboard/static/nope.js", "/dashboard/static/../worker.py"):
        code, body = worker.get(path)
        assert code == 404, path
        assert isinstance(body["error"], str), path
        assert body["error"], path


def test_the_dashboard_shows_the_postgres_sink(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    postgres_url: str,
) -> None:
    schema = name = f"t{unique}"
    worker, env = running_worker(
        make_spec(),
        partitions=2,
        KAPPA_POSTGRES_URL=postgres_url,
        KAPPA_POSTGRES_SCHEMA=schema,
        KAPPA_SINK_METRICS_PORT="0",
    )
    topic = f"test-input-{unique}"
    with chromium() as browser:
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.get(worker.base + "/dashboard?poll_ms=500")
        # PostgreSQL answers, but no sink has made this pipeline's views yet.
        wait.until(lambda b: text(b, "sink-state").startswith("no sink"))
        assert table(browser, "sink-versions") == [{"": NONE}]

        feed(env, kafka_settings.bootstrap, topic, tmp_path, replay_rate=5_000)
        wait_processed([worker], kafka_settings.bootstrap, topic)
        sink = SinkProcess(env, tmp_path / "sink.log").start()
        try:
            wait_sink_caught_up(postgres_url, schema, kafka_settings.bootstrap, name, 1, sink)
        finally:
            sink.stop()
        wait.until(lambda b: "views show version 1" in text(b, "sink-state"))
        _, said = worker.get("/api/sink")
        assert [(v["version"], v["views"], v["lag_total"]) for v in said["versions"]] == [
            (1, True, 0)
        ]
        assert table(browser, "sink-versions") == [{"version": "v1", "views": "yes", "lag": "0"}]
        logged = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logged if e["level"] == "SEVERE"]
        assert errors == [], errors
