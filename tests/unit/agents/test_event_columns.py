"""``parse_columns`` gives, for every row, what ``parse_fields`` gives.

The oracle is ``parse_fields`` itself, row by row: the same good rows with the same keys
and times, and the same rejections with the same reasons and details.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.event_columns import parse_columns
from agents.events import MAX_TS_MS, MIN_TS_MS, EventParser, Rejected
from agents.spec import parse_spec
from tables.times import datetime_to_ms

TIME_FORMATS = ["auto", "iso8601", "epoch_s", "epoch_ms"]


def make_parser(time_format: str = "auto", key: Any = "k") -> EventParser:
    return EventParser(
        parse_spec(
            {
                "name": "t",
                "version": 1,
                "input_topic": "t",
                "key": key,
                "time_field": "ts",
                "time_format": time_format,
                "values": ["a", "b", "absent"],
            },
            "test",
        )
    )


def row_by_row(parser: EventParser, rows: list[dict[str, str]]) -> tuple[Any, ...]:
    """(good flags, keys, times, [(index, reason, detail)]) from parse_fields."""
    good, keys, times, rejected = [], [], [], []
    for index, row in enumerate(rows):
        try:
            event = parser.parse_fields(row)
        except Rejected as why:
            good.append(False)
            rejected.append((index, why.reason, why.detail))
        else:
            good.append(True)
            keys.append(event.key)
            times.append(event.ts_ms)
    return good, keys, times, rejected


def by_columns(parser: EventParser, rows: list[dict[str, str]]) -> tuple[Any, ...]:
    names = list(rows[0]) if rows else ["k", "ts", "a"]
    table = pa.table({name: pa.array([row[name] for row in rows], pa.string()) for name in names})
    parsed = parse_columns(parser, table)
    return (
        parsed.good.to_pylist(),
        parsed.keys.to_pylist(),
        parsed.ts_ms.to_pylist(),
        [(index, why.reason, why.detail) for index, why in parsed.rejected],
    )


DIGITS = st.text("0123456789", min_size=1, max_size=3)
# ISO-8601-like texts: mostly well formed, with every part sometimes out of range or in
# another of the shapes fromisoformat or Arrow read (or neither).
ISO_LIKE = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["2024", "1969", "0001", "9999", "0000", "1970", "20240101", "2024-W01"]),
    st.sampled_from(["-01-01", "-02-29", "-02-30", "-13-01", "-00-10", "-12-31", "", "-1-1"]),
    st.sampled_from(["T", " ", "t", "_", ""]),
    st.sampled_from(["00", "23", "24", "9", "12:30", "1230", "00:00:00", "23:59:59", "23:59:60"]),
    st.sampled_from(["", ":00", ":59", ":60", "00"]),
    st.one_of(st.just(""), st.builds(lambda d: "." + d, st.text("0123456789", max_size=10))),
    st.sampled_from(
        ["", "Z", "z", "+00:00", "-00:00", "+01", "-0130", "+01:30", "-23:59", "+24:00",
         "+01:60", "+01:30:15", "+01:30:15.5", " +01:00", "UTC"]
    ),
)  # fmt: skip
NUMBER_LIKE = st.one_of(
    st.integers(-(10**17), 10**17).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", " ", "1_000", " 12 ", "+5", "-0", "1e999", "-1e999", "1e-999", ".5", "5.", ".",
         "nan", "NaN", "inf", "-Infinity", "0x10", "\u0661\u0662", "\uff11", "1e", "e5", "--1",
         "NA", "12abc",
         "1714564800", "1714564800000", "99999999999", "100000000000", "-1714564800",
         "000000000000001", "1234567890123456", "170000000000000000000"]
    ),
)  # fmt: skip
TEXT = st.one_of(ISO_LIKE, NUMBER_LIKE, st.text(max_size=6))


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, str]]:
    keys = st.one_of(st.sampled_from(["", "c1", "c2", "ü", "a|b"]), st.text(max_size=4))
    return draw(
        st.lists(
            st.fixed_dictionaries(
                {"k": keys, "k2": keys, "ts": TEXT, "a": NUMBER_LIKE, "b": TEXT, "note": TEXT}
            ),
            max_size=40,
        )
    )


@settings(max_examples=400, deadline=None)
@given(rows=rows(), time_format=st.sampled_from(TIME_FORMATS), compound=st.booleans())
def test_parse_columns_is_parse_fields_row_by_row(
    rows: list[dict[str, str]], time_format: str, compound: bool
) -> None:
    parser = make_parser(time_format, ["k", "k2"] if compound else "k")
    assert by_columns(parser, rows) == row_by_row(parser, rows)


@settings(max_examples=200, deadline=None)
@given(times=st.lists(ISO_LIKE, min_size=1, max_size=30), time_format=st.sampled_from(TIME_FORMATS))
def test_iso_times_are_read_as_parse_fields_reads_them(times: list[str], time_format: str) -> None:
    parser = make_parser(time_format)
    data = [{"k": "c", "ts": time, "a": "1"} for time in times]
    assert by_columns(parser, data) == row_by_row(parser, data)


@pytest.mark.parametrize("time_format", TIME_FORMATS)
def test_a_block_of_many_rows_with_a_few_bad_ones(time_format: str) -> None:
    # Enough rows that a failed cast is retried piece by piece, and bad rows in several pieces.
    parser = make_parser(time_format)
    good_time = {"auto": "2024-05-01T12:00:00.123+02:00", "iso8601": "2024-05-01 12:00:00"}.get(
        time_format, "1714564800"
    )
    data = [{"k": f"c{i % 7}", "ts": good_time, "a": str(i / 4), "b": ""} for i in range(1000)]
    for index, change in [
        (3, {"ts": "2024-02-30T00:00:00"}),
        (64, {"ts": "soon"}),
        (65, {"a": "twelve"}),
        (500, {"k": ""}),
        (999, {"ts": ""}),
        (700, {"ts": "1714564800"}),
        (701, {"ts": "2024-05-01T12:00:00"}),
        (702, {"ts": "0000-12-31T23:00:00-02:00"}),  # Arrow reads year 0; Python does not
        (703, {"ts": "9999-12-31T23:59:59-01:00"}),  # the year 10000 in UTC
    ]:
        data[index] = data[index] | change
    assert by_columns(parser, data) == row_by_row(parser, data)


def test_a_value_the_value_rule_accepts_is_asked_once_per_text() -> None:
    parser = make_parser()
    data = [{"k": "c", "ts": "1714564800", "a": text} for text in ["", " 5", "1_000", "", "7"]]
    assert by_columns(parser, data) == row_by_row(parser, data)
    assert by_columns(parser, data)[0] == [True] * 5


def test_columns_that_are_not_text_go_row_by_row() -> None:
    parser = make_parser()
    table = pa.table({"k": ["c1", "c2"], "ts": [1714564800, None], "a": [1.5, 2.0]})
    parsed = parse_columns(parser, table)
    assert parsed.good.to_pylist() == [True, False]
    assert parsed.keys.to_pylist() == ["c1"]
    assert parsed.ts_ms.to_pylist() == [1714564800000]
    assert [(i, why.reason) for i, why in parsed.rejected] == [(1, "missing_time")]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(ISO_LIKE, min_size=1, max_size=20))
@example(texts=["0000-12-31T23:00:00-02:00"])
def test_what_arrow_reads_as_a_time_fromisoformat_reads_alike(texts: list[str]) -> None:
    # The claim parse_columns rests on: but for the year 0, which parse_columns leaves to
    # the parser, and times outside the years 1 to 9999 in UTC, which are out of range
    # anyway, Arrow reads a subset of what fromisoformat reads, as the same instant.
    for arrow_type in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        for text in texts:
            try:
                micros = pa.array([text]).cast(arrow_type).cast(pa.int64())[0].as_py()
            except pa.ArrowInvalid:
                continue
            if text.startswith("0000"):
                with pytest.raises(ValueError, match="year 0 is out of range"):
                    datetime.fromisoformat(text)
            elif MIN_TS_MS <= micros // 1000 <= MAX_TS_MS:
                assert datetime_to_ms(datetime.fromisoformat(text)) == micros // 1000, text


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.one_of(NUMBER_LIKE, st.text(max_size=6)), min_size=1, max_size=20))
def test_what_arrow_reads_as_a_finite_number_float_reads_alike(texts: list[str]) -> None:
    for text in texts:
        try:
            number = pa.array([text]).cast(pa.float64())[0].as_py()
        except pa.ArrowInvalid:
            continue
        if math.isfinite(number):
            assert float(text) == number, text
