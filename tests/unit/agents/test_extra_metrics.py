"""``first``, ``last`` and ``count_distinct`` through the processor, against a plain
fold: a sort by (time, offset) for the first two, a Python set for the third.

The scenarios (times drawn from a small range, so many events tie; values that repeat)
are the processor tests'; any split into batches, with restarts between them, must give
each key's and each window's values of the fold, and the same stored bytes as one event
at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.events import Event
from agents.processor import PartitionProcessor
from tests.support.times import starts_holding
from tests.unit.agents.test_processor import (
    VALUE_NAMES,
    DictState,
    Scenario,
    WinId,
    apply_in_batches,
    decoded,
    open_of,
    run,
    scenarios,
    wid,
)

EXTRAS = ("count", "first", "last", "count_distinct", "sum", "p50")
Stamped = tuple[int, int, tuple[float | None, ...]]  # time, offset, values


def expected(rows: list[Stamped]) -> dict[str, Any]:
    """The count, and each field's first and last non-null value of the rows sorted by
    (time, offset), and its number of distinct non-null values."""
    ordered = sorted(rows, key=lambda row: (row[0], row[1]))
    values: dict[str, Any] = {}
    for j, name in enumerate(VALUE_NAMES):
        xs = [v for _, _, vs in ordered if (v := vs[j]) is not None]
        values[name] = {
            "first": xs[0] if xs else None,
            "last": xs[-1] if xs else None,
            "count_distinct": len(set(xs)),
        }
    return {"count": len(rows), "values": values}


def fold(scenario: Scenario) -> tuple[dict[str, list[Stamped]], dict[WinId, list[Stamped]]]:
    """Each key's and each window's events, on-time ones only in windows."""
    totals: dict[str, list[Stamped]] = defaultdict(list)
    windows: dict[WinId, list[Stamped]] = defaultdict(list)
    newest: int | None = None
    for offset, event in zip(scenario.offsets, scenario.events, strict=True):
        row = (event.ts_ms, offset, event.values)
        totals[event.key].append(row)
        if newest is None or event.ts_ms >= newest - scenario.lateness:
            for name, size, step in scenario.windows:
                for start in starts_holding(event.ts_ms, size, step):
                    windows[(event.key, name, start)].append(row)
        newest = event.ts_ms if newest is None else max(newest, event.ts_ms)
    return totals, windows


def without_sums(result: dict[str, Any]) -> dict[str, Any]:
    """All but the sums, which the processor tests check."""
    return {
        "count": result["count"],
        "values": {
            name: {m: found[m] for m in ("first", "last", "count_distinct")}
            for name, found in result["values"].items()
        },
    }


@settings(deadline=None, max_examples=150)
@given(scenario=scenarios(), data=st.data())
def test_first_last_and_count_distinct_equal_the_fold_in_any_batching(
    scenario: Scenario, data: st.DataObject
) -> None:
    scenario = replace(scenario, metrics=EXTRAS)
    state, outcomes = apply_in_batches(scenario, data)
    closed = {wid(result): result.result for outcome in outcomes for result in outcome.closed}

    totals, windows = fold(scenario)
    for key, record in state.iter_keys():
        got = record.totals.result(VALUE_NAMES, EXTRAS)
        assert without_sums(got) == expected(totals[key])
    # The windows still open, each merged from its panes.
    closed.update(open_of(state, PartitionProcessor(scenario.config, state, 0)))
    assert set(closed) == set(windows)
    for w, got in closed.items():
        assert without_sums(got) == expected(windows[w])
    one_by_one, _, _ = run(scenario)
    assert decoded(state.snapshot()) == decoded(one_by_one.snapshot())


def test_a_tie_in_time_goes_to_the_lower_offset_whatever_the_batch_order() -> None:
    events = tuple(Event("a", 10, (v, None), {}) for v in (3.0, 1.0, 2.0))
    scenario = Scenario(
        windows=(("100/100", 100, 100),),
        lateness=0,
        retention=0,
        events=events,
        offsets=(7, 8, 9),
        metrics=EXTRAS,
    )
    state = DictState()
    PartitionProcessor(scenario.config, state, 0).apply(list(zip((7, 8, 9), events, strict=True)))
    (_, record), *_ = state.iter_keys()
    got = record.totals.result(VALUE_NAMES, ("first", "last"))["values"]
    assert got == {"x": {"first": 3.0, "last": 2.0}, "y": {"first": None, "last": None}}
