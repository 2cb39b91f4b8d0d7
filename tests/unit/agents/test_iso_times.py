"""agents.iso_times: a time read from its learnt parts equals ``datetime.fromisoformat``'s
reading of it, floored to ms with a naive time as UTC, and a text fromisoformat refuses
is never read from parts."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.iso_times import CACHE_ENTRIES, IsoTimes
from tables.times import datetime_to_ms


def reference(text: str) -> int | None:
    try:
        return datetime_to_ms(datetime.fromisoformat(text))
    except ValueError:
        return None


def read(times: IsoTimes, text: str) -> int | None:
    cached = times.cached(text)
    if cached is not None:
        return cached
    try:
        return times.parse(text)
    except ValueError:
        return None


two = st.integers(0, 99).map(lambda n: f"{n:02d}")
# Parts of the common shape and the ways a time can leave it: out-of-range fields, other
# separators and digits, fractions of any length, offsets with seconds, a date alone.
days = st.one_of(
    st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
    st.sampled_from(["2024-02-30", "2023-02-29", "0000-01-01", "2024-13-01", "2024-1-01"]),
    st.sampled_from(["9999-12-31", "0001-01-01", "2024-02-29", "\uff12\uff10\uff12\uff14-01-01"]),
)
separators = st.sampled_from(["T", " ", "t", "_", ""])
fractions = st.one_of(
    st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda f: f".{f}"),
    st.sampled_from([",123", ".", ".\uff11\uff12\uff13"]),
)  # fmt: skip
zones = st.one_of(
    st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "+24:00", "+05:30:15", "+0530", "+05"]),
    st.tuples(st.sampled_from("+-"), two, two).map(lambda z: f"{z[0]}{z[1]}:{z[2]}"),
)
texts = st.builds(
    lambda day, sep, h, m, s, frac, zone, cut: f"{day}{sep}{h}:{m}:{s}{frac}{zone}"[:cut],
    days, separators, two, two, two, fractions, zones, st.sampled_from([99, 99, 99, 10, 16, 13]),
)  # fmt: skip


@settings(max_examples=800)
@given(st.lists(texts, min_size=1, max_size=30))
def test_every_time_reads_as_fromisoformat_reads_it(batch: list[str]) -> None:
    times = IsoTimes()
    for _ in range(2):  # the second pass reads what the first taught it
        assert [read(times, text) for text in batch] == [reference(text) for text in batch]


@given(st.lists(texts, min_size=1, max_size=30), st.lists(texts, min_size=1, max_size=30))
def test_parts_learnt_from_some_times_read_others_exactly(
    learn: list[str], other: list[str]
) -> None:
    times = IsoTimes()
    for text in learn:
        read(times, text)
    for text in other:
        cached = times.cached(text)
        assert cached is None or cached == reference(text)


def test_common_shapes_are_read_from_parts_once_seen() -> None:
    times = IsoTimes()
    seen = ["2024-05-01T12:00:00", "2024-05-01 12:00:00.250Z", "2024-05-01T12:00:00.123456+02:00"]
    for text in seen:
        times.parse(text)
    assert times.cached("2024-05-01T23:59:59") == reference("2024-05-01T23:59:59")
    assert times.cached("2024-05-01 07:08:09.250Z") == reference("2024-05-01T07:08:09.25Z")
    assert times.cached("2024-05-01T00:00:01.123456+02:00") == reference(
        "2024-04-30T22:00:01.123+00:00"
    )
    # an unknown day, a leap second and a date alone are left to fromisoformat
    assert times.cached("2024-05-02T12:00:00") is None
    assert times.cached("2024-05-01T12:00:60") is None
    assert times.cached("2024-05-01") is None


def test_the_caches_stay_bounded() -> None:
    times = IsoTimes()
    for minute in range(3 * CACHE_ENTRIES):
        text = f"2024-01-01T00:{minute % 60:02d}:00.{minute % 1000:03d}{minute % 7}00+00:00"
        assert times.parse(text) == reference(text)
    assert len(times._tails) <= CACHE_ENTRIES
    assert len(times._days) <= CACHE_ENTRIES


@pytest.mark.parametrize("text", ["2024-05-01T12:00:00x", "2024-05-01T25:00:00", ""])
def test_a_bad_time_raises_fromisoformats_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid isoformat string|hour must be in"):
        IsoTimes().parse(text)
