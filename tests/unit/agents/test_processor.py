"""The pure aggregation core (``agents.processor``), checked against a plain Python fold.

No Kafka and no Faust: ``DictState`` implements ``PartitionState`` with dicts of JSON bytes,
round-tripping every record through ``to_state``/``from_state`` and orjson the way the
RocksDB-backed ``TablePartitionState`` does, so a record that does not survive
serialisation fails here.

The expected values come from ``Fold``, written here from the policy alone (the watermark
is the maximum event time minus the lateness; an event behind the watermark at its arrival
is late, counted in its key's totals and in no window; a window closes when the watermark
reaches its end and its result is kept until the watermark reaches end + retention). It
uses none of kappa's window, watermark or aggregate code.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.events import Event
from agents.processor import BatchOutcome, Outcome, PartitionProcessor
from tables.aggregates import Agg
from tables.aggregation_config import AggregationConfig
from tables.partition_state import StoredCounts
from tables.records import (
    KeyRecord,
    OpenWindow,
    PartitionProgress,
    WindowResult,
    parse_window_key,
    window_key,
)
from tables.windows import PanedKind, aligned_window
from tests.support.fold import folded_result
from tests.support.times import starts_holding

VALUE_NAMES = ("x", "y")
METRICS = ("count", "sum", "min", "max", "mean")

Values = tuple[float | None, ...]
WinId = tuple[str, str, int]  # key, window name, start


# --- the state, in memory ------------------------------------------------------------


class DictState:
    """``PartitionState`` on dicts of orjson bytes: every read decodes a fresh record."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}
        self.windows: dict[str, bytes] = {}  # by window_key
        self.closed: dict[WinId, bytes] = {}
        self.progress: bytes | None = None
        self.buckets: dict[str, tuple[bytes, ...]] = {}  # each a list of chunks
        self.closed_through: dict[str, bytes] = {}
        self.cursors: dict[str, bytes] = {}

    def get_key(self, key: str) -> KeyRecord | None:
        raw = self.keys.get(key)
        return None if raw is None else KeyRecord.from_state(orjson.loads(raw))

    def put_key(self, key: str, record: KeyRecord) -> None:
        self.keys[key] = orjson.dumps(record.to_state())

    def get_window(self, window: str, start_ms: int, key: str) -> OpenWindow | None:
        raw = self.windows.get(window_key(window, start_ms, key))
        return None if raw is None else OpenWindow.from_state(orjson.loads(raw))

    def put_window(self, window: str, start_ms: int, key: str, record: OpenWindow) -> None:
        self.windows[window_key(window, start_ms, key)] = orjson.dumps(record.to_state())

    def delete_window(self, window: str, start_ms: int, key: str) -> None:
        self.windows.pop(window_key(window, start_ms, key), None)

    def take_panes(
        self,
        window: str,
        read_to: int,
        expire_to: int,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> tuple[dict[int, dict[str, OpenWindow]], str | None]:
        panes = sorted(
            (orjson.dumps(key), start, key, record)
            for (name, start, key), record in self.iter_windows()
            if name == window
            and start <= read_to
            and (after_key is None or orjson.dumps(key) > orjson.dumps(after_key))
        )
        found: dict[int, dict[str, OpenWindow]] = {}
        for taken, (text, start, key, record) in enumerate(panes):
            if limit is not None and taken >= limit and text != panes[taken - 1][0]:
                return found, panes[taken - 1][2]
            found.setdefault(start, {})[key] = record
            if start <= expire_to:
                del self.windows[window_key(window, start, key)]
        return found, None

    def take_sessions(
        self, window: str, watermark: int, limit: int | None
    ) -> tuple[dict[int, dict[str, OpenWindow]], bool]:
        ended = sorted(
            (start, key)
            for (name, start, key), _ in self.iter_windows()
            if name == window and start <= watermark
        )
        taken = ended if limit is None else ended[:limit]
        found: dict[int, dict[str, OpenWindow]] = {}
        for end, key in taken:
            raw = self.windows.pop(window_key(window, end, key))
            found.setdefault(end, {})[key] = OpenWindow.from_state(orjson.loads(raw))
        return found, len(taken) < len(ended)

    def get_close_cursor(self, window: str) -> tuple[int, str] | None:
        raw = self.cursors.get(window)
        return None if raw is None else (int(orjson.loads(raw)[0]), str(orjson.loads(raw)[1]))

    def put_close_cursor(self, window: str, last_start_ms: int, key: str | None) -> None:
        if key is None:
            self.cursors.pop(window, None)
        else:
            self.cursors[window] = orjson.dumps([last_start_ms, key])

    def first_pane(self, window: str, read_to: int) -> int | None:
        starts = [start for (name, start, _), _ in self.iter_windows() if name == window]
        return min([start for start in starts if start <= read_to], default=None)

    def held_bytes(self) -> int:
        return 0  # every change is stored as it is made

    def get_closed_through(self, window: str) -> int | None:
        raw = self.closed_through.get(window)
        return None if raw is None else int(orjson.loads(raw))

    def put_closed_through(self, window: str, last_start_ms: int) -> None:
        self.closed_through[window] = orjson.dumps(last_start_ms)

    def iter_windows(self) -> Iterator[tuple[tuple[str, int, str], OpenWindow]]:
        for stored, raw in list(self.windows.items()):
            yield parse_window_key(stored), OpenWindow.from_state(orjson.loads(raw))

    def get_progress(self) -> PartitionProgress | None:
        return (
            None
            if self.progress is None
            else PartitionProgress.from_state(orjson.loads(self.progress))
        )

    def put_progress(self, progress: PartitionProgress) -> None:
        self.progress = orjson.dumps(progress.to_state())

    def put_closed(self, result: WindowResult) -> None:
        self.closed[(result.key, result.window, result.start_ms)] = orjson.dumps(result.as_json())

    def get_closed(self, key: str, window: str, start_ms: int) -> dict[str, Any] | None:
        raw = self.closed.get((key, window, start_ms))
        return None if raw is None else dict(orjson.loads(raw))

    def delete_closed(self, key: str, window: str, start_ms: int) -> None:
        self.closed.pop((key, window, start_ms), None)

    def add_bucket_keys(self, bucket: str, keys: list[str]) -> None:
        self.buckets[bucket] = (*self.buckets.get(bucket, ()), orjson.dumps(keys))

    def take_bucket_chunk(self, bucket: str) -> list[str] | None:
        chunks = self.buckets.pop(bucket, ())
        if not chunks:
            return None
        self.buckets[bucket] = chunks[1:]
        return list(orjson.loads(chunks[0]))

    def iter_buckets(self) -> Iterator[str]:
        return iter(list(self.buckets))

    def iter_keys(self) -> Iterator[tuple[str, KeyRecord]]:
        for key, raw in list(self.keys.items()):
            yield key, KeyRecord.from_state(orjson.loads(raw))

    def count_stored(self) -> Future[StoredCounts]:
        counts: Future[StoredCounts] = Future()
        counts.set_result(StoredCounts(len(self.keys), len(self.windows)))
        return counts

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, for comparing two runs byte for byte."""
        return {
            "keys": dict(self.keys),
            "windows": dict(self.windows),
            "closed": dict(self.closed),
            "progress": self.progress,
            # What is listed, however the batches cut it into chunks.
            "buckets": {
                bucket: orjson.dumps(sorted({k for chunk in chunks for k in orjson.loads(chunk)}))
                for bucket, chunks in self.buckets.items()
            },
            "closed_through": dict(self.closed_through),
        }

    def stored_closed(self) -> dict[WinId, dict[str, Any]]:
        return {wid: orjson.loads(raw) for wid, raw in self.closed.items()}


# --- the oracle ----------------------------------------------------------------------


def expected_result(rows: Sequence[Values]) -> dict[str, Any]:
    return folded_result(rows, VALUE_NAMES)


class Fold:
    """The batch answer, one event at a time in arrival order."""

    def __init__(self, windows: Sequence[tuple[str, int, int]], lateness: int) -> None:
        self.windows = windows  # (name, size, step)
        self.sizes = {name: size for name, size, _ in windows}
        self.lateness = lateness
        self.max_ts: int | None = None
        self.totals: dict[str, list[Values]] = defaultdict(list)
        self.contents: dict[WinId, list[Values]] = defaultdict(list)

    @property
    def watermark(self) -> int | None:
        return None if self.max_ts is None else self.max_ts - self.lateness

    def end(self, wid: WinId) -> int:
        return wid[2] + self.sizes[wid[1]]

    def add(self, key: str, ts: int, values: Values) -> bool:
        wm = self.watermark
        late = wm is not None and ts < wm
        self.totals[key].append(values)
        if not late:
            for name, size, step in self.windows:
                for start in starts_holding(ts, size, step):
                    self.contents[(key, name, start)].append(values)
        self.max_ts = ts if self.max_ts is None else max(self.max_ts, ts)
        return late

    def closed(self) -> set[WinId]:
        wm = self.watermark
        return {w for w in self.contents if wm is not None and wm >= self.end(w)}

    def retained(self, retention: int) -> set[WinId]:
        wm = self.watermark
        assert wm is not None or not self.contents
        return {w for w in self.closed() if wm is not None and wm < self.end(w) + retention}


# --- running the processor -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    windows: tuple[tuple[str, int, int], ...]
    lateness: int
    retention: int
    events: tuple[Event, ...]
    offsets: tuple[int, ...]
    metrics: tuple[str, ...] = METRICS

    @property
    def config(self) -> AggregationConfig:
        return AggregationConfig(
            value_names=VALUE_NAMES,
            metrics=self.metrics,
            windows=tuple(aligned_window(name, size, step) for name, size, step in self.windows),
            lateness_ms=self.lateness,
            retention_ms=self.retention,
        )


def run(
    scenario: Scenario,
    restarts: frozenset[int] = frozenset(),
    after_each: Callable[[DictState, Outcome], None] | None = None,
) -> tuple[DictState, PartitionProcessor, list[Outcome]]:
    """Process every event; before each index in ``restarts``, start a new processor."""
    state = DictState()
    processor = PartitionProcessor(scenario.config, state, 0)
    outcomes = []
    for i, (event, offset) in enumerate(zip(scenario.events, scenario.offsets, strict=True)):
        if i in restarts:
            processor = PartitionProcessor(scenario.config, state, 0)
        outcomes.append(processor.process(event, offset))
        if after_each is not None:
            after_each(state, outcomes[-1])
    return state, processor, outcomes


def wid(result: WindowResult) -> WinId:
    return (result.key, result.window, result.start_ms)


def totals_of(state: DictState) -> dict[str, dict[str, Any]]:
    out = {}
    for key, record in state.iter_keys():
        out[key] = record.totals.result(VALUE_NAMES, METRICS)
        assert state.get_key(key) is not None
    return out


def open_of(state: DictState, processor: PartitionProcessor) -> dict[WinId, dict[str, Any]]:
    """The open windows, each merged from its stored panes."""
    config = processor.config
    watermark = processor.watermark
    panes: dict[WinId, list[Agg]] = {}
    for (name, pane, key), record in state.iter_windows():
        window = paned(config, name)
        for start in window.starts(pane):
            if watermark is None or start > window.last_closed_start(watermark):
                panes.setdefault((key, name, start), []).append(record.agg)
    return {
        (key, name, start): config.result(
            key, paned(config, name), start, paned(config, name).end(start), Agg.merged(aggs), False
        ).result
        for (key, name, start), aggs in panes.items()
    }


def paned(config: AggregationConfig, name: str) -> PanedKind:
    window = config.window(name)
    assert isinstance(window, PanedKind)
    return window


def check_against_fold(
    scenario: Scenario, restarts: frozenset[int] = frozenset()
) -> tuple[DictState, list[Outcome]]:
    """Run the scenario and check every outcome, and the final state, against ``Fold``."""
    fold = Fold(scenario.windows, scenario.lateness)
    reported: dict[WinId, WindowResult] = {}
    closed_before: set[WinId] = set()
    arrivals = iter(scenario.events)

    def check(state: DictState, outcome: Outcome) -> None:
        nonlocal closed_before
        event = next(arrivals)
        late = fold.add(event.key, event.ts_ms, event.values)
        assert not outcome.duplicate
        assert outcome.late == late
        assert outcome.watermark == fold.watermark
        closed_now = fold.closed()
        newly = closed_now - closed_before
        closed_before = closed_now
        assert sorted(wid(r) for r in outcome.closed) == sorted(newly)
        for result in outcome.closed:
            assert wid(result) not in reported, "a window was reported closed twice"
            reported[wid(result)] = result
            assert result.final
            assert result.end_ms == fold.end(wid(result))
            assert result.result == expected_result(fold.contents[wid(result)])
        # Closed results are stored exactly until the watermark reaches end + retention.
        stored = state.stored_closed()
        assert set(stored) == fold.retained(scenario.retention)
        for w, body in stored.items():
            assert body == reported[w].as_json()

    state, processor, outcomes = run(scenario, restarts, check)
    assert next(arrivals, None) is None

    # Final state: totals over every event, the windows that are still open, and the
    # closed ones, which between them are every window the fold has.
    assert totals_of(state) == {k: expected_result(rows) for k, rows in fold.totals.items()}
    open_windows = open_of(state, processor)
    assert set(open_windows).isdisjoint(reported)
    assert set(open_windows) | set(reported) == set(fold.contents)
    assert set(reported) == fold.closed()
    for w, result in open_windows.items():
        assert result == expected_result(fold.contents[w])
    for w, closed in reported.items():
        assert closed.result == expected_result(fold.contents[w])
    return state, outcomes


# --- strategies ----------------------------------------------------------------------

Y2015 = int(datetime(2015, 1, 1, tzinfo=UTC).timestamp()) * 1000

VALUES = st.one_of(
    st.none(),
    st.integers(-50, 50).map(float),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 0.2, 0.3, 1e15, -1e15, 1e-9, -0.0]),
)


@st.composite
def window_defs(draw: st.DrawFn) -> tuple[str, int, int]:
    size = draw(st.integers(1, 40))
    step = draw(st.integers(1, size))  # tumbling when equal; often not a divisor of size
    return (f"{size}/{step}", size, step)


@st.composite
def scenarios(draw: st.DrawFn, max_events: int = 30) -> Scenario:
    windows = draw(st.lists(window_defs(), min_size=1, max_size=3, unique_by=lambda w: w[0]))
    base = draw(st.sampled_from([0, -100, Y2015]))
    n = draw(st.integers(0, max_events))
    events = tuple(
        Event(
            key=draw(st.sampled_from("abc")),
            ts_ms=base + draw(st.integers(0, 120)),
            values=(draw(VALUES), draw(VALUES)),
            fields={},
        )
        for _ in range(n)
    )
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    first = draw(st.integers(0, 5))
    offsets = tuple(first + sum(gaps[: i + 1]) for i in range(n))
    return Scenario(
        windows=tuple(windows),
        lateness=draw(st.integers(0, 30)),
        retention=draw(st.integers(0, 60)),
        events=events,
        offsets=offsets,
    )


# --- 1. the fold ---------------------------------------------------------------------


@settings(deadline=None, max_examples=150)
@given(scenario=scenarios())
def test_processing_equals_the_fold(scenario: Scenario) -> None:
    check_against_fold(scenario)


# --- 2. restarts ---------------------------------------------------------------------


@settings(deadline=None, max_examples=100)
@given(scenario=scenarios(), data=st.data())
def test_a_restart_anywhere_changes_nothing(scenario: Scenario, data: st.DataObject) -> None:
    n = len(scenario.events)
    restarts = frozenset(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=4)))
    state, outcomes = check_against_fold(scenario, restarts)
    whole_state, _, whole_outcomes = run(scenario)
    assert outcomes == whole_outcomes
    assert state.snapshot() == whole_state.snapshot()


def test_a_restart_rebuilds_the_open_windows_and_closes_them() -> None:
    # Windows opened before the restart must still close (and expire) after it.
    scenario = Scenario(
        windows=(("10/10", 10, 10), ("25/10", 25, 10)),
        lateness=0,
        retention=5,
        events=tuple(
            Event(key, ts, (v, None), {})
            for key, ts, v in [("a", 3, 1.0), ("b", 8, 2.0), ("a", 12, 4.0), ("b", 100, 8.0)]
        ),
        offsets=(0, 1, 2, 3),
    )
    for point in range(5):
        state, _ = check_against_fold(scenario, frozenset({point}))
        assert state.stored_closed() == {}  # all closed at 100, all expired (end + 5 <= 100)


# --- 2b. batches ---------------------------------------------------------------------


def decoded(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot with its JSON decoded: a batch may order a record's windows differently."""
    return {
        part: {k: orjson.loads(v) for k, v in value.items()}
        if isinstance(value, dict)
        else value and orjson.loads(value)
        for part, value in snapshot.items()
    }


def apply_in_batches(
    scenario: Scenario, data: st.DataObject
) -> tuple[DictState, list[BatchOutcome]]:
    """``apply`` of the scenario's events in batches cut at random, with a restart (a new
    processor on the same state) before some of them."""
    n = len(scenario.events)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(n - 1, 1)), max_size=5)))
    bounds = [0, *[c for c in cuts if c < n], n]
    pairs = list(zip(scenario.offsets, scenario.events, strict=True))
    state = DictState()
    processor = PartitionProcessor(scenario.config, state, 0)
    outcomes = []
    for start, end in itertools.pairwise(bounds):
        if data.draw(st.booleans(), label="restart"):
            processor = PartitionProcessor(scenario.config, state, 0)
        outcomes.append(processor.apply(pairs[start:end]))
        assert outcomes[-1].applied == end - start
    return state, outcomes


