"""A crash between the steps of a store, with session windows, on real RocksDB stores:
a session that an event merged and moved to a new end is stored once, whichever step a
crash cut, and however the events are batched again after it; what a crash left under a
stale end is never published."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tables.aggregation_config import AggregationConfig
from tables.pipeline_tables import PipelineTables
from tables.windows import Sessions
from tests.support.crash_runs import apply_and_store, events, first_then_crashed, stored
from tests.support.stores import AcknowledgingSender, offline_tables

PARTITION = 0
CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(Sessions("session/10ms", 10),),
    lateness_ms=20,
    retention_ms=1_000,
)
# Two sessions of key a: [100] and [120] (ends 111 and 131).
FIRST = [(100, 1e16), (120, 1.0)]
# 110 merges them (end 131), 125 moves the merged one to end 136: both earlier
# records are deleted. Values whose naive sum is inexact.
SECOND = [(110, -1e16), (125, 0.1)]
# The watermark passes 136: the session closes.
THIRD = [(200, 0.2)]


def run(tables: PipelineTables, fail_on: int | None, one_by_one: bool) -> list[Any]:
    """The three batches, the second crashed at send ``fail_on`` and then applied again
    (whole, or an event a batch); the closed results published after the crash."""
    second = events(SECOND, len(FIRST))
    first_then_crashed(CONFIG, tables, events(FIRST, 0), second, fail_on)
    published = []
    # The restart: a new state and processor from what the stores kept.
    for batch in [[event] for event in second] if one_by_one else [second]:
        outcome = apply_and_store(
            CONFIG, tables.partition_state(PARTITION), batch, AcknowledgingSender()
        )
        published += outcome.closed
    third = events(THIRD, len(FIRST) + len(SECOND))
    published += apply_and_store(
        CONFIG, tables.partition_state(PARTITION), third, AcknowledgingSender()
    ).closed
    return published


@pytest.mark.parametrize("one_by_one", [False, True])
@pytest.mark.parametrize("fail_on", [1, 2, 3, 4])
def test_a_crash_after_any_step_stores_and_publishes_what_an_uncrashed_run_does(
    tmp_path: Path, fail_on: int, one_by_one: bool
) -> None:
    with offline_tables(tmp_path / "clean") as tables:
        clean_published = run(tables, None, one_by_one=False)
        clean = stored(tables)
    with offline_tables(tmp_path / "crashed") as tables:
        published = run(tables, fail_on, one_by_one)
        crashed = stored(tables)
    assert crashed == clean
    assert [r.as_json() for r in published] == [r.as_json() for r in clean_published]
    # One session of the four events, 100 to 125, ending 125 + 10 + 1; its sum exact.
    [session] = clean_published
    assert (session.start_ms, session.end_ms) == (100, 136)
    assert session.result["count"] == 4
    assert session.result["values"]["x"]["sum"] == math.fsum(v for _, v in FIRST + SECOND)
