"""A crash between the steps of a store, with hopping windows kept by panes, on real
RocksDB stores: a window whose first pane was deleted after it closed is never closed
again from what is left, and every window's stored result is the uncrashed run's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tables import json_bytes
from tables.aggregation_config import AggregationConfig
from tables.pipeline_tables import PipelineTables
from tables.records import window_key
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


# Pane 2 opens and, at 9, closes (windows 0 and 2) and expires within one store: it is
# never stored, and a crash of that store must leave what the uncrashed run leaves.
OPENS_AND_CLOSES = [(2, -1e16), (3, 0.1), (9, 0.2)]
LATER = [(13, 0.3)]


def run_through_a_pane_never_stored(
    tables: PipelineTables, fail_on: int | None
) -> tuple[list[Any], AcknowledgingSender]:
    """FIRST's first two events, then OPENS_AND_CLOSES (its store failing at send
    ``fail_on``, then the restart), then LATER; every result closed after FIRST, and
    what was sent for them."""
    batch = events(OPENS_AND_CLOSES, 2)
    first_then_crashed(CONFIG, tables, events(FIRST[:2], 0), batch, fail_on)
    sender = AcknowledgingSender()
    state = tables.partition_state(PARTITION)
    closed = list(apply_and_store(CONFIG, state, batch, sender).closed)
    state = tables.partition_state(PARTITION)
    closed += apply_and_store(CONFIG, state, events(LATER, 5), sender).closed
    return closed, sender


@pytest.mark.parametrize("fail_on", [None, 1, 2, 3, 4])
def test_a_pane_opened_and_closed_between_two_stores_is_never_stored(
    tmp_path: Path, fail_on: int | None
) -> None:
    with offline_tables(tmp_path / "clean") as tables:
        clean_closed, sender = run_through_a_pane_never_stored(tables, None)
        clean = stored(tables)
        pane_2 = json_bytes.dumps(window_key("4/2", 2, "a"))
        written = [record for sent in sender.sends for record in sent if record[2] == pane_2]
        assert written == []  # neither its record nor its deletion
    with offline_tables(tmp_path / "crashed") as tables:
        crashed_closed, _ = run_through_a_pane_never_stored(tables, fail_on)
        assert stored(tables) == clean
    # The windows at 0 and 2 hold pane 2; the oracle is math.fsum of their values.
    values = dict(FIRST[:2] + OPENS_AND_CLOSES + LATER)
    sums = {r.start_ms: r.result["values"]["x"]["sum"] for r in clean_closed}
    for start in (0, 2):
        assert sums[start] == math.fsum(v for ts, v in values.items() if start <= ts < start + 4)
    # Closed again after the restart only where the closing was not stored, the same.
    by_start = {r.start_ms: r.as_json() for r in clean_closed}
    assert all(r.as_json() == by_start[r.start_ms] for r in crashed_closed)