@settings(deadline=None, max_examples=150)
@given(scenario=scenarios(), data=st.data())
def test_any_split_into_batches_equals_the_fold(scenario: Scenario, data: st.DataObject) -> None:
    """``apply`` of arbitrary batches, with restarts between them, gives the fold's totals,
    windows, late events and closed results, and the state of one event at a time."""
    state, outcomes = apply_in_batches(scenario, data)
    pairs = list(zip(scenario.offsets, scenario.events, strict=True))
    late: list[int] = []
    closed: dict[WinId, WindowResult] = {}
    for outcome in outcomes:
        assert outcome.duplicates == 0
        late.extend(item.offset for item in outcome.late)
        for result in outcome.closed:
            assert wid(result) not in closed, "a window was reported closed twice"
            closed[wid(result)] = result

    fold = Fold(scenario.windows, scenario.lateness)
    fold_late = [
        offset for offset, event in pairs if fold.add(event.key, event.ts_ms, event.values)
    ]
    assert sorted(late) == fold_late
    assert set(closed) == fold.closed()
    for w, result in closed.items():
        assert result.result == expected_result(fold.contents[w])
    assert totals_of(state) == {k: expected_result(rows) for k, rows in fold.totals.items()}
    assert set(state.stored_closed()) == fold.retained(scenario.retention)
    one_by_one, _, _ = run(scenario)
    assert decoded(state.snapshot()) == decoded(one_by_one.snapshot())


