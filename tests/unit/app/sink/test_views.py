"""A version's sink lag, from the topics' end offsets and the offsets in PostgreSQL."""

from __future__ import annotations

from app.sink.views import sink_lag


def test_lag_counts_records_past_the_stored_offset_and_whole_unstarted_partitions() -> None:
    ends = {"results": {0: 10, 1: 5}, "changelog": {0: 7}}
    lag = sink_lag(2, ends, {("results", 0): 10, ("results", 1): 2})
    assert lag.started
    assert lag.lag == {"results": {0: 0, 1: 3}, "changelog": {0: 7}}
    assert lag.total == 10


def test_no_stored_offset_means_not_started() -> None:
    lag = sink_lag(1, {"results": {0: 4}}, {})
    assert not lag.started
    assert lag.total == 4
