"""The watermark, lateness and expiry policy, checked against plain folds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.watermark import (
    StoredClock,
    active_low,
    advance,
    expired,
    idle_advance,
    is_closed,
    is_idle,
    is_late,
    watermark_of,
)

TS = st.integers(min_value=-(10**6), max_value=10**6)
LATENESS = st.integers(min_value=0, max_value=10**4)


def test_no_watermark_before_any_event() -> None:
    assert watermark_of(None, 100) is None
    assert not is_late(-(10**12), None)
    assert not is_closed(-(10**12), None)
    assert not expired(-(10**12), 0, None)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(TS, min_size=1, max_size=50), lateness=LATENESS)
def test_watermark_is_max_event_time_minus_lateness(events: list[int], lateness: int) -> None:
    max_seen = None
    watermarks = []
    for ts in events:
        max_seen = advance(max_seen, ts)
        watermarks.append(watermark_of(max_seen, lateness))
    assert max_seen == max(events)
    assert watermarks == [max(events[: k + 1]) - lateness for k in range(len(events))]


@settings(max_examples=300, deadline=None)
@given(ts=TS, wm=TS)
def test_late_iff_behind_the_watermark(ts: int, wm: int) -> None:
    assert is_late(ts, wm) == (ts < wm)
    assert not is_late(wm, wm)


@settings(max_examples=300, deadline=None)
@given(max_seen=st.none() | TS, ts=TS, lateness=LATENESS)
def test_an_event_never_makes_itself_late(max_seen: int | None, ts: int, lateness: int) -> None:
    before = watermark_of(max_seen, lateness)
    after = watermark_of(advance(max_seen, ts), lateness)
    assert is_late(ts, before) == is_late(ts, after)


@settings(max_examples=300, deadline=None)
@given(end=TS, retention=st.integers(min_value=0, max_value=10**5), wm=TS)
def test_expiry_runs_on_the_watermark(end: int, retention: int, wm: int) -> None:
    assert expired(end, retention, wm) == (wm >= end + retention)
    if expired(end, retention, wm):
        assert is_closed(end, wm)
        assert expired(end, retention, wm + 1)


# -- quiet partitions ----------------------------------------------------------------------

NOW = 10**12
CLOCKS = st.dictionaries(
    st.integers(min_value=0, max_value=7),
    st.builds(
        StoredClock,
        st.none() | TS,
        st.integers(min_value=NOW - 3000, max_value=NOW),
        st.booleans(),
    ),
)


@settings(max_examples=300, deadline=None)
@given(clocks=CLOCKS, timeout=st.integers(min_value=1, max_value=2000), quiet=st.integers(0, 7))
def test_the_active_low_is_the_lowest_clock_of_partitions_that_received_within_the_timeout(
    clocks: dict[int, StoredClock], timeout: int, quiet: int
) -> None:
    active = []
    for partition, clock in clocks.items():
        age = NOW - clock.stored_ms
        if partition == quiet or clock.idle or clock.max_event_ms is None or age >= timeout:
            continue
        active.append(clock.max_event_ms)
    assert active_low(clocks, NOW, timeout, quiet) == (min(active) if active else None)


def test_an_idle_advance_or_a_stale_store_is_not_activity() -> None:
    clocks = {
        0: StoredClock(500, NOW - 10, idle=False),
        1: StoredClock(100, NOW - 10, idle=True),  # moved by an idle advance
        2: StoredClock(50, NOW - 1000, idle=False),  # stored a timeout ago
        3: StoredClock(None, NOW, idle=False),  # no event yet
    }
    assert active_low(clocks, NOW, 1000, quiet=4) == 500
    assert active_low(clocks, NOW, 1000, quiet=0) is None  # the quiet one never counts
    assert active_low(clocks, NOW, 1001, quiet=4) == 50


@settings(max_examples=300, deadline=None)
@given(own=st.none() | TS, low=st.none() | TS)
def test_an_idle_partition_moves_only_forward_to_the_active_low(
    own: int | None, low: int | None
) -> None:
    moved = idle_advance(own, low)
    if own is None or low is None or low <= own:
        assert moved is None
    else:
        assert moved == low


def test_idle_after_the_timeout_exactly() -> None:
    assert not is_idle(299_999.9, 300_000)
    assert is_idle(300_000, 300_000)