@settings(deadline=None, max_examples=100)
@given(scenario=scenarios(), data=st.data())
def test_a_redelivered_batch_is_fenced(scenario: Scenario, data: st.DataObject) -> None:
    """After a crash the stored state may hold keys updated past the checkpoint: a batch
    that redelivers them applies only what each key's fence has not seen."""
    n = len(scenario.events)
    done = data.draw(st.integers(0, n), label="applied before the crash")
    pairs = list(zip(scenario.offsets, scenario.events, strict=True))
    state = DictState()
    PartitionProcessor(scenario.config, state, 0).apply(pairs[:done])
    outcome = PartitionProcessor(scenario.config, state, 0).apply(pairs)
    assert outcome.duplicates == done
    assert outcome.applied == n - done
    one_by_one, _, _ = run(scenario)
    assert decoded(state.snapshot()) == decoded(one_by_one.snapshot())


# --- 3. fences -----------------------------------------------------------------------


@settings(deadline=None, max_examples=100)
@given(scenario=scenarios(), data=st.data())
def test_redelivery_is_a_no_op(scenario: Scenario, data: st.DataObject) -> None:
    n = len(scenario.events)
    done = data.draw(st.integers(0, n), label="processed")
    again = data.draw(st.integers(0, done), label="redelivered from")
    restart = data.draw(st.booleans(), label="restart before redelivery")
    whole_state, _, whole_outcomes = run(scenario)

    state = DictState()
    processor = PartitionProcessor(scenario.config, state, 0)
    pairs = list(zip(scenario.events, scenario.offsets, strict=True))
    outcomes = [processor.process(event, offset) for event, offset in pairs[:done]]
    assert outcomes == whole_outcomes[:done]

    before = state.snapshot()
    if restart:
        processor = PartitionProcessor(scenario.config, state, 0)
    watermark = processor.watermark
    for event, offset in pairs[again:done]:
        outcome = processor.process(event, offset)
        assert outcome == Outcome(duplicate=True, late=False, watermark=watermark, closed=[])
    assert state.snapshot() == before

    rest = [processor.process(event, offset) for event, offset in pairs[done:]]
    assert rest == whole_outcomes[done:]
    assert state.snapshot() == whole_state.snapshot()


