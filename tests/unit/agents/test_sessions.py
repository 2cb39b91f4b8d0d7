"""Session windows in the processor (``agents.processor`` with ``tables.windows.session``),
checked against a plain Python fold, and for order independence: events shuffled within
the lateness, applied in random batches, with restarts, give byte-for-byte the same
sessions.

The fold (``session_fold``) is written from the rules of docs/pipelines.md alone: an event
is late when it is behind the watermark (the newest event time before it minus the
lateness); a key's on-time events, in time order, start a new session where one is more
than the gap after the previous one; a session ``[first, last + gap + 1)`` is final once
the watermark reaches its end, and kept until the watermark reaches its end plus the
retention. It uses none of kappa's window, watermark or aggregate code.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.events import Event
from agents.processor import PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.windows import Sessions, aligned_window
from tests.unit.agents.test_processor import (
    METRICS,
    VALUE_NAMES,
    DictState,
    Values,
    WinId,
    expected_result,
)

GAP = 10
SESSIONS = Sessions("session/10ms", GAP)

# (key, event time, values), in arrival order.
Row = tuple[str, int, Values]


def config(lateness: int, retention: int = 10**9) -> AggregationConfig:
    return AggregationConfig(
        value_names=VALUE_NAMES,
        metrics=METRICS,
        windows=(SESSIONS, aligned_window("25ms", 25, 25)),
        lateness_ms=lateness,
        retention_ms=retention,
    )


def session_fold(
    rows: Sequence[Row], lateness: int
) -> tuple[dict[WinId, tuple[int, dict[str, Any]]], int | None]:
    """Every session of the on-time events, by (key, name, first) -> (end, result); and
    the final watermark."""
    newest: int | None = None
    on_time: dict[str, list[tuple[int, Values]]] = defaultdict(list)
    for key, ts, values in rows:
        if newest is None or ts >= newest - lateness:
            on_time[key].append((ts, values))
        newest = ts if newest is None else max(newest, ts)
    sessions: dict[WinId, tuple[int, dict[str, Any]]] = {}
    for key, events in on_time.items():
        events.sort(key=lambda event: event[0])
        runs: list[list[tuple[int, Values]]] = []
        for event in events:
            if runs and event[0] - runs[-1][-1][0] <= GAP:
                runs[-1].append(event)
            else:
                runs.append([event])
        for run in runs:
            end = run[-1][0] + GAP + 1
            sessions[(key, SESSIONS.name, run[0][0])] = (
                end,
                expected_result([values for _, values in run]),
            )
    return sessions, None if newest is None else newest - lateness


def apply_all(
    rows: Sequence[Row],
    lateness: int,
    splits: Sequence[int] = (),
    restarts: Sequence[int] = (),
    retention: int = 10**9,
    sources: Sequence[int] | None = None,
) -> tuple[DictState, PartitionProcessor, list[tuple[WinId, int, dict[str, Any]]]]:
    """Apply ``rows`` (offsets in arrival order), cut into batches before each index of
    ``splits``, with a new processor on the same state before each index of ``restarts``;
    with ``sources``, each row's source input partition (as through the repartition
    hop); the session results published, in order."""
    state = DictState()
    cfg = config(lateness, retention)
    processor = PartitionProcessor(cfg, state, 0)
    published = []
    cuts = sorted({0, *splits, *restarts, len(rows)})
    for lo, hi in itertools.pairwise(cuts):
        if lo in restarts:
            processor = PartitionProcessor(cfg, state, 0)
        batch = [
            (offset, Event(key, ts, values, {}))
            for offset, (key, ts, values) in list(enumerate(rows))[lo:hi]
        ]
        outcome = processor.apply(batch, None if sources is None else sources[lo:hi])
        published += [
            ((r.key, r.window, r.start_ms), r.end_ms, r.result)
            for r in outcome.closed
            if r.window == SESSIONS.name
        ]
    return state, processor, published


def open_sessions(state: DictState) -> dict[WinId, tuple[int, dict[str, Any]]]:
    """The open sessions each key's record lists, with their stored aggregates."""
    found = {}
    for key, record in state.iter_keys():
        for first, last in record.sessions.get(SESSIONS.name, []):
            end = SESSIONS.end(last)
            stored = state.get_window(SESSIONS.name, end, key)
            assert stored is not None, "a listed session is stored under its end"
            found[(key, SESSIONS.name, first)] = (end, stored.agg.result(VALUE_NAMES, METRICS))
    return found


def session_bytes(state: DictState) -> dict[str, Any]:
    """What the state holds of sessions, as bytes: every key's sessions, the stored
    records' aggregates (not their fences, which are offsets of one arrival order), and
    the closed sessions' results."""
    records = {
        (start, key): orjson.dumps(record.agg.to_state())
        for (name, start, key), record in state.iter_windows()
        if name == SESSIONS.name
    }
    spans = {key: record.sessions for key, record in state.iter_keys()}
    closed = {wid: raw for wid, raw in state.closed.items() if wid[1] == SESSIONS.name}
    return {
        "records": records,
        "spans": orjson.dumps(spans, option=orjson.OPT_SORT_KEYS),
        "closed": closed,
    }


def check(rows: Sequence[Row], lateness: int, **kwargs: Any) -> DictState:
    """Apply ``rows``; every published session, and every open one, is the fold's."""
    state, processor, published = apply_all(rows, lateness, **kwargs)
    expected, watermark = session_fold(rows, lateness)
    finals = {
        wid for wid, (end, _) in expected.items() if watermark is not None and end <= watermark
    }
    assert len(published) == len({wid for wid, _, _ in published}), "each final once"
    assert {wid: (end, result) for wid, end, result in published} == {
        wid: expected[wid] for wid in finals
    }
    assert open_sessions(state) == {wid: v for wid, v in expected.items() if wid not in finals}
    assert processor.open_window_count() == len(state.windows)
    return state


