"""A version with a cut: history files before it, the live input topic from it on.

The history file and the live topic overlap on both sides of the cut: the file holds
events after the cut that the topic holds too, and the topic holds events before the
cut that the file holds too. The version with the cut must count each event once:
its tables and window results equal DuckDB's over (history rows before the cut) UNION
(live records at or after it). The older version, on the same input topic with no cut,
must never see the history.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from agents.partitions import expected_partition
from app.datagen import DatasetShape, generate, write
from app.kafka_client import offset_ranges
from app.replay.into_history import delete_records_before
from tests.support.datasets import HOURLY
from tests.support.harness import Harness
from tests.support.kafka import produce_events
from tests.support.oracle import batch_results
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.times import DAY, iso, ms
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker

SEAM = DatasetShape(events=8_000, keys=80, span_ms=4 * DAY, seed=31)
# Big enough that applying its history takes seconds on an idle machine: the test kills
# the worker inside it.
BIG_HISTORY = DatasetShape(events=240_000, keys=300, span_ms=10 * DAY, seed=32)
COMMIT_EVENTS = 3_000
OVERLAP = 600  # events on each side of the cut that both the file and the topic hold


def split(events: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """The cut (an event's time, so that one event is exactly at it), and the events
    before and at-or-after it, in time order."""
    ordered = sorted(events, key=lambda e: ms(e["ts"]))
    cut = ms(ordered[len(ordered) // 2]["ts"])
    before = [e for e in ordered if ms(e["ts"]) < cut]
    after = [e for e in ordered if ms(e["ts"]) >= cut]
    return cut, before, after


def cut_spec(kappa: Harness, cut: int, version: int = 2) -> Path:
    return kappa.make_spec(version=version, extra=f'\n[history]\ncut = "{iso(cut)}"\n')


def seam_of(worker: WorkerProcess) -> dict[str, Any]:
    status, body = worker.get("/api/status")
    assert status == 200, body
    seam: dict[str, Any] = body["seam"]
    return seam


def assert_results(
    workers: list[WorkerProcess],
    kappa: Harness,
    version: int,
    expected: list[dict[str, Any]],
    name: str,
) -> None:
    """The version's totals, windows and final results equal DuckDB's over ``expected``."""
    path = kappa.tmp_path / f"{name}.csv"
    write(iter(expected), path)
    want_totals, want_windows = batch_results(path, HOURLY)
    times = [ms(e["ts"]) for e in expected]
    totals, windows, final = api_results(
        workers, set(want_totals), min(times) - 2 * DAY, max(times) + 2 * DAY
    )
    assert totals == want_totals
    assert windows == want_windows
    finals = topic_finals(
        kappa.settings.bootstrap, f"kappa.t{kappa.unique}.v{version}.window-results"
    )
    assert finals, "no window closed"
    assert finals == {k: v for k, v in windows.items() if final[k]}


def test_history_then_live_counts_each_event_once(kappa: Harness) -> None:
    cut, before, after = split(list(generate(SEAM)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before + after[:OVERLAP]), history)  # overlaps the topic after the cut
    live = before[-OVERLAP:] + after  # overlaps the file before the cut

    v1_env = kappa.env(kappa.make_spec(), partitions=2)
    v1 = kappa.start_worker(v1_env)
    v1.wait_ready(partitions=2)
    asyncio.run(produce_events(kappa.settings.bootstrap, kappa.topic, live, "customer_id"))

    v2_env = kappa.env(cut_spec(kappa, cut), partitions=2)
    v2 = kappa.start_worker(v2_env)
    v2.wait_ready(partitions=2)
    v2.wait_until(lambda: "waiting for history" in v2.log_path.read_text(), 60, "the wait")
    waiting = seam_of(v2)
    assert waiting["sealed"] is False
    assert {p["state"] for p in waiting["partitions"].values()} == {"waiting for history"}
    assert v2.get("/api/status")[1]["counts"]["events_since_start"] == 0

    printed = " ".join(run_kappa(v2_env, "replay", str(history)).split())  # unwrapped
    assert f"{len(before):,} events before it" in printed
    assert f"{OVERLAP:,} rows at or after it were skipped" in printed

    for worker in (v1, v2):  # each version's own progress, not the other's
        wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    assert_results([v2], kappa, 2, before + after, "union")
    # The running version never saw the history: it holds what the topic holds.
    assert_results([v1], kappa, 1, live, "live")

    seam = seam_of(v2)
    assert seam["sealed"] is True
    assert seam["cut_ms"] == cut
    assert seam["rows_taken_from_history"] == len(before)
    assert seam["live_skipped_before_cut"] == OVERLAP
    assert seam["seam_record"]["rows"] == len(before)
    assert seam["seam_record"]["after_cut"] == OVERLAP
    assert seam["gap"] is False
    for partition in seam["partitions"].values():
        assert partition["state"] == "live"
        assert partition["first_live_offset"] == 0
    ends = asyncio.run(
        offset_ranges({"bootstrap_servers": kappa.settings.bootstrap}, [kappa.topic])
    )
    assert sum(end for _, end in ends[kappa.topic].values()) == len(live)

    # The history is sealed: a second replay is refused and changes nothing.
    again = kappa_cli(v2_env, "replay", str(history))
    assert again.returncode == 1
    assert "is sealed" in again.stderr
    assert "bump `version`" in again.stderr


def test_a_worker_killed_in_its_history_resumes_exactly(kappa: Harness) -> None:
    cut, before, after = split(list(generate(BIG_HISTORY)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before + after[:OVERLAP]), history)
    env = kappa.env(
        cut_spec(kappa, cut),
        partitions=2,
        KAPPA_SESSION_TIMEOUT="8",  # the killed worker leaves the group sooner
        KAPPA_COMMIT_EVENTS=str(COMMIT_EVENTS),  # checkpoints inside the history
    )
    first = kappa.start_worker(env)
    first.wait_ready(partitions=2)
    live = before[-OVERLAP:] + after
    asyncio.run(produce_events(kappa.settings.bootstrap, kappa.topic, live, "customer_id"))
    run_kappa(env, "replay", str(history))

    def in_history() -> bool:
        partitions = seam_of(first)["partitions"].values()
        states = {p["state"] for p in partitions}
        assert "live" not in states or "history" in states, "the history ended unseen"
        # Two commit intervals into a partition's history: a checkpoint is stored in it.
        return any(
            p["state"] == "history" and p["history_rows_taken"] > 2 * COMMIT_EVENTS
            for p in partitions
        )

    first.wait_until(in_history, 120, "the worker to be inside its history", poll_s=0.05)
    first.kill()

    second = kappa.start_worker(env)
    second.wait_ready(partitions=2)
    wait_processed([second], kappa.settings.bootstrap, kappa.topic)
    assert_results([second], kappa, 2, before + after, "union")
    assert seam_of(second)["rows_taken_from_history"] == len(before)
    # The restarted worker resumed inside the history, from a stored checkpoint.
    resumed = re.findall(
        r"partition \d+: applying history offsets (\d+)\.\.", second.log_path.read_text()
    )
    assert any(int(start) > 0 for start in resumed), resumed


def test_a_cut_that_leaves_a_gap(kappa: Harness) -> None:
    cut, before, after = split(list(generate(SEAM)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before), history)
    env = kappa.env(cut_spec(kappa, cut), partitions=1)
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=1)
    asyncio.run(produce_events(kappa.settings.bootstrap, kappa.topic, after, "customer_id"))
    # Retention took the first 100 live events, all after the cut: they are lost.
    options = {"bootstrap_servers": kappa.settings.bootstrap}
    asyncio.run(delete_records_before(options, kappa.topic, {0: 100}))

    refused = kappa_cli(env, "replay", str(history))
    assert refused.returncode == 1
    assert "the cut leaves a gap: partition 0 of" in refused.stderr
    assert "now starts at offset 100" in refused.stderr
    assert "--allow-gap" in refused.stderr
    history_topic = f"kappa.t{kappa.unique}.v2.history"
    ranges = asyncio.run(
        offset_ranges({"bootstrap_servers": kappa.settings.bootstrap}, [history_topic])
    )
    assert sum(end for _, end in ranges.get(history_topic, {}).values()) == 0  # nothing written
    assert seam_of(worker)["sealed"] is False

    run_kappa(env, "replay", str(history), "--allow-gap")
    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    seam = seam_of(worker)
    assert seam["gap"] is True
    assert "events between the cut and it were deleted by retention" in seam["gap_explanation"][0]
    assert seam["partitions"]["0"]["first_live_offset"] == 100
    assert "GAP AFTER THE CUT" in worker.log_path.read_text()
    assert_results([worker], kappa, 2, before + after[100:], "with-gap")


def test_a_history_file_that_does_not_parse_changes_nothing(kappa: Harness) -> None:
    cut, before, _ = split(list(generate(SEAM)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before[:50]), history)
    with history.open("a") as file:
        file.write("c00001,not-a-time,1,1\n")
    env = kappa.env(cut_spec(kappa, cut), partitions=1)
    refused = kappa_cli(env, "replay", str(history))
    assert refused.returncode == 3
    assert "nothing was produced" in refused.stderr
    topics = [f"kappa.t{kappa.unique}.v2.history", f"kappa.t{kappa.unique}.v2.control"]
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": kappa.settings.bootstrap}, topics))
    history_ends = ranges.get(topics[0], {})
    assert sum(end for _, end in history_ends.values()) == 0
    bad_cut = kappa.make_spec(version=3, extra='\n[history]\ncut = "the first of March"\n')
    spec_refused = kappa_cli(kappa.env(bad_cut), "replay", str(history))
    assert spec_refused.returncode == 1
    assert "history.cut: 'the first of March' is not an ISO-8601 time" in spec_refused.stderr


def test_a_partition_with_no_live_records_still_gets_its_history(kappa: Harness) -> None:
    cut, before, after = split(list(generate(SEAM)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before), history)
    # Live records only on partition 0: partition 1's history must not wait for one.
    live = [e for e in after if expected_partition(e["customer_id"], 2) == 0]
    assert any(expected_partition(e["customer_id"], 2) == 1 for e in before)

    env = kappa.env(cut_spec(kappa, cut), partitions=2)
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)
    asyncio.run(produce_events(kappa.settings.bootstrap, kappa.topic, live, "customer_id"))
    run_kappa(env, "replay", str(history))

    wait_processed([worker], kappa.settings.bootstrap, kappa.topic)
    worker.wait_until(
        lambda: (
            {p["state"] for p in seam_of(worker)["partitions"].values()} == {"live"}
            or seam_of(worker)["rows_taken_from_history"] == len(before)
        ),
        60,
        "every partition's history to be applied",
    )
    assert_results([worker], kappa, 2, before + live, "quiet")