# --- 4. retention --------------------------------------------------------------------


def test_retention_runs_on_the_watermark_not_the_wall_clock() -> None:
    hour, day = 3_600_000, 86_400_000
    config = AggregationConfig(
        value_names=VALUE_NAMES,
        metrics=METRICS,
        windows=(aligned_window("1h", hour, hour),),
        lateness_ms=0,
        retention_ms=day,
    )
    state = DictState()
    processor = PartitionProcessor(config, state, 0)
    first = Y2015 + 10 * 60_000  # 2015-01-01T00:10Z, years in the past

    def send(key: str, ts: int, offset: int) -> Outcome:
        return processor.process(Event(key, ts, (1.0, None), {}), offset)

    assert send("a", first, 0).closed == []
    assert state.stored_closed() == {}
    closing = send("b", Y2015 + hour, 1)  # the watermark reaches the first window's end
    assert [wid(r) for r in closing.closed] == [("a", "1h", Y2015)]
    stored = state.stored_closed()
    assert set(stored) == {("a", "1h", Y2015)}
    assert stored["a", "1h", Y2015]["count"] == 1
    assert stored["a", "1h", Y2015]["final"] is True

    # One millisecond short of end + retention: still kept, however old it is.
    send("b", Y2015 + hour + day - 1, 2)
    assert set(state.stored_closed()) == {("a", "1h", Y2015), ("b", "1h", Y2015 + hour)}
    processor = PartitionProcessor(config, state, 0)  # and across a restart
    assert set(state.stored_closed()) == {("a", "1h", Y2015), ("b", "1h", Y2015 + hour)}
    # Exactly end + retention: gone, and the later windows are not.
    send("c", Y2015 + hour + day, 3)
    assert set(state.stored_closed()) == {("b", "1h", Y2015 + hour), ("b", "1h", Y2015 + day)}
    send("c", Y2015 + 2 * hour + day, 4)
    assert set(state.stored_closed()) == {("b", "1h", Y2015 + day), ("c", "1h", Y2015 + hour + day)}
    # The keys' totals are never expired.
    assert state.get_key("a") is not None
    assert state.get_key("a").totals.count == 1  # type: ignore[union-attr]


