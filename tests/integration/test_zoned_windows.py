"""Days in New York through the real worker: the windows of 2024's two daylight-saving
days last 23 and 25 hours, and every day equals DuckDB's ``time_bucket`` in that zone."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.oracle import batch_results, zoned_days
from tests.support.results import api_results, topic_finals, wait_processed
from tests.support.times import DAY, HOUR, ms
from tests.support.worker import WorkerProcess, run_kappa

pytestmark = pytest.mark.broker

ZONE = "America/New_York"
DAY_WINDOW = f"1d@{ZONE}"


def test_new_york_days_equal_duckdb_time_bucket(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    running_worker: Callable[..., tuple[WorkerProcess, dict[str, str]]],
    unique: str,
    tmp_path: Path,
) -> None:
    events = [
        event
        for start in (datetime(2024, 3, 8, tzinfo=UTC), datetime(2024, 11, 1, tzinfo=UTC))
        for event in generate(
            DatasetShape(events=1_500, keys=20, start=start, span_ms=5 * DAY, seed=start.month)
        )
    ]
    history = tmp_path / "history.csv"
    write(iter(events), history)
    # A retention of a year keeps March's windows queryable after November's events.
    spec = make_spec(
        windows='{ size = "1d" }, { size = "1h" }', retention="365d", extra=f'timezone = "{ZONE}"\n'
    )
    worker, env = running_worker(spec, partitions=2)
    run_kappa(env, "replay", str(history))
    wait_processed([worker], kafka_settings.bootstrap, f"test-input-{unique}")

    want_days, day_ends = zoned_days(history, DAY_WINDOW, ZONE)
    want_totals, want_hours = batch_results(history, [("1h", HOUR, HOUR)])
    t_from = ms(min(e["ts"] for e in events)) - 2 * DAY
    t_to = ms(max(e["ts"] for e in events)) + 2 * DAY
    totals, windows, final = api_results([worker], set(want_totals), t_from, t_to)
    assert totals == want_totals
    assert windows == want_days | want_hours

    # The days' ends, as the API reports them, and the DST days' lengths.
    key = min(want_totals)
    query = urllib.parse.urlencode({"window": DAY_WINDOW, "from": t_from, "to": t_to})
    _, body = worker.get(f"/api/keys/{key}/windows?{query}")
    ends = {w["start_ms"]: w["end_ms"] for w in body["windows"]}
    assert ends == {start: end for start, end in day_ends.items() if start in ends}
    hours = {
        (end - start) // HOUR
        for start, end in ends.items()
        if start in (ms("2024-03-10T05:00:00+00:00"), ms("2024-11-03T04:00:00+00:00"))
    }
    assert hours == {23, 25}

    # The March days closed when November's events moved the watermark past them.
    finals = topic_finals(kafka_settings.bootstrap, f"kappa.t{unique}.v1.window-results")
    march = {k: v for k, v in want_days.items() if k[2] < ms("2024-04-01T00:00:00+00:00")}
    assert march
    assert {k: v for k, v in finals.items() if k in march} == march
    assert all(final[k] for k in march)
