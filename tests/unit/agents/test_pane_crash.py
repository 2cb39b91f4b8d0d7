"""A crash between the steps of a store, with hopping windows kept by panes, on real
RocksDB stores: a window whose first pane was deleted after it closed is never closed
again from what is left, and every window's stored result is the uncrashed run's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tables.aggregation_config import AggregationConfig
from tables.pipeline_tables import PipelineTables
from tables.windows import aligned_window
from tests.support.crash_runs import apply_and_store, events, first_then_crashed, stored
from tests.support.stores import AcknowledgingSender, offline_tables

PARTITION = 0
# Windows of 4 ms every 2 ms: panes of 2 ms, two per window.
CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(aligned_window("4/2", 4, 2),),
    lateness_ms=0,
    retention_ms=1_000,
)
# Values whose naive sums are inexact: the merged panes must keep every bit.
FIRST = [(0, 1e16), (1, 1.0), (2, -1e16), (3, 0.1)]
# At 5 the watermark closes the windows at -2 and 0; pane 0 expires, pane 2 (of the
# still open window at 2) is kept, and the new pane 4 is written.
SECOND = [(5, 0.2)]


def run(tables: PipelineTables, fail_on: int | None) -> Any:
    second = events(SECOND, len(FIRST))
    first_then_crashed(CONFIG, tables, events(FIRST, 0), second, fail_on)
    # The restart: a new state and processor from what the stores kept.
    return apply_and_store(CONFIG, tables.partition_state(PARTITION), second, AcknowledgingSender())


@pytest.mark.parametrize("fail_on", [1, 2, 3, 4])
def test_a_crash_after_any_step_stores_what_an_uncrashed_run_stores(
    tmp_path: Path, fail_on: int
) -> None:
    with offline_tables(tmp_path / "clean") as tables:
        clean_outcome = run(tables, None)
        clean = stored(tables)
    with offline_tables(tmp_path / "crashed") as tables:
        outcome = run(tables, fail_on)
        crashed = stored(tables)
    assert crashed == clean
    # Window 0 holds the four first events: its sum keeps every bit.
    window_0 = [r for r in clean_outcome.closed if r.start_ms == 0]
    assert [r.result["values"]["x"]["sum"] for r in window_0] == [math.fsum(v for _, v in FIRST)]
    # Closed again after the restart only where its closing was not stored, and then
    # with the same result.
    by_start = {r.start_ms: r.as_json() for r in clean_outcome.closed}
    for result in outcome.closed:
        assert result.as_json() == by_start[result.start_ms]
    if fail_on > 1:  # step 1 (results, the closed bound) was stored before the crash
        assert outcome.closed == []
