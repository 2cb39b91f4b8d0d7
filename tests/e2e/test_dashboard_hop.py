"""Both stages of a version on the dashboard, in a real browser (Debian's headless
Chromium), with ``/api/status`` and ``/metrics`` beside it: the input (the route stage)
and the repartition hop into the state partitions (the aggregate stage).

The version has N = 2 partitions; its input is grown to 3 before any event, and the
events are produced with a null record key (the producer spreads them). Every record of
a grown input takes the hop, so the expectations come from the input log read back and
a plain fold with Kafka's own murmur2 (aiokafka's): the route stage sent every input
record, each state partition's repartition topic holds its keys' records, and once the
worker is idle both lags are 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import murmur2
from selenium.webdriver.support.ui import WebDriverWait

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.browser import chromium, shown, shown_time, table, text
from tests.support.hop import produce_placed
from tests.support.kafka import grow_topic, read_all
from tests.support.metrics_page import Page, scrape
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker
N = 2
GROWN = 3
SHAPE = DatasetShape(events=2_000, keys=40, span_ms=86_400_000, seed=183)


def _state_partition(key: str) -> int:
    """The key's partition for N, by Kafka's default partitioner."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % N


def test_the_dashboard_shows_the_input_and_the_repartition_hop(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    bootstrap = kafka_settings.bootstrap
    topic = f"test-input-{unique}"
    worker, _ = running_worker(make_spec(), partitions=N)
    asyncio.run(grow_topic(bootstrap, topic, GROWN))
    worker.wait_ready(partitions=GROWN, timeout=180)  # the input's growth is followed
    events = list(generate(SHAPE))
    asyncio.run(produce_placed(bootstrap, topic, events, lambda _i, _e: (None, None)))
    wait_processed([worker], bootstrap, topic)

    # The plain fold: the input log read back, each record's key's state partition.
    records = asyncio.run(read_all(bootstrap, topic))
    assert len(records) == len(events)
    inputs = Counter(record.partition for record in records)
    assert set(inputs) == set(range(GROWN)), inputs  # the spread reached every partition
    keys = [str(orjson.loads(record.value)["customer_id"]) for record in records]
    hop_records = Counter(_state_partition(key) for key in keys)
    state_keys = {q: {key for key in keys if _state_partition(key) == q} for q in range(N)}
    repartition = asyncio.run(read_all(bootstrap, f"kappa.t{unique}.v1.repartition"))
    assert Counter(record.partition for record in repartition) == hop_records

    with chromium() as browser:
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        browser.get(worker.base + "/dashboard?poll_ms=500")
        # Nothing moves now: a page drawn from a status asked after this one shows it.
        _, status = worker.get("/api/status")
        asked_at = time.time()
        wait.until(lambda b: text(b, "updated-at") > shown_time(int(asked_at * 1000)))
        hop = status["hop"]

        assert hop["records_sent_since_start"] == len(records)
        assert text(browser, "hop-sent") == shown(len(records))
        assert sum(status["lag"].values()) == sum(hop["lag"].values()) == 0
        assert text(browser, "total-lag") == text(browser, "hop-lag") == "0"

        # The route stage: every input partition, the grown one included.
        partitions = {row["partition"]: row for row in table(browser, "partitions")}
        assert set(partitions) == {str(p) for p in range(GROWN)}
        for p, count in inputs.items():
            row, at = partitions[str(p)], str(p)
            assert row["owner"] == worker.base
            assert row["processed"] == shown(status["processed_offsets"][at]) == shown(count - 1)
            assert row["end"] == shown(status["end_offsets"][at]) == shown(count)
            assert row["lag"] == shown(status["lag"][at]) == "0"

        # The aggregate stage: the version's N state partitions, fed by the hop.
        states = {row["partition"]: row for row in table(browser, "state-partitions")}
        assert set(states) == {str(q) for q in range(N)}
        for q, count in hop_records.items():
            row, at = states[str(q)], str(q)
            assert row["owner"] == worker.base
            assert row["hop-processed"] == shown(hop["processed_offsets"][at])
            assert row["hop-processed"] == shown(count - 1)
            assert row["hop-end"] == shown(hop["end_offsets"][at]) == shown(count)
            assert row["hop-lag"] == shown(hop["lag"][at]) == "0"
            assert row["keys"] == shown(status["state"][at]["keys"])
            assert row["keys"] == shown(len(state_keys[q]))

        logged = browser.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in logged if e["level"] == "SEVERE"]
        assert errors == [], errors

    # /metrics says the same of both stages.
    page = Page(scrape(worker)[0])
    one = {"pipeline": f"t{unique}", "version": "1"}
    assert page.value("kappa_hop_records_sent_total", **one) == len(records)
    for p, count in inputs.items():
        labels = {"partition": str(p), **one}
        assert page.value("kappa_input_end_offset", **labels) == count
        assert page.value("kappa_consumer_lag_records", **labels) == 0
    for q, count in hop_records.items():
        labels = {"partition": str(q), **one}
        assert page.value("kappa_hop_processed_offset", **labels) == count - 1
        assert page.value("kappa_hop_end_offset", **labels) == count
        assert page.value("kappa_hop_lag_records", **labels) == 0
        assert page.value("kappa_state_keys", **labels) == len(state_keys[q])
