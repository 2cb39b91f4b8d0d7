"""Windows on a time zone's calendar, checked against DuckDB's time zone arithmetic.

DuckDB (ICU) shares no code with kappa: its buckets and local-date arithmetic decide
which New York day holds each instant, on the two daylight-saving days of 2024 too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.windows import DAY_MS, PanedKind, aligned_window
from tests.support.panes import check_pane_of

NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3_600_000
MINUTE = 60_000


DAY = DAY_MS
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(text: str) -> int:
    """Epoch ms of an ISO time with an offset, exactly."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def zoned(size_days: int, step_days: int, zone: ZoneInfo = NEW_YORK) -> PanedKind:
    return aligned_window(f"{size_days}d/{step_days}d", size_days * DAY, step_days * DAY).in_zone(
        zone
    )


# Every 7 minutes (and a few milliseconds) around both transitions of 2024 in New York.
AROUND_DST = [
    t
    for first in ("2024-03-07T00:00:00Z", "2024-10-31T00:00:00Z")
    for t in range(ms(first) + 3, ms(first) + 8 * DAY, 7 * MINUTE)
]


def duckdb_windows(
    timestamps: list[int], size_days: int, step_days: int, zone: str
) -> set[tuple[int, int, int]]:
    """(ts, start, end) of every window holding ts: the local dates s with
    s <= date(ts) < s + size whose day number since 1970-01-01 is a multiple of the
    step, each from its local midnight to the local midnight ``size`` days later."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE events (ts BIGINT)")
    con.executemany("INSERT INTO events VALUES (?)", [(t,) for t in timestamps])
    rows = con.execute(
        """
        WITH local AS (
            SELECT ts, CAST(timezone($zone, make_timestamp(ts * 1000)::TIMESTAMPTZ) AS DATE) AS d
            FROM events
        ),
        candidates AS (
            SELECT ts, d - CAST(k AS INTEGER) AS s
            FROM local, range(0, $size) AS r(k)
        )
        SELECT ts,
               epoch_ms(timezone($zone, CAST(s AS TIMESTAMP))),
               epoch_ms(timezone($zone, CAST(s AS TIMESTAMP) + to_days(CAST($size AS INTEGER))))
        FROM candidates
        WHERE (s - DATE '1970-01-01') % $step = 0
        """,
        {"zone": zone, "size": size_days, "step": step_days},
    ).fetchall()
    return {(int(t), int(s), int(e)) for t, s, e in rows}


def kappa_windows(timestamps: list[int], w: PanedKind) -> set[tuple[int, int, int]]:
    return {(t, s, w.end(s)) for t in timestamps for s in w.starts(t)}


def test_days_in_new_york_match_duckdb_time_bucket() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    bucket = "time_bucket(INTERVAL '1 day', make_timestamp($ts * 1000)::TIMESTAMPTZ, $zone)"
    day = zoned(1, 1)
    for t in AROUND_DST:
        (want,) = con.execute(
            f"SELECT epoch_ms({bucket})", {"ts": t, "zone": "America/New_York"}
        ).fetchone() or (None,)
        assert day.starts(t) == [want], datetime.fromtimestamp(t / 1000, UTC)


def test_the_dst_days_last_23_and_25_hours() -> None:
    day = zoned(1, 1)
    # Noon in New York on each day, in UTC: EDT (-4) from 2024-03-10, EST (-5) from 11-03.
    (spring,) = day.starts(ms("2024-03-10T16:00:00Z"))
    (autumn,) = day.starts(ms("2024-11-03T17:00:00Z"))
    assert (spring, day.end(spring)) == (
        ms("2024-03-10T05:00:00Z"),
        ms("2024-03-11T04:00:00Z"),
    )
    assert (autumn, day.end(autumn)) == (
        ms("2024-11-03T04:00:00Z"),
        ms("2024-11-04T05:00:00Z"),
    )
    assert day.end(spring) - spring == 23 * HOUR
    assert day.end(autumn) - autumn == 25 * HOUR


@pytest.mark.parametrize(("size_days", "step_days"), [(1, 1), (2, 1), (3, 2), (7, 7), (7, 1)])
def test_whole_day_windows_match_duckdb(size_days: int, step_days: int) -> None:
    w = zoned(size_days, step_days)
    assert kappa_windows(AROUND_DST, w) == duckdb_windows(
        AROUND_DST, size_days, step_days, "America/New_York"
    )


@pytest.mark.parametrize(
    "zone", ["Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "America/Sao_Paulo"]
)
def test_other_zones_match_duckdb(zone: str) -> None:
    # Lord Howe moves its clocks by 30 minutes; Sao Paulo skipped midnight until 2019.
    times = [
        t
        for first in ("2018-02-14T00:00:00Z", "2018-11-01T00:00:00Z", "2024-03-28T00:00:00Z")
        for t in range(ms(first), ms(first) + 8 * DAY, 11 * MINUTE)
    ]
    w = zoned(2, 1, ZoneInfo(zone))
    assert kappa_windows(times, w) == duckdb_windows(times, 2, 1, zone)


def test_sao_paulo_day_without_a_midnight_starts_when_its_clocks_jump() -> None:
    # 2018-11-04: 00:00 -03 became 01:00 -02, so the day began at 03:00 UTC.
    (start,) = zoned(1, 1, ZoneInfo("America/Sao_Paulo")).starts(ms("2018-11-04T12:00:00Z"))
    assert start == ms("2018-11-04T03:00:00Z")


def test_sub_day_and_utc_windows_stay_aligned_to_the_epoch() -> None:
    hour = aligned_window("1h", HOUR, HOUR)
    assert hour.in_zone(ZoneInfo("Asia/Kolkata")) is hour
    uneven = aligned_window("36h", 36 * HOUR, 36 * HOUR)
    assert uneven.in_zone(NEW_YORK) is uneven
    day = aligned_window("1d", DAY, DAY)
    assert day.in_zone(ZoneInfo("UTC")) is day
    assert day.in_zone(NEW_YORK) == aligned_window("1d@America/New_York", DAY, DAY, NEW_YORK)


def test_a_whole_day_window_needs_a_whole_day_step() -> None:
    with pytest.raises(ValueError, match="needs a step of whole days"):
        aligned_window("1d/6h", DAY, 6 * HOUR).in_zone(NEW_YORK)


ZONES = st.sampled_from(
    [NEW_YORK, *(ZoneInfo(z) for z in ("Pacific/Apia", "America/Sao_Paulo", "Asia/Kathmandu"))]
)
# 1900..2100, and both edges of the event-time range (years 1 and 9999).
ANY_TS = st.one_of(
    st.integers(min_value=ms("1900-01-01T00:00:00Z"), max_value=ms("2100-01-01T00:00:00Z")),
    st.integers(
        min_value=ms("0001-01-01T00:00:00+00:00"), max_value=ms("0001-01-09T00:00:00+00:00")
    ),
    st.integers(
        min_value=ms("9999-12-20T00:00:00+00:00"), max_value=ms("9999-12-31T23:59:59.999+00:00")
    ),
)


@st.composite
def zoned_windows(draw: st.DrawFn) -> PanedKind:
    step = draw(st.integers(min_value=1, max_value=7))
    size = step * draw(st.integers(min_value=1, max_value=3)) + draw(st.integers(0, step - 1))
    return zoned(size, step, draw(ZONES))


@settings(max_examples=300, deadline=None)
@given(ts=ANY_TS, w=zoned_windows())
def test_every_zoned_window_holds_its_timestamp(ts: int, w: PanedKind) -> None:
    starts = w.starts(ts)
    assert starts == sorted(starts)
    assert len(starts) == len(set(starts)) >= 1
    for s in starts:
        assert s <= ts < w.end(s)


@settings(max_examples=100, deadline=None)
@given(
    wm=st.integers(min_value=ms("2024-02-20T00:00:00Z"), max_value=ms("2024-12-01T00:00:00Z")),
    offset=st.integers(min_value=-20 * DAY, max_value=2 * DAY),
    w=zoned_windows(),
)
def test_zoned_last_closed_start_bounds_the_closed_windows(
    wm: int, offset: int, w: PanedKind
) -> None:
    bound = w.last_closed_start(wm)
    for s in w.starts(wm + offset):
        assert (s <= bound) == (w.end(s) <= wm)


def test_last_closed_start_skips_a_day_that_never_happened() -> None:
    """Samoa skipped 2011-12-30: at the end of the 29th only the 29th's window has closed."""
    day = zoned(1, 1, ZoneInfo("Pacific/Apia"))
    dec31 = ms("2011-12-31T00:00:00+14:00")
    (dec29,) = day.starts(ms("2011-12-29T12:00:00-10:00"))
    assert dec29 <= day.last_closed_start(dec31) < dec31
    assert day.last_closed_start(dec31 - 1) < dec29


