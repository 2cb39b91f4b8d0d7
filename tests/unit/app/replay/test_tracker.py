"""A replay's rate and ETA, from the control records the replay writes."""

from __future__ import annotations

from typing import Any

import pytest

from app.replay.tracker import with_rates


def running(produced: int, at: str, **extra: Any) -> dict[str, Any]:
    return {"state": "running", "produced": produced, "seconds": 0, "updated_at": at, **extra}


def test_a_finished_replay_reports_its_averages() -> None:
    report = {"state": "complete", "produced": 9_000, "seconds": 3.0, "bytes_read": 600}
    rated = with_rates(None, report)
    assert rated["rows_per_second"] == 3_000
    assert rated["bytes_per_second"] == 200
    assert rated["eta_s"] is None
    assert {k: rated[k] for k in report} == report  # the report itself is kept


def test_a_running_replay_is_rated_between_two_reports() -> None:
    first = with_rates(None, running(1_000, "2026-01-01T00:00:00+00:00", bytes_read=100))
    assert first["rows_per_second"] is None
    assert first["eta_s"] is None
    second = with_rates(
        first,
        running(5_000, "2026-01-01T00:00:02+00:00", bytes_read=500, bytes_total=2_100),
    )
    assert second["rows_per_second"] == 2_000
    assert second["bytes_per_second"] == 200
    assert second["eta_s"] == pytest.approx(8.0)  # 1,600 bytes left at 200 bytes/s


def test_without_byte_counts_a_running_replay_has_a_rate_but_no_eta() -> None:
    first = with_rates(None, running(0, "2026-01-01T00:00:00+00:00"))
    second = with_rates(first, running(4_000, "2026-01-01T00:00:04+00:00"))
    assert second["rows_per_second"] == 1_000
    assert second["bytes_per_second"] is None
    assert second["eta_s"] is None


@pytest.mark.parametrize("at", ["2026-01-01T00:00:02+00:00", "yesterday", None])
def test_a_report_with_no_newer_time_keeps_the_last_rate(at: str | None) -> None:
    first = with_rates(None, running(0, "2026-01-01T00:00:00+00:00"))
    second = with_rates(first, running(2_000, "2026-01-01T00:00:02+00:00"))
    third = with_rates(second, running(3_000, at) if at else {"state": "running"})
    assert third["rows_per_second"] == 1_000