# --- 5. late events ------------------------------------------------------------------


def test_late_events_count_in_totals_and_in_no_window() -> None:
    scenario = Scenario(
        windows=(("10/10", 10, 10), ("20/5", 20, 5)),
        lateness=5,
        retention=1000,
        events=tuple(
            Event(key, ts, values, {})
            for key, ts, values in [
                ("a", 100, (1.0, 2.0)),
                ("a", 96, (3.0, None)),  # watermark 95: not late
                ("a", 94, (5.0, None)),  # behind 95: late, though [90, 100) is still open
                ("b", 50, (7.0, 1.5)),  # a late key that has no window at all
                ("a", 95, (None, None)),  # exactly the watermark: not late
            ]
        ),
        offsets=(10, 11, 12, 13, 14),
    )
    state, outcomes = check_against_fold(scenario)
    assert [o.late for o in outcomes] == [False, False, True, True, False]
    assert all(o.watermark == 95 for o in outcomes)
    processor = PartitionProcessor(scenario.config, state, 0)
    a, b = state.get_key("a"), state.get_key("b")
    assert a is not None
    assert b is not None
    assert a.totals.result(VALUE_NAMES, ("count", "sum")) == {
        "count": 4,
        "values": {"x": {"sum": 9.0}, "y": {"sum": 2.0}},
    }
    assert b.totals.result(VALUE_NAMES, ("count",)) == {"count": 1}
    windows = {w: result["count"] for w, result in open_of(state, processor).items()}
    assert not any(key == "b" for key, _, _ in windows)
    assert windows[("a", "10/10", 90)] == 2  # 96 and 95, not 94
    assert windows[("a", "10/10", 100)] == 1
    assert not any(outcome.closed for outcome in outcomes)


