"""``/metrics``: a running worker's Prometheus page, parsed by prometheus-client's own
parser and checked against what was fed (counted from the input log, not by kappa)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate
from app.settings import KappaSettings
from tests.support.feed import LATENESS_MS, REPLAY_ID, Fed, feed
from tests.support.harness import Harness
from tests.support.kafka import produce_events
from tests.support.metrics_page import Page, scrape
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_metrics_count_what_was_fed(
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
) -> None:
    worker, env = running_worker(make_spec(), partitions=2)
    topic = f"test-input-{unique}"
    fed: Fed = feed(env, kafka_settings.bootstrap, topic, tmp_path)
    wait_processed([worker], kafka_settings.bootstrap, topic)
    assert fed.live_late == fed.late  # the scenario: only the crafted events are late

    text, content_type = scrape(worker)
    assert content_type.startswith("text/plain; version=0.0.4")
    page = Page(text)
    one = {"pipeline": f"t{unique}", "version": "1"}

    # Every kappa family is prefixed, labelled and named as Prometheus asks.
    kappa = [f for f in page.families.values() if f.name.startswith("kappa_")]
    assert len(kappa) >= 30
    for family in kappa:
        assert family.documentation, family.name
        for sample in family.samples:
            assert {"pipeline", "version"} <= set(sample.labels), sample
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
    assert page.find("process_resident_memory_bytes")  # prometheus-client's own collector
    # docs/metrics.md lists every family, and the Grafana dashboard asks for no other.
    served = {f.name + ("_total" if f.type == "counter" else "") for f in kappa}
    documented = set(re.findall(r"`(kappa_[a-z_]+)`", (DOCS / "metrics.md").read_text()))
    # The outage's info is served only while Kafka is unreachable (e2e/test_worker_startup);
    # the sink's own families by `kappa sink postgres` (test_sink_postgres.py).
    sink = {name for name in documented if name.startswith("kappa_sink_")}
    assert documented - sink == served | {"kappa_kafka_unreachable_info"}
    queried = re.findall(r"kappa_[a-z_]+", (DOCS / "grafana-dashboard.json").read_text())
    assert {re.sub(r"_(bucket|sum|count)$", "", name) for name in queried} <= served | sink
    info = page.find("kappa_worker_info", **one)
    assert info[0].labels["url"] == worker.base

    # Counters since the worker started: all of them saw this feed.
    assert page.value("kappa_events_processed_total", **one) == fed.good_events
    assert page.value("kappa_late_events_total", **one) == fed.late
    for reason, count in fed.bad_records.items():
        assert page.value("kappa_dead_letters_total", reason=reason, **one) == count
    assert len(page.find("kappa_dead_letters_total")) == len(fed.bad_records)
    assert page.value("kappa_duplicates_skipped_total", **one) == 0
    assert page.value("kappa_gap_records_read_total", **one) == 0
    assert page.value("kappa_window_results_total", **one) == sum(
        p.closed_windows() for p in fed.partitions.values()
    )
    assert page.value("kappa_ack_wait_seconds_total", **one) > 0
    # Durable counts: the topics, with the replay's own bad rows in the dead letters.
    assert page.value("kappa_late_topic_records", **one) == fed.late
    assert page.value("kappa_dead_letter_topic_records", **one) == (
        fed.replay_bad_rows + sum(fed.bad_records.values())
    )

    # One histogram observation per batch: the batches took every input record once.
    assert page.value("kappa_batch_size_events_sum", **one) == fed.input_records
    batches = page.value("kappa_batch_size_events_count", **one)
    assert batches >= 1
    assert page.value("kappa_batch_duration_seconds_count", **one) == batches
    assert page.value("kappa_batch_duration_seconds_bucket", le="+Inf", **one) == batches
    assert page.value("kappa_batch_duration_seconds_sum", **one) > 0

    # Per partition, from the log read back.
    assert page.value("kappa_partitions_owned", **one) == 2
    for p, log in fed.partitions.items():
        at = {"partition": str(p), **one}
        assert page.value("kappa_input_end_offset", **at) == log.records
        assert page.value("kappa_input_processed_offset", **at) == log.records - 1
        assert page.value("kappa_consumer_lag_records", **at) == 0
        assert log.newest_ms is not None
        newest = page.value("kappa_newest_event_timestamp_seconds", **at)
        assert newest == log.newest_ms / 1000
        watermark = page.value("kappa_watermark_timestamp_seconds", **at)
        assert watermark == (log.newest_ms - LATENESS_MS) / 1000
        assert page.value("kappa_state_keys", **at) == len(log.keys)
        assert page.value("kappa_state_open_windows", **at) == log.open_windows()
        # Every record is on its key's partition of an input with the version's N.
        assert page.value("kappa_hop_end_offset", **at) == 0
        assert page.value("kappa_hop_lag_records", **at) == 0
    assert page.value("kappa_hop_records_sent_total", **one) == 0

    # The replay, from its control records.
    replay = {"replay": REPLAY_ID, **one}
    assert page.value("kappa_replay_rows_produced_total", **replay) == fed.replay_rows
    assert page.value("kappa_replay_bad_rows_total", **replay) == fed.replay_bad_rows
    assert page.value("kappa_replay_running", **replay) == 0
    assert page.value("kappa_replay_processed", **replay) == 1
    assert page.value("kappa_replay_rows_per_second", **replay) > 0
    assert not page.find("kappa_replay_records_behind", **replay)

    # A settled worker: no rebalance, no recovery, and Kafka answered.
    assert page.value("kappa_rebalancing", **one) == 0
    assert page.value("kappa_recovering", **one) == 0
    assert page.value("kappa_recovery_records_remaining", **one) == 0
    assert page.value("kappa_kafka_answered", **one) == 1

    # `kappa status` prints the dead letters by reason too.
    shown = run_kappa(env, "status", "--url", worker.base)
    for reason, count in fed.bad_records.items():
        assert f"{reason}={count}" in shown

    # Prometheus 3 asks for OpenMetrics first; the same figures come back in it.
    text, content_type = scrape(worker, "application/openmetrics-text;version=1.0.0,*/*;q=0.1")
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")


def test_scrapes_during_a_rebalance_and_a_recovery_answer_and_say_so(kappa: Harness) -> None:
    """The first worker is killed; the second joins the group and waits, rebalancing,
    until the group gives up on the first (its session timeout), then rebuilds the tables
    from their changelogs. Every scrape, status and dashboard request in between
    answers (urllib's timeout would fail the test), and the scrapes say what goes on."""
    spec = kappa.make_spec()
    first = kappa.start_worker(kappa.env(spec, partitions=2, KAPPA_SESSION_TIMEOUT="8"))
    first.wait_ready(partitions=2)
    events = list(generate(DatasetShape(events=3_000, keys=500, seed=31)))
    asyncio.run(produce_events(kappa.settings.bootstrap, kappa.topic, events, "customer_id"))
    wait_processed([first], kappa.settings.bootstrap, kappa.topic)
    first.kill()

    # Another port, so another state dir: everything is recovered from the changelogs.
    second = kappa.start_worker(kappa.env(spec, partitions=2, KAPPA_SESSION_TIMEOUT="8"))
    one = {"pipeline": f"t{kappa.unique}", "version": "1"}
    seen: list[tuple[float, float, int]] = []
    said: list[bool] = []  # by the status, asked just after each scrape

    def settled() -> bool:
        page = Page(scrape(second)[0])
        state = (
            page.value("kappa_rebalancing", **one),
            page.value("kappa_recovering", **one),
            int(page.value("kappa_partitions_owned", **one)),
        )
        seen.append(state)
        status, body = second.get("/api/status")
        assert status == 200, body
        said.append(body["rebalancing"])
        with urllib.request.urlopen(second.base + "/dashboard", timeout=30) as response:
            assert response.status == 200
        return state == (0, 0, 2)

    second.wait_until(settled, 120, "the second worker to take over")
    assert (1, 0, 0) in seen, f"no scrape saw the rebalance: {seen}"
    assert True in said, "no status saw the rebalance"
