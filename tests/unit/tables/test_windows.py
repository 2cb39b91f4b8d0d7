"""Window assignment and closing, checked against brute-force scans."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tables.watermark import is_closed, is_late
from tables.windows import PanedKind, aligned_window
from tests.support.panes import check_pane_of

TS = st.integers(min_value=-(10**6), max_value=10**6)


@st.composite
def window_defs(draw: st.DrawFn) -> PanedKind:
    size = draw(st.integers(min_value=1, max_value=200))
    step = draw(st.integers(min_value=1, max_value=size))
    return aligned_window(name=f"{size}/{step}", size_ms=size, step_ms=step)


def brute_starts(ts: int, w: PanedKind) -> list[int]:
    """Every multiple of the step from well below to above ts that holds ts."""
    lo = ts - w.size_ms - w.step_ms
    hi = ts + w.step_ms
    return [s for s in range(lo, hi + 1) if s % w.step_ms == 0 and s <= ts < s + w.size_ms]


@settings(max_examples=400, deadline=None)
@given(ts=TS, w=window_defs())
def test_window_starts_match_brute_force(ts: int, w: PanedKind) -> None:
    assert w.starts(ts) == brute_starts(ts, w)


@settings(max_examples=200, deadline=None)
@given(ts=TS, w=window_defs())
def test_every_window_holds_its_timestamp(ts: int, w: PanedKind) -> None:
    for s in w.starts(ts):
        assert s <= ts < w.end(s)
        assert w.end(s) - s == w.size_ms


@settings(max_examples=200, deadline=None)
@given(ts=TS, size=st.integers(min_value=1, max_value=500))
def test_tumbling_window_is_unique(ts: int, size: int) -> None:
    (start,) = aligned_window("t", size, size).starts(ts)
    assert start % size == 0
    assert start <= ts < start + size


@settings(max_examples=200, deadline=None)
@given(ts=TS, step=st.integers(min_value=1, max_value=50), k=st.integers(min_value=1, max_value=8))
def test_hopping_count_when_size_is_a_multiple_of_step(ts: int, step: int, k: int) -> None:
    assert len(aligned_window("h", k * step, step).starts(ts)) == k


def test_negative_timestamps_use_floor_alignment() -> None:
    # [-10, 0) holds -1; [-20, -10) holds -11; 0 starts its own window.
    w = aligned_window("10", 10, 10)
    assert w.starts(-1) == [-10]
    assert w.starts(-10) == [-10]
    assert w.starts(-11) == [-20]
    assert w.starts(0) == [0]
    # size 10 hopping by 4: starts in (ts - 10, ts] that are multiples of 4.
    h = aligned_window("10/4", 10, 4)
    assert h.starts(-1) == [-8, -4]
    assert h.starts(9) == [0, 4, 8]


@settings(max_examples=400, deadline=None)
@given(wm=TS, offset=st.integers(min_value=-600, max_value=600), w=window_defs())
def test_last_closed_start_bounds_the_closed_windows(wm: int, offset: int, w: PanedKind) -> None:
    """A window is closed at the watermark exactly when it starts at or before the bound."""
    bound = w.last_closed_start(wm)
    for s in w.starts(wm + offset):
        assert (s <= bound) == is_closed(w.end(s), wm)


NEAR = st.integers(min_value=-300, max_value=300)


@settings(max_examples=400, deadline=None)
@given(ts=TS, behind=NEAR, w=window_defs())
def test_windows_of_an_event_on_time_are_all_open(ts: int, behind: int, w: PanedKind) -> None:
    wm = ts - behind
    if not is_late(ts, wm):
        assert not any(is_closed(w.end(s), wm) for s in w.starts(ts))


# --- panes: what is stored, one per event and window definition ----------------------


@settings(max_examples=300, deadline=None)
@given(ts=TS, w=window_defs())
def test_a_pane_is_in_exactly_the_windows_of_its_events(ts: int, w: PanedKind) -> None:
    check_pane_of(w, ts)


@settings(max_examples=200, deadline=None)
@given(ts=TS, w=window_defs())
def test_a_windows_panes_are_the_panes_of_its_instants(ts: int, w: PanedKind) -> None:
    for s in w.starts(ts):
        assert list(w.panes(s)) == sorted({w.pane(t) for t in range(s, w.end(s))})  # type: ignore[type-var]


@settings(max_examples=300, deadline=None)
@given(last=TS, w=window_defs())
def test_pane_bounds_read_every_closing_pane_and_expire_only_unused_ones(
    last: int, w: PanedKind
) -> None:
    read_to, expire_to = w.pane_bounds(last)
    assert expire_to <= read_to
    closing = [s for s in range(last - w.size_ms - w.step_ms, last + 1) if s % w.step_ms == 0]
    for s in closing:
        assert max(w.panes(s)) <= read_to
    for t in range(last - w.size_ms, last + w.size_ms + w.step_ms):
        pane = w.pane(t)
        assert pane is not None
        assert (pane <= expire_to) == all(s <= last for s in w.starts(pane)), (t, pane)
