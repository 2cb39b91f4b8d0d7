"""The watermark, lateness and expiry policy, checked against plain folds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.watermark import advance, expired, is_closed, is_late, watermark_of

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
