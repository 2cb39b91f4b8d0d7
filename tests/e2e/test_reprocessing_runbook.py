"""docs/reprocessing.md's runbook, run as a user types it, while live events keep arriving.

1. v1 (hourly windows) runs live;
2. v2 (half-hour windows) starts from a history file, cut at T, plus the live input;
3. v2 catches up (`kappa versions`);
4. `kappa verify` passes for v2, and for v1, with events still arriving;
5. `kappa promote` switches what a v1 worker answers to v2's windows, and the
   PostgreSQL sink's views from v1's tables to v2's: a reader polling them during the
   switch never sees a mix of versions or an empty answer;
6. `kappa retire` removes v1, and its tables.

The history file and the live input overlap on both sides of T. When the live events
stop, v2's tables and window results, and its PostgreSQL views, equal DuckDB's over
(history rows before T) UNION (live events at or after T), each counted once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from app.datagen import DatasetShape, generate, write
from tests.support.harness import Harness
from tests.support.oracle import HOUR, batch_results
from tests.support.postgres import (
    SinkProcess,
    tables_of,
    totals_in,
    wait_sink_caught_up,
    windows_in,
)
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.runbook import LiveTraffic, run, versions, wait_for
from tests.support.times import DAY, iso, ms
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

SHAPE = DatasetShape(events=24_000, keys=120, span_ms=6 * DAY, disorder_ms=60_000, seed=41)
HALF_HOURLY = [("30m", HOUR // 2, HOUR // 2)]
# events/s: the live traffic never stops during the runbook, which waits for two sinks
# too (13,500 live events last 5.6 minutes)
LIVE_RATE = 40.0
OVERLAP = 1_500  # events on each side of the cut that both the file and the topic hold
SINK_TABLES = ("windows", "totals", "dead_letters")


def window_names(worker: WorkerProcess, key: str) -> set[str]:
    status, body = worker.get(f"/api/keys/{key}/windows")
    assert status == 200, body
    return {window["window"] for window in body["windows"]}


def results_of(
    worker: WorkerProcess,
    harness: Harness,
    version: int,
    expected: list[dict[str, Any]],
    windows: list[tuple[str, int, int]],
    name: str,
) -> None:
    """The version's totals, windows and final results equal DuckDB's over ``expected``."""
    path = harness.tmp_path / f"{name}.csv"
    write(iter(expected), path)
    want_totals, want_windows = batch_results(path, windows)
    times = [ms(e["ts"]) for e in expected]
    totals, found, final = api_results(
        [worker], set(want_totals), min(times) - DAY, max(times) + DAY
    )
    assert totals == want_totals
    assert found == want_windows
    finals = topic_finals(
        harness.settings.bootstrap, f"kappa.t{harness.unique}.v{version}.window-results"
    )
    assert finals
    assert finals == {k: v for k, v in found.items() if final[k]}


def halves(events: list[dict[str, Any]]) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """The cut T (an event's time) and the events before it and at or after it."""
    ordered = sorted(events, key=lambda e: ms(e["ts"]))
    cut = ms(ordered[len(ordered) // 2]["ts"])
    return (
        cut,
        [e for e in ordered if ms(e["ts"]) < cut],
        [e for e in ordered if ms(e["ts"]) >= cut],
    )


class ViewPoller:
    """Reads both views in one statement (one snapshot), over and over, from a thread:
    the window names the windows view holds, and the totals view's row count."""

    def __init__(self, url: str, schema: str, name: str) -> None:
        self.query = sql.SQL(
            'SELECT (SELECT array_agg(DISTINCT "window") FROM {}), (SELECT count(*) FROM {})'
        ).format(
            sql.Identifier(schema, f"{name}_windows"), sql.Identifier(schema, f"{name}_totals")
        )
        self.url = url
        self.answers: list[tuple[frozenset[str], int]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ViewPoller:
        self._thread.start()
        wait_for(lambda: len(self.answers) >= 20, 30, "the view poller to read")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                try:
                    row = conn.execute(self.query).fetchone()
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                    continue
                assert row is not None
                self.answers.append((frozenset(row[0] or ()), int(row[1])))

    def versions_seen(self) -> list[frozenset[str]]:
        """The distinct answers of the windows view, in the order they came."""
        seen: list[frozenset[str]] = []
        for names, _ in self.answers:
            if not seen or seen[-1] != names:
                seen.append(names)
        return seen


def test_the_reprocessing_runbook_with_live_traffic_throughout(
    kappa: Harness, postgres_url: str, start_sink: Callable[[dict[str, str]], SinkProcess]
) -> None:
    name = f"t{kappa.unique}"
    cut, before, after = halves(list(generate(SHAPE)))
    history = kappa.tmp_path / "history.csv"
    write(iter(before + after[:OVERLAP]), history)  # the file reaches past the cut
    live_events = before[-OVERLAP:] + after  # the topic starts before the cut

    v1_spec = kappa.make_spec(windows='{ size = "1h" }', version=1)
    v2_spec = kappa.make_spec(
        windows='{ size = "30m" }', version=2, extra=f'\n[history]\ncut = "{iso(cut)}"\n'
    )
    schema = f"t{kappa.unique}"
    to_postgres = {
        "KAPPA_POSTGRES_URL": postgres_url,
        "KAPPA_POSTGRES_SCHEMA": schema,
        "KAPPA_SINK_METRICS_PORT": "0",
    }
    v1_env = kappa.env(v1_spec, partitions=2, **to_postgres)
    v2_env = kappa.env(v2_spec, partitions=2, **to_postgres)

    # 1. v1 runs live, and its sink writes v1's tables; the views show them.
    v1 = kappa.start_worker(v1_env)
    v1.wait_ready(partitions=2)
    v1_sink = start_sink(v1_env)
    with LiveTraffic(kappa.settings.bootstrap, kappa.topic, live_events, LIVE_RATE) as live:
        wait_for(lambda: live.sent > 500, 60, "live events to flow")

        # 2. v2 starts from the history file plus the live input.
        v2 = kappa.start_worker(v2_env)
        v2.wait_ready(partitions=2)
        v2_sink = start_sink(v2_env)
        printed = run(v2_env, "replay", str(history))
        assert "rows at or after it were skipped" in " ".join(printed.split())

        # 3. v2 catches up.
        wait_for(lambda: versions(v2_env, name)[2]["lag_total"] <= 200, 240, "v2 to catch up")
        shown = versions(v1_env, name)
        assert set(shown) == {1, 2}
        seam = shown[2]["seam"]  # the seam, as `kappa versions` reports it
        assert seam["sealed"] is True
        assert seam["cut_ms"] == cut
        assert seam["rows_taken_from_history"] == len(before)
        assert seam["gap"] is False
        assert set(seam["states"].values()) == {"live"}
        assert shown[1]["seam"] is None
        table = run(v1_env, "versions", name, "--sample", "0")
        assert f"v2 seam: cut {iso(cut)[:19]}" in table
        assert live.sent < len(live_events), "the live traffic ended before the runbook"

        # 4. verify passes for both versions, while events keep arriving.
        run(v2_env, "verify", str(v2_spec), "--version", "2")
        run(v1_env, "verify", str(v1_spec), "--version", "1")

        # 5. promote switches readers: a v1 worker now answers with v2's windows, and
        # the views show v2's tables. Before, they show v1's; no reader sees a mix.
        for version, sink in ((1, v1_sink), (2, v2_sink)):
            wait_sink_caught_up(
                postgres_url, schema, kappa.settings.bootstrap, name, version, sink, max_lag=200
            )
        assert versions(v1_env, name)[2]["sink"]["started"] is True
        with ViewPoller(postgres_url, schema, name) as poller:
            assert poller.versions_seen() == [frozenset({"1h"})]
            printed = run(v2_env, "promote", str(v2_spec), "2", "--verify")
            assert "views now show v2" in printed
            wait_for(lambda: poller.versions_seen()[-1] == {"30m"}, 10, "the views to show v2")
            wait_for(lambda: len(poller.answers) >= 40, 30, "answers after the switch")
        assert poller.versions_seen() == [frozenset({"1h"}), frozenset({"30m"})]
        assert not poller.errors
        assert all(rows > 0 for _, rows in poller.answers)
        assert versions(v1_env, name)[2]["sink"]["views"] is True
        key = live_events[-1]["customer_id"]
        wait_for(lambda: window_names(v1, key) == {"30m"}, 30, "v1's API to answer for v2")
        assert kappa_cli(v1_env, "retire", name, "2", "--yes").returncode == 4  # active

        # 6. retire removes v1 and its tables, once its worker has stopped.
        assert v1.stop() == 0
        assert v1_sink.stop() == 0
        run(v1_env, "retire", name, "1", "--yes")
        assert tables_of(postgres_url, schema) == {f"{name}_v2_{t}" for t in SINK_TABLES}
        assert set(versions(v2_env, name)) == {2}
        assert live.sent < len(live_events), "the live traffic ended before the runbook"
        produced = live.stop()

    # Nothing lost, nothing counted twice: v2 equals the batch answer over the union.
    wait_processed([v2], kappa.settings.bootstrap, kappa.topic)
    union = before + [e for e in produced if ms(e["ts"]) >= cut]
    results_of(v2, kappa, 2, union, HALF_HOURLY, "union")
    run(v2_env, "verify", str(v2_spec), "--version", "2")
    # And the views show v2's numbers: the totals and the final windows, DuckDB's.
    wait_sink_caught_up(postgres_url, schema, kappa.settings.bootstrap, name, 2, v2_sink)
    path = kappa.tmp_path / "union-sink.csv"
    write(iter(union), path)
    want_totals, want_windows = batch_results(path, HALF_HOURLY)
    assert totals_in(postgres_url, schema, f"{name}_totals") == want_totals
    finals = windows_in(postgres_url, schema, f"{name}_windows")
    assert finals
    assert finals == {k: want_windows[k] for k in finals}