# --- a redelivery after a partial write ----------------------------------------------


def test_a_duplicate_that_moves_the_watermark_still_reports_what_it_closes() -> None:
    """A crash can keep the event's own key record (its fence) and window, and lose the
    closed result stored beside the window and every write after the key record.

    The redelivered event is then a duplicate, yet it moves the watermark the lost
    progress record no longer holds, so it closes windows: those results are in
    ``Outcome.closed`` of a duplicate, and the I/O side must emit them too.
    """
    scenario = Scenario(
        windows=(("10/10", 10, 10),),
        lateness=0,
        retention=100,
        events=(Event("a", 5, (1.0, None), {}), Event("b", 15, (2.0, None), {})),
        offsets=(0, 1),
    )
    whole_state, _, whole_outcomes = run(scenario)
    assert [wid(r) for r in whole_outcomes[1].closed] == [("a", "10/10", 0)]

    state = DictState()
    PartitionProcessor(scenario.config, state, 0).process(scenario.events[0], 0)
    # Of offset 1's writes, only its key record and its own window.
    state.keys["b"] = whole_state.keys["b"]
    state.windows.update((k, v) for k, v in whole_state.windows.items() if k.endswith("\x1fb"))
    outcome = PartitionProcessor(scenario.config, state, 0).process(scenario.events[1], 1)
    assert outcome.duplicate
    assert outcome.closed == whole_outcomes[1].closed
    assert state.snapshot() == whole_state.snapshot()