@settings(max_examples=100, deadline=None)
@given(
    lo=st.integers(min_value=ms("2024-02-20T00:00:00Z"), max_value=ms("2024-12-01T00:00:00Z")),
    span=st.integers(min_value=-DAY, max_value=20 * DAY),
    w=zoned_windows(),
)
def test_zoned_starts_between_are_the_starts_in_the_range(lo: int, span: int, w: PanedKind) -> None:
    hi = lo + span
    scan = range(lo - 2 * w.size_ms - 2 * DAY, hi + DAY, HOUR)
    every = {s for t in scan for s in w.starts(t)}
    assert list(w.starts_between(lo, hi)) == sorted(s for s in every if lo <= s < hi)


def test_local_days_are_counted_from_1970_01_01() -> None:
    """A 7-day window starts on a Thursday, as epoch-aligned ones do (1970-01-01 was one)."""
    (start,) = zoned(7, 7).starts(ms("2024-03-10T16:00:00Z"))
    local = datetime.fromtimestamp(start / 1000, NEW_YORK)
    assert (local.strftime("%A"), local.time()) == ("Thursday", datetime.min.time())
    assert local.date() <= datetime(2024, 3, 10).date() < local.date() + timedelta(days=7)


def test_a_day_that_never_happened_starts_no_window() -> None:
    """Samoa skipped 2011-12-30: its clocks went from the 29th straight to the 31st."""
    apia = ZoneInfo("Pacific/Apia")
    day, two_days = zoned(1, 1, apia), zoned(2, 1, apia)
    dec31 = ms("2011-12-31T12:00:00+14:00")
    (start,) = day.starts(dec31)
    assert (start, day.end(start)) == (
        ms("2011-12-31T00:00:00+14:00"),
        ms("2012-01-01T00:00:00+14:00"),
    )
    # The window from the 29th covers the 29th and the (empty) 30th; the 31st starts its own.
    assert two_days.starts(dec31) == [start]
    (dec29,) = day.starts(ms("2011-12-29T12:00:00-10:00"))
    assert day.end(dec29) == start


@settings(max_examples=200, deadline=None)
@given(ts=ANY_TS, w=zoned_windows())
def test_a_zoned_pane_is_in_exactly_the_windows_of_its_events(ts: int, w: PanedKind) -> None:
    """Panes of local days: an event's pane starts at or before it, is in the windows
    the event is in, and is one of each such window's panes."""
    check_pane_of(w, ts)


@settings(max_examples=100, deadline=None)
@given(
    wm=st.integers(min_value=ms("2024-02-20T00:00:00Z"), max_value=ms("2024-12-01T00:00:00Z")),
    offset=st.integers(min_value=-20 * DAY, max_value=20 * DAY),
    w=zoned_windows(),
)
def test_zoned_pane_bounds_expire_only_unused_panes(wm: int, offset: int, w: PanedKind) -> None:
    last = w.last_closed_start(wm)
    read_to, expire_to = w.pane_bounds(last)
    pane = w.pane(wm + offset)
    assert pane is not None
    assert (pane <= expire_to) == all(s <= last for s in w.starts(pane))
    for s in w.starts(last):
        assert max(w.panes(s)) <= read_to
