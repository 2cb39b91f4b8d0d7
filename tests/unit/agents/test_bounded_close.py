"""Closing in bounded steps (``PartitionProcessor.close_step``) on real RocksDB stores:
a watermark move that closes thousands of hopping windows closes them a budget at a
time, stored between steps, with every result equal to a plain Python fold's, none
published twice, and the rest closed by a new processor after a crash between steps."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState, store_batch
from tables.queries import StateQueries
from tables.records import WindowResult
from tables.windows import aligned_window
from tests.support.stores import AcknowledgingSender, offline_tables

SIZE, STEP = 4, 1  # ms: windows of 4 panes, every pane
CONFIG = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(aligned_window(f"{SIZE}/{STEP}", SIZE, STEP),),
    lateness_ms=50,  # the events at 0..9 close nothing; the one at 100 closes them all
    retention_ms=1_000_000,
)
KEYS = [f"k{i:03d}" for i in range(300)]
# Bytes of unstored changes a closing step stops at: a few starts' windows here.
BUDGET = 1_000_000
Closed = dict[tuple[str, int], tuple[int, float]]


def events() -> list[tuple[int, Event]]:
    """Every key's events at times 0..9 with values whose naive sums are inexact, then
    one event at 100 that closes every window holding them (13 starts of 300 keys)."""
    rng = random.Random(11)
    rows = [Event(key, ts, (rng.uniform(-1e6, 1e6),), {}) for ts in range(10) for key in KEYS]
    rows.append(Event("later", 100, (0.1,), {}))
    return list(enumerate(rows))


def folded(batch: list[tuple[int, Event]]) -> Closed:
    """Per (key, start) of a window ending at or before the watermark (50): its count
    and exact sum."""
    values: dict[tuple[str, int], list[float]] = {}
    for _, event in batch:
        for start in range(event.ts_ms - SIZE + 1, event.ts_ms + 1):
            if start + SIZE <= 50:
                value = event.values[0]
                assert value is not None
                values.setdefault((event.key, start), []).append(value)
    return {window: (len(vs), math.fsum(vs)) for window, vs in values.items()}


def as_closed(results: list[WindowResult]) -> Closed:
    closed: Closed = {}
    for result in results:
        window = (result.key, result.start_ms)
        assert window not in closed, f"{window} published twice"
        x = result.result["values"]["x"]
        closed[window] = (result.result["count"], x["sum"])
    return closed


def close_all(
    processor: PartitionProcessor, state: TablePartitionState, steps: int | None
) -> tuple[list[WindowResult], int, int]:
    """Up to ``steps`` closing steps (all, for None), each stored; the results, the steps
    taken and the most unstored bytes a step left."""
    results: list[WindowResult] = []
    taken = peak = 0
    while processor.closing and (steps is None or taken < steps):
        results += processor.close_step()
        taken += 1
        peak = max(peak, state.held_bytes())
        asyncio.run(store_batch([state], AcknowledgingSender()))
    return results, taken, peak


def test_a_big_closing_takes_bounded_steps_with_every_result_exact(tmp_path: Path) -> None:
    batch = events()
    expected = folded(batch)
    assert len(expected) == 13 * len(KEYS)
    peaks = {}
    for budget in (None, BUDGET):
        with offline_tables(tmp_path / str(budget)) as tables:
            state = tables.partition_state(0)
            processor = PartitionProcessor(CONFIG, state, 0, budget)
            # The events, stored; then the one that moves the clock past their windows.
            applied = processor.apply(batch[:-1])
            asyncio.run(store_batch([state], AcknowledgingSender()))
            applied.closed += processor.apply(batch[-1:]).closed
            peak = state.held_bytes()
            processor.checkpoint(batch[-1][0])
            asyncio.run(store_batch([state], AcknowledgingSender()))
            rest, steps, step_peak = close_all(processor, state, None)
            peaks[budget] = max(peak, step_peak)
            assert as_closed(applied.closed + rest) == expected
            if budget is None:
                assert steps == 0  # all closed with the move of the clock
            else:
                assert steps >= 2
            assert state.first_pane(CONFIG.paned[0].name, 99) is None
    # The budget bounds the closing's memory: it passes it by at most one span's
    # windows, where closing all at once takes four times as much.
    assert peaks[BUDGET] <= 2 * BUDGET
    assert peaks[None] >= 3 * BUDGET


def test_a_crash_between_steps_leaves_the_rest_to_close_once(tmp_path: Path) -> None:
    batch = events()
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        processor = PartitionProcessor(CONFIG, state, 0, BUDGET)
        before = processor.apply(batch).closed
        processor.checkpoint(batch[-1][0])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        stored_steps, _, _ = close_all(processor, state, 2)
        assert processor.closing
        # The crash: the processor and its state go; a new one starts from the stores.
        state = tables.partition_state(0)
        reopened = PartitionProcessor(CONFIG, state, 0, BUDGET)
        assert reopened.closing
        rest, _, _ = close_all(reopened, state, None)
        assert as_closed(before + stored_steps + rest) == folded(batch)


# Two hopping windows (20 ms every 10) whose many keys close together: cut into ranges
# of keys. The second pane of the window at 0 is kept for the next window, so a range
# read again would publish its keys twice. The keys include extensions of others by
# characters that sort before JSON's closing quote (" " and "!"), escaped ones and
# non-ASCII, which the store orders by their JSON text.
HOPPING = AggregationConfig(
    value_names=("x",),
    metrics=("count", "sum"),
    windows=(aligned_window("20/10", 20, 10),),
    lateness_ms=10,  # the events at 1..12 close nothing; the one at 30 closes -10 and 0
    retention_ms=1_000_000,
)
TRICKY = ["ab", "ab ", "ab!", 'ab"', "ab\\", "ab\t", "abc", "ab\u00e9", "ab\U0001f600", "a"]
# Each "t<i>" has two such extensions, which sort before it: a range of keys ending at it
# has taken them already.
MANY_KEYS = TRICKY + [f"t{i}{suffix}" for i in range(1000) for suffix in ("", " ", "!")]


def one_window_events() -> list[tuple[int, Event]]:
    """Three events per key in the panes at 0 and 10, then one at 30 that closes the
    windows at -10 and 0."""
    rng = random.Random(5)
    rows = [Event(key, ts, (rng.uniform(-1e9, 1e9),), {}) for ts in (1, 7, 12) for key in MANY_KEYS]
    rows.append(Event("closer", 30, (0.5,), {}))
    return list(enumerate(rows))


def one_window_folded(batch: list[tuple[int, Event]]) -> Closed:
    """Per (key, start) of a window [s, s + 20) with s a multiple of 10 ending at or
    before 20: its count and exact sum."""
    values: dict[tuple[str, int], list[float]] = {}
    for _, event in batch:
        for start in (event.ts_ms // 10 * 10 - 10, event.ts_ms // 10 * 10):
            if start + 20 <= 20:
                value = event.values[0]
                assert value is not None
                values.setdefault((event.key, start), []).append(value)
    return {window: (len(vs), math.fsum(vs)) for window, vs in values.items()}


def test_one_window_of_many_keys_closes_by_ranges_of_keys(tmp_path: Path) -> None:
    batch = one_window_events()
    budget = 300_000
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        processor = PartitionProcessor(HOPPING, state, 0, budget)
        processor.apply(batch[:-1])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        first = processor.apply(batch[-1:]).closed
        peak = state.held_bytes()
        processor.checkpoint(batch[-1][0])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        rest, steps, step_peak = close_all(processor, state, None)
        assert as_closed(first + rest) == one_window_folded(batch)
        assert steps >= 3
        assert max(peak, step_peak) <= 2 * budget
        assert state.get_close_cursor("20/10") is None
        assert state.first_pane("20/10", 9) is None


def test_a_crash_within_one_window_closes_each_key_once(tmp_path: Path) -> None:
    batch = one_window_events()
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        processor = PartitionProcessor(HOPPING, state, 0, 300_000)
        processor.apply(batch[:-1])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        before = processor.apply(batch[-1:]).closed
        processor.checkpoint(batch[-1][0])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        stored_steps, _, _ = close_all(processor, state, 1)
        assert state.get_close_cursor("20/10") is not None  # cut between two key ranges
        # The crash: a new processor from the stores.
        state = tables.partition_state(0)
        reopened = PartitionProcessor(HOPPING, state, 0, 300_000)
        rest, _, _ = close_all(reopened, state, None)
        assert as_closed(before + stored_steps + rest) == one_window_folded(batch)


def test_a_step_stops_at_its_time_budget(tmp_path: Path) -> None:
    """With no time to spare, each step closes one range of keys (at least one key's
    windows), and the steps together close every window exactly."""
    batch = events()[-41:]  # the last 40 keys' events at 9, and the one at 100
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        processor = PartitionProcessor(CONFIG, state, 0, BUDGET, close_seconds=0.0)
        processor.apply(batch[:-1])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        first = processor.apply(batch[-1:]).closed
        assert processor.closing
        assert 0 < len(first) < 4 * 40
        rest, steps, _ = close_all(processor, state, None)
        assert steps >= 10
        assert as_closed(first + rest) == folded(batch)


def test_between_steps_a_query_finds_every_window_whole(tmp_path: Path) -> None:
    """A window the watermark has passed is read from its panes until a step closes it,
    then from its result: between any two steps, held or stored, a query finds each of
    a key's windows once, exact, final exactly when it was published."""
    batch = one_window_events()
    expected = one_window_folded(batch)
    with offline_tables(tmp_path) as tables:
        state = tables.partition_state(0)
        processor = PartitionProcessor(HOPPING, state, 0, 300_000)
        processor.apply(batch[:-1])
        asyncio.run(store_batch([state], AcknowledgingSender()))
        published = as_closed(processor.apply(batch[-1:]).closed)
        processor.checkpoint(batch[-1][0])
        watermark = processor.watermark
        live = StateQueries(tables, HOPPING, lambda p: state, lambda p: watermark)
        stored = StateQueries(tables, HOPPING, lambda p: None, lambda p: None)
        steps = 0
        while True:
            for queries in (live, stored) if steps else (live,):
                found: dict[tuple[str, int], tuple[int, float]] = {}
                for key in MANY_KEYS:
                    for result in queries.windows(key, 0, HOPPING.windows, -10, 10):
                        window = (key, result["start_ms"])
                        assert window not in found
                        assert result["final"] == (window in published), window
                        found[window] = (result["count"], result["values"]["x"]["sum"])
                assert found == expected
            if not processor.closing:
                break
            published.update(as_closed(processor.close_step()))
            steps += 1
            asyncio.run(store_batch([state], AcknowledgingSender()))
        assert steps >= 3
        assert published == expected