def test_a_window_kept_without_its_key_record_takes_a_redelivery_once() -> None:
    """A crash can keep a batch's window records (stored first) and lose its key records:
    the redelivered events are new to the totals, and fenced by each window's record."""
    scenario = Scenario(
        windows=(("10/10", 10, 10), ("20/10", 20, 10)),
        lateness=0,
        retention=100,
        events=(Event("a", 5, (1.0, None), {}), Event("a", 12, (2.0, 0.5), {})),
        offsets=(0, 1),
    )
    whole_state, _, _ = run(scenario)
    state = DictState()
    PartitionProcessor(scenario.config, state, 0).process(scenario.events[0], 0)
    before = dict(state.windows)
    state.windows = dict(whole_state.windows)  # offset 1's windows, not its key record
    state.windows.update((k, v) for k, v in before.items() if k not in whole_state.windows)
    outcome = PartitionProcessor(scenario.config, state, 0).process(scenario.events[1], 1)
    assert not outcome.duplicate
    assert state.snapshot() == whole_state.snapshot()


def test_a_window_record_left_by_a_crash_is_deleted_at_the_next_advance() -> None:
    """A crash can keep a closed window's record (deleted after the key records) and
    lose the progress record; its result and the bound of the closed windows were
    stored before (step 1), so the next advance deletes the record without closing the
    window again (a hopping window's first panes may be gone by then)."""
    scenario = Scenario(
        windows=(("10/10", 10, 10),),
        lateness=0,
        retention=100,
        events=(
            Event("a", 5, (1.0, None), {}),
            Event("b", 15, (2.0, None), {}),
            Event("b", 25, (3.0, None), {}),
        ),
        offsets=(0, 1, 2),
    )
    whole_state, _, whole_outcomes = run(scenario)
    state = DictState()
    processor = PartitionProcessor(scenario.config, state, 0)
    processor.process(scenario.events[0], 0)
    kept = dict(state.windows)
    processor.process(scenario.events[1], 1)
    state.windows.update(kept)  # a's window [0, 10), closed by offset 1, not deleted
    outcome = PartitionProcessor(scenario.config, state, 0).process(scenario.events[2], 2)
    assert [wid(r) for r in outcome.closed] == [("b", "10/10", 10)]
    assert outcome.closed[0] == whole_outcomes[2].closed[0]
    assert state.snapshot() == whole_state.snapshot()


def test_a_new_york_day_closes_at_local_midnight_and_expires_a_retention_later() -> None:
    hour = 3_600_000
    new_york_day = aligned_window("1d", 24 * hour, 24 * hour).in_zone(ZoneInfo("America/New_York"))
    config = AggregationConfig(
        value_names=VALUE_NAMES,
        metrics=METRICS,
        windows=(new_york_day,),
        lateness_ms=0,
        retention_ms=hour,
    )
    state = DictState()
    processor = PartitionProcessor(config, state, 0)
    # 2024-03-10 in New York: from 05:00Z (EST midnight) to 04:00Z the next day (EDT).
    start = int(datetime(2024, 3, 10, 5, tzinfo=UTC).timestamp()) * 1000
    end = int(datetime(2024, 3, 11, 4, tzinfo=UTC).timestamp()) * 1000

    def send(key: str, ts: int, offset: int) -> Outcome:
        return processor.process(Event(key, ts, (1.0, None), {}), offset)

    assert send("a", start, 0).closed == []
    assert send("a", end - 1, 1).closed == []  # 22:59:59.999 local: the same day
    (closed,) = send("b", end, 2).closed  # local midnight, 23 hours after the start
    assert (closed.key, closed.window, closed.start_ms, closed.end_ms) == (
        "a",
        "1d@America/New_York",
        start,
        end,
    )
    assert closed.result["count"] == 2
    processor = PartitionProcessor(config, state, 0)  # across a restart
    send("b", end + hour - 1, 3)
    assert set(state.stored_closed()) == {("a", "1d@America/New_York", start)}
    send("b", end + hour, 4)
    assert state.stored_closed() == {}


