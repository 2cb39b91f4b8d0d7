"""The session kind (``tables.windows.session``): its merge plan and its DuckDB SQL, each
checked against a plain fold of the rule (a key's events in time order; a new session
where one is more than the gap after the previous one)."""

from __future__ import annotations

from collections import defaultdict

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.windows import Sessions

GAP = 10
SESSIONS = Sessions("session/10ms", GAP)


def fold(times: list[int]) -> list[tuple[int, int]]:
    """(first, last) of each session of ``times``."""
    runs: list[list[int]] = []
    for ts in sorted(times):
        if runs and ts - runs[-1][-1] <= GAP:
            runs[-1].append(ts)
        else:
            runs.append([ts])
    return [(run[0], run[-1]) for run in runs]


def test_the_end_is_one_past_the_last_event_plus_the_gap() -> None:
    assert SESSIONS.end(100) == 111


def test_an_event_bridging_two_sessions_merges_them_and_keeps_their_parts() -> None:
    [merge] = SESSIONS.plan([(100, 100), (120, 130)], [110])
    assert (merge.first, merge.last, merge.parts, merge.rows) == (100, 130, [0, 1], [0])
    assert merge.changed


def test_a_session_no_event_joins_is_unchanged() -> None:
    merges = SESSIONS.plan([(100, 105)], [200])
    assert [(m.first, m.last, m.changed) for m in merges] == [(100, 105, False), (200, 200, True)]


@settings(max_examples=300, deadline=None)
@given(
    earlier=st.lists(st.integers(0, 300), max_size=20),
    later=st.lists(st.integers(0, 300), max_size=20),
)
def test_plan_of_open_sessions_and_new_events_is_the_fold_of_all_their_events(
    earlier: list[int], later: list[int]
) -> None:
    spans = fold(earlier)
    merges = SESSIONS.plan(spans, later)
    assert [(m.first, m.last) for m in merges] == fold(earlier + later)
    assert sorted(p for m in merges for p in m.parts) == list(range(len(spans)))
    assert sorted(r for m in merges for r in m.rows) == list(range(len(later)))
    for m in merges:
        assert all(m.first <= later[r] <= m.last for r in m.rows)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.integers(0, 1), st.sampled_from(["a", "b"]), st.integers(-50, 200), st.booleans()
        ),
        max_size=30,
    )
)
def test_assign_sql_gives_each_on_time_event_its_session(
    events: list[tuple[int, str, int, bool]],
) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE marked (p INTEGER, k VARCHAR, t BIGINT, late BOOLEAN)")
    if events:
        con.executemany("INSERT INTO marked VALUES (?, ?, ?, ?)", events)
    rows = con.execute(
        f"SELECT w, p, k, s, e, list(t ORDER BY t) FROM ({SESSIONS.assign_sql('m.p, m.k, m.t')})"
        " GROUP BY ALL"
    ).fetchall()
    got = {(p, k, s, e): times for w, p, k, s, e, times in rows if w == SESSIONS.name}
    assert len(got) == len(rows)
    on_time: dict[tuple[int, str], list[int]] = defaultdict(list)
    for p, k, t, late in events:
        if not late:
            on_time[(p, k)].append(t)
    expected = {}
    for (p, k), times in on_time.items():
        for first, last in fold(times):
            held = sorted(t for t in times if first <= t <= last)
            expected[(p, k, first, SESSIONS.end(last))] = held
    assert got == expected