# --- examples -------------------------------------------------------------------------


def test_events_within_the_gap_share_a_session_and_one_more_than_the_gap_starts_one() -> None:
    rows: list[Row] = [
        ("a", 100, (1.5, None)),
        ("a", 110, (2.0, 4.0)),  # exactly the gap after: the same session
        ("a", 121, (0.1, None)),  # more than the gap after: a new one
        ("b", 105, (7.0, None)),
    ]
    state = check(rows, lateness=30)
    assert open_sessions(state)[("a", SESSIONS.name, 100)][0] == 121
    assert open_sessions(state)[("a", SESSIONS.name, 121)][0] == 132


def test_an_event_between_two_sessions_merges_them() -> None:
    rows: list[Row] = [
        ("a", 100, (1.0, None)),
        ("a", 120, (2.0, None)),  # a second session: 20 after
        ("a", 110, (4.0, None)),  # within the gap of both: one session 100..120
    ]
    state = check(rows, lateness=50)
    assert list(open_sessions(state)) == [("a", SESSIONS.name, 100)]
    assert len(state.windows) == 2  # the session, and the 25ms window's one pane


def test_a_session_is_published_once_when_the_watermark_reaches_last_plus_gap_plus_one() -> None:
    rows: list[Row] = [("a", 100, (1.0, None)), ("b", 110, (1.0, None))]
    _, _, published = apply_all(rows, lateness=0)
    assert published == []  # watermark 110 < 111
    rows.append(("b", 111, (1.0, None)))
    _, _, published = apply_all(rows, lateness=0)
    assert [wid for wid, _, _ in published] == [("a", SESSIONS.name, 100)]
    check(rows, lateness=0)


def test_late_events_stay_out_of_sessions() -> None:
    rows: list[Row] = [("a", 100, (1.0, None)), ("a", 200, (1.0, None)), ("a", 150, (9.0, None))]
    state = check(rows, lateness=10)
    assert set(open_sessions(state)) == {("a", SESSIONS.name, 200)}


def test_closed_sessions_expire_after_the_retention() -> None:
    rows: list[Row] = [("a", 100, (1.0, None)), ("a", 200, (2.0, None)), ("a", 400, (3.0, None))]
    state, _, published = apply_all(rows, lateness=0, retention=200)
    assert [wid for wid, _, _ in published] == [
        ("a", SESSIONS.name, 100),
        ("a", SESSIONS.name, 200),
    ]
    # The first ended at 111: expired at 311. The second ends at 211: kept until 411.
    assert {w for w in state.stored_closed() if w[1] == SESSIONS.name} == {
        ("a", SESSIONS.name, 200)
    }
    assert state.buckets.keys() == {f"{SESSIONS.name}@211", "25ms@200"}


def test_a_restarted_processor_expires_what_closed_before() -> None:
    rows: list[Row] = [("a", 100, (1.0, None)), ("a", 200, (2.0, None)), ("a", 400, (3.0, None))]
    state, _, _ = apply_all(rows, lateness=0, retention=200, restarts=[2])
    assert {w for w in state.stored_closed() if w[1] == SESSIONS.name} == {
        ("a", SESSIONS.name, 200)
    }


# --- any arrival order within the lateness, any batches ---------------------------------

VALUE = st.one_of(
    st.none(),
    st.floats(min_value=-1e300, max_value=1e300),  # sums stay finite
    st.sampled_from([1e16, -1e16, 1.0, 0.1, 2.0**-60]),
)
EVENT = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 150), st.tuples(VALUE, VALUE))


EVENTS = st.lists(EVENT, max_size=40)
LATENESS = st.integers(0, 40)
SEEDS = st.integers(0, 2**32 - 1)


def random_cuts(rng: random.Random, n: int, most: int | None = None) -> list[int]:
    """Up to ``most`` (default: any number of) distinct places to cut ``n`` rows."""
    if n < 2:
        return []
    return rng.sample(range(1, n), rng.randint(0, n - 1 if most is None else min(most, n - 1)))


@settings(max_examples=300, deadline=None)
@given(events=EVENTS, lateness=LATENESS, seed=SEEDS)
def test_any_order_within_the_lateness_and_any_batches_give_equal_bytes(
    events: list[Row], lateness: int, seed: int
) -> None:
    """Each event arrives after every event whose time plus a random delay of at most the
    lateness is smaller than its own: so none is late, in any such order."""
    rng = random.Random(seed)
    in_time = sorted(events, key=lambda row: row[1])
    delayed = sorted(events, key=lambda row: row[1] + rng.randint(0, lateness))
    splits = random_cuts(rng, len(events))
    restarts = random_cuts(rng, len(events), most=2)
    reference = check(in_time, lateness)
    shuffled = check(delayed, lateness, splits=splits, restarts=restarts)
    assert session_bytes(shuffled) == session_bytes(reference)
    # Through the hop: the same events from three source partitions.
    hopped = check(delayed, lateness, splits=splits, sources=[rng.randrange(3) for _ in events])
    assert session_bytes(hopped) == session_bytes(reference)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, lateness=LATENESS, seed=SEEDS)
def test_any_order_with_late_events_matches_the_fold(
    events: list[Row], lateness: int, seed: int
) -> None:
    check(events, lateness, splits=random_cuts(random.Random(seed), len(events)))