# --- 6. the state's size, for the metrics --------------------------------------------


@settings(deadline=None, max_examples=100)
@given(scenario=scenarios(), data=st.data())
def test_key_and_open_pane_counts_follow_the_fold(scenario: Scenario, data: st.DataObject) -> None:
    """The open window count is of stored panes: one per key and pane holding an
    on-time event, while a window it is part of is open (the fold's windows)."""
    n = len(scenario.events)
    restarts = frozenset(data.draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=3)))
    fold = Fold(scenario.windows, scenario.lateness)
    panes: set[tuple[str, str, int]] = set()
    for event in scenario.events:
        if not fold.add(event.key, event.ts_ms, event.values):
            for window in scenario.config.paned:
                pane = window.pane(event.ts_ms)
                assert pane is not None
                panes.add((event.key, window.name, pane))
    closed = fold.closed()
    open_panes = [
        (key, name, pane)
        for key, name, pane in panes
        if any((key, name, s) not in closed for s in paned(scenario.config, name).starts(pane))
    ]
    _, processor, _ = run(scenario, restarts)
    assert processor.key_count == len(fold.totals)
    assert processor.open_window_count() == len(open_panes)


# --- 4. the repartition hop: events of many sources, fenced by their source ------------


@settings(deadline=None, max_examples=150)
@given(scenario=scenarios(), data=st.data())
def test_hop_events_of_many_sources_are_applied_once_whatever_the_interleaving(
    scenario: Scenario, data: st.DataObject
) -> None:
    """Events from several source input partitions (the hop lane) arrive interleaved, in
    order per source, with runs of each source sent again (a failed send redone, or a
    zombie's late run): each event is applied once, and the totals equal the fold of the
    events, whichever order and batches they came in."""
    n = len(scenario.events)
    sources = [data.draw(st.integers(0, 2), label="source") for _ in range(n)]
    runs: dict[int, list[tuple[int, Event]]] = defaultdict(list)
    for offset, event, source in zip(scenario.offsets, scenario.events, sources, strict=True):
        runs[source].append((offset, event))
    # Each source's run, with a prefix of it sent again after some of it.
    streams: dict[int, list[tuple[int, Event]]] = {}
    resent = 0
    for source, run_ in runs.items():
        cut = data.draw(st.integers(0, len(run_)), label="sent before the redo")
        redo = data.draw(st.integers(0, cut), label="redone from")
        streams[source] = run_[:cut] + run_[redo:]
        resent += cut - redo
    arrivals: list[tuple[int, int, Event]] = []
    while any(streams.values()):
        source = data.draw(st.sampled_from(sorted(s for s, run_ in streams.items() if run_)))
        offset, event = streams[source].pop(0)
        arrivals.append((source, offset, event))
    state = DictState()
    processor = PartitionProcessor(scenario.config, state, 1)
    applied = duplicates = 0
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(arrivals) - 1, 1)), max_size=4)))
    for start, end in itertools.pairwise(
        [0, *[c for c in cuts if c < len(arrivals)], len(arrivals)]
    ):
        if data.draw(st.booleans(), label="restart"):
            processor = PartitionProcessor(scenario.config, state, 1)
        batch = arrivals[start:end]
        outcome = processor.apply([(o, e) for _, o, e in batch], [s for s, _, _ in batch])
        applied += outcome.applied
        duplicates += outcome.duplicates
    assert (applied, duplicates) == (n, resent)
    expected: dict[str, list[Values]] = defaultdict(list)
    for event in scenario.events:
        expected[event.key].append(event.values)
    assert totals_of(state) == {k: expected_result(rows) for k, rows in expected.items()}
