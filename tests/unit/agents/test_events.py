from __future__ import annotations

import calendar
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.events import Event, EventParser, Rejected
from agents.spec import PipelineSpec, parse_spec

# Bounds of the accepted time range (years 1 to 9999 UTC), in seconds.
FIRST_S = calendar.timegm((1, 1, 1, 0, 0, 0))
LAST_S = calendar.timegm((9999, 12, 31, 23, 59, 59))


def make_spec(**change: Any) -> PipelineSpec:
    data = {
        "name": "orders",
        "version": 1,
        "input_topic": "orders",
        "key": "customer_id",
        "time_field": "ts",
        "values": ["amount", "quantity"],
    }
    return parse_spec(data | change, "test")


def parser(**change: Any) -> EventParser:
    return EventParser(make_spec(**change))


AUTO = parser()
ISO = parser(time_format="iso8601")
EPOCH_S = parser(time_format="epoch_s")
EPOCH_MS = parser(time_format="epoch_ms")


def utc_ms(*parts: int, microsecond: int = 0) -> int:
    """Epoch ms of a UTC wall-clock time, computed without the parser's arithmetic."""
    return calendar.timegm((*parts, 0, 0, 0)[:6]) * 1000 + microsecond // 1000


def ts_of(p: EventParser, value: Any) -> int:
    return p.parse_fields({"customer_id": "c1", "ts": value}).ts_ms


def rejection(p: EventParser, fields: dict[str, Any]) -> Rejected:
    with pytest.raises(Rejected) as caught:
        p.parse_fields(fields)
    return caught.value


def test_parse_bytes() -> None:
    event = AUTO.parse_bytes(
        b'{"customer_id": "c1", "ts": "2024-05-01T12:00:00Z", "amount": 9.5, "quantity": 2,'
        b' "note": "gift"}'
    )
    assert event == Event(
        key="c1",
        ts_ms=int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()) * 1000,
        values=(9.5, 2.0),
        fields={
            "customer_id": "c1",
            "ts": "2024-05-01T12:00:00Z",
            "amount": 9.5,
            "quantity": 2,
            "note": "gift",
        },
    )


def test_parse_fields_keeps_the_whole_row() -> None:
    row = {"customer_id": "7", "ts": "1714564800", "amount": "1.25", "quantity": "", "x": "y"}
    event = AUTO.parse_fields(row)
    assert event.fields is row
    assert (event.key, event.ts_ms, event.values) == ("7", 1714564800 * 1000, (1.25, None))


# --- rejections: each asserts the reason code and that the detail names the field ---


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "not_an_object"),
        (b"", "malformed_json"),
        (b'{"customer_id": ', "malformed_json"),
        (b"{'customer_id': 1}", "malformed_json"),
        (b'{"ts": NaN}', "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"c1"', "not_an_object"),
        (b"null", "not_an_object"),
    ],
)
def test_undecodable_records(raw: bytes | None, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        AUTO.parse_bytes(raw)
    assert caught.value.reason == reason


def test_oversized_is_checked_before_decoding() -> None:
    small = parser(max_record_bytes=39)
    fits = b'{"customer_id": 1, "ts": 1714564800000}'
    assert len(fits) == 39
    assert small.parse_bytes(fits).key == "1"
    with pytest.raises(Rejected) as caught:
        small.parse_bytes(b"x" * 40)  # not JSON either: size is checked first
    assert caught.value.reason == "oversized"
    assert "40 bytes" in caught.value.detail
    assert "max_record_bytes = 39" in caught.value.detail


GOOD = {"customer_id": "c1", "ts": 1714564800}


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"customer_id": None}, "missing_key", "'customer_id' is null"),
        ({"customer_id": ""}, "missing_key", "'customer_id' is empty"),
        ({"customer_id": True}, "bad_key", "'customer_id'"),
        ({"customer_id": {"id": 1}}, "bad_key", "'customer_id'"),
        ({"customer_id": [1]}, "bad_key", "'customer_id'"),
        ({"customer_id": math.nan}, "bad_key", "'customer_id'"),
        ({"customer_id": math.inf}, "bad_key", "'customer_id'"),
        ({"ts": None}, "missing_time", "'ts' is null"),
        ({"ts": ""}, "missing_time", "'ts' is empty"),
        ({"ts": True}, "bad_time", "'ts'"),
        ({"ts": "yesterday"}, "bad_time", "'ts'"),
        ({"ts": "NaN"}, "bad_time", "'ts'"),
        ({"ts": "1_000"}, "bad_time", "'ts'"),
        ({"ts": math.nan}, "bad_time", "'ts'"),
        ({"ts": -math.inf}, "bad_time", "'ts'"),
        ({"ts": [1714564800]}, "bad_time", "'ts'"),
        ({"ts": "2024-05-01T25:00:00"}, "bad_time", "'ts'"),
        ({"ts": 10**30}, "bad_time", "'ts' is outside the years 1 to 9999"),
        ({"ts": "1e999999"}, "bad_time", "'ts' is outside the years 1 to 9999"),
        ({"amount": "abc"}, "non_numeric", "'amount'"),
        ({"amount": "nan"}, "non_numeric", "'amount'"),
        ({"amount": True}, "non_numeric", "'amount'"),
        ({"amount": math.inf}, "non_numeric", "'amount'"),
        ({"amount": -math.inf}, "non_numeric", "'amount'"),
        ({"amount": math.nan}, "non_numeric", "'amount'"),
        ({"amount": "-Infinity"}, "non_numeric", "'amount'"),
        ({"amount": "1e400"}, "non_numeric", "'amount'"),
        ({"amount": [1]}, "non_numeric", "'amount'"),
        ({"amount": {"v": 1}}, "non_numeric", "'amount'"),
        ({"amount": 10**400}, "non_numeric", "'amount'"),
        ({"quantity": Decimal("sNaN")}, "non_numeric", "'quantity'"),
    ],
)
def test_rejections_name_the_field(change: dict[str, Any], reason: str, field: str) -> None:
    rejected = rejection(AUTO, GOOD | change)
    assert rejected.reason == reason
    assert field in rejected.detail
    assert rejected.message == f"{reason}: {rejected.detail}"
    assert "dead-letter topic" in str(rejected)  # the hint: what to do about it


@pytest.mark.parametrize(
    ("field", "reason"), [("customer_id", "missing_key"), ("ts", "missing_time")]
)
def test_absent_field(field: str, reason: str) -> None:
    rejected = rejection(AUTO, {k: v for k, v in GOOD.items() if k != field})
    assert rejected.reason == reason
    assert f"{field!r} is missing" in rejected.detail


def test_long_bad_values_are_shortened() -> None:
    rejected = rejection(AUTO, GOOD | {"amount": "x" * 10_000})
    assert rejected.detail.endswith("...")
    assert len(rejected.detail) < 200


@pytest.mark.parametrize(
    ("p", "value"),
    [
        (ISO, 1714564800),
        (ISO, "1714564800"),
        (EPOCH_S, "2024-05-01T12:00:00Z"),
        (EPOCH_MS, "2024-05-01"),
        (EPOCH_MS, True),
    ],
)
def test_time_format_is_enforced(p: EventParser, value: Any) -> None:
    rejected = rejection(p, GOOD | {"ts": value})
    assert rejected.reason == "bad_time"
    assert "'ts'" in rejected.detail
    assert "time_format = " in rejected.detail


# --- keys ---


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("abc", "abc"),
        ("ünï code", "ünï code"),
        (42, "42"),
        (-7, "-7"),
        (42.0, "42.0"),
        (1.5, "1.5"),
    ],
)
def test_single_key(value: Any, key: str) -> None:
    assert AUTO.canonical_key({"customer_id": value}) == key


def test_compound_key_is_joined_with_bars() -> None:
    p = parser(key=["region", "store"])
    assert p.canonical_key({"region": "eu", "store": 7}) == "eu|7"
    assert p.parse_fields({"region": "eu", "store": 7, "ts": 0}).key == "eu|7"
    rejected = rejection(p, {"region": "eu", "ts": 0})
    assert (rejected.reason, "'store' is missing" in rejected.detail) == ("missing_key", True)


# --- values ---


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (None, None),
        ("", None),
        (2, 2.0),
        (2**70, 1180591620717411303424.0),
        (-0.5, -0.5),
        (-0.0, -0.0),
        ("3.25", 3.25),
        ("1e3", 1000.0),
        (Decimal("19.99"), 19.99),
    ],
)
def test_values(amount: Any, expected: float | None) -> None:
    values = AUTO.parse_fields(GOOD | {"amount": amount}).values
    assert values == (expected, None)
    assert type(values[0]) is type(expected)  # a float, never the int or text given


def test_no_value_fields() -> None:
    assert parser(values=[]).parse_fields(GOOD | {"amount": "abc"}).values == ()


NA = parser(null_values=["NA", "NULL", "-999", "NaN"])


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("NA", None),
        ("NULL", None),
        ("-999", None),  # a marker is text: it wins over the number it spells
        ("NaN", None),
        ("", None),  # always NULL, listed or not
        (None, None),
        ("3.25", 3.25),
        (-999, -999.0),  # a number is never a marker
        (-999.0, -999.0),
    ],
)
def test_null_markers_in_a_history_row(amount: Any, expected: float | None) -> None:
    assert NA.parse_fields(GOOD | {"amount": amount, "quantity": "NA"}).values == (expected, None)


def test_null_markers_in_live_json() -> None:
    raw = orjson.dumps(GOOD | {"amount": "NULL", "quantity": 4})
    assert NA.parse_bytes(raw).values == (None, 4.0)


@pytest.mark.parametrize("amount", ["na", " NA", "NA ", "N/A", "null"])
def test_null_markers_match_exactly(amount: str) -> None:
    rejected = rejection(NA, GOOD | {"amount": amount})
    assert rejected.reason == "non_numeric"
    assert "'amount'" in rejected.detail


def test_without_null_markers_na_is_non_numeric() -> None:
    assert rejection(AUTO, GOOD | {"amount": "NA"}).reason == "non_numeric"


def test_null_markers_are_for_values_only() -> None:
    assert NA.parse_fields(GOOD | {"customer_id": "NA"}).key == "NA"
    assert rejection(NA, GOOD | {"ts": "NA"}).reason == "bad_time"


# --- event time ---

NOON = utc_ms(2024, 5, 1, 12)


@pytest.mark.parametrize("p", [AUTO, ISO])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T14:00:00+02:00", NOON),
        ("2024-05-01T07:00:00-05:00", NOON),
        ("2024-05-01 12:00:00", NOON),  # naive is UTC
        ("2024-05-01T12:00:00", NOON),
        ("2024-05-01", utc_ms(2024, 5, 1)),
        ("2024-05-01T12:00:00.123Z", NOON + 123),
        ("2024-05-01T12:00:00.123999Z", NOON + 123),  # floored, not rounded
        ("2024-05-01T12:00:00.9999999Z", NOON + 999),
        ("1969-12-31T23:59:59.9995Z", -1),  # floor goes down before the epoch too
        ("0001-01-01T00:00:00Z", FIRST_S * 1000),
        ("9999-12-31T23:59:59.999Z", LAST_S * 1000 + 999),
    ],
)
def test_iso8601(p: EventParser, text: str, expected: int) -> None:
    assert ts_of(p, text) == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
def test_iso8601_outside_the_range_in_utc(text: str) -> None:
    assert rejection(ISO, GOOD | {"ts": text}).reason == "bad_time"


@pytest.mark.parametrize(
    ("p", "value", "expected"),
    [
        (EPOCH_S, 1714564800, NOON),
        (EPOCH_S, "1714564800", NOON),
        (EPOCH_S, 1714564800.123, NOON + 123),  # the number as written, not float error
        (EPOCH_S, "1714564800.1239", NOON + 123),
        (EPOCH_S, " 1714564800 ", NOON),
        (EPOCH_S, "1.7145648e9", NOON),
        (EPOCH_S, -1.5, -1500),
        (EPOCH_S, "-0.0005", -1),
        (EPOCH_MS, NOON, NOON),
        (EPOCH_MS, str(NOON), NOON),
        (EPOCH_MS, float(NOON) + 0.9, NOON),
        (EPOCH_MS, 0, 0),
        (AUTO, 1714564800, NOON),
        (AUTO, NOON, NOON),
        (AUTO, "1714564800.5", NOON + 500),
        (AUTO, str(NOON), NOON),
        (AUTO, 99_999_999_999, 99_999_999_999_000),  # below 1e11: seconds
        (AUTO, 100_000_000_000, 100_000_000_000),  # from 1e11: milliseconds
        (AUTO, -100_000_000_000, -100_000_000_000),
        (AUTO, "20240501", 20240501_000),  # all digits: epoch seconds in auto
        (EPOCH_S, "1714564800\x1f", NOON),  # \\s matches it, int() refuses it
    ],
)
def test_epoch(p: EventParser, value: Any, expected: int) -> None:
    assert ts_of(p, value) == expected


@pytest.mark.parametrize("p", [AUTO, ISO, EPOCH_S, EPOCH_MS])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 1, 12), NOON),
        (datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))), NOON),
        (datetime(2024, 5, 1, 12, 0, 0, 123999, tzinfo=UTC), NOON + 123),
        (date(2024, 5, 1), utc_ms(2024, 5, 1)),
    ],
)
def test_datetime_objects_in_every_format(p: EventParser, value: Any, expected: int) -> None:
    assert ts_of(p, value) == expected


def test_epoch_ms_range_edges() -> None:
    assert ts_of(EPOCH_MS, LAST_S * 1000 + 999) == LAST_S * 1000 + 999
    assert rejection(EPOCH_MS, GOOD | {"ts": LAST_S * 1000 + 1000}).reason == "bad_time"
    assert ts_of(EPOCH_MS, FIRST_S * 1000) == FIRST_S * 1000
    assert rejection(EPOCH_MS, GOOD | {"ts": FIRST_S * 1000 - 1}).reason == "bad_time"


# --- properties ---

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31))


@given(
    moment=moments,
    tz=offsets,
    timespec=st.sampled_from(["auto", "milliseconds", "microseconds"]),
    sep=st.sampled_from(["T", " "]),
    zulu=st.booleans(),
)
def test_iso_round_trip(
    moment: datetime, tz: timezone, timespec: str, sep: str, zulu: bool
) -> None:
    aware = moment.replace(tzinfo=tz)
    text = aware.isoformat(sep=sep, timespec=timespec)
    if zulu and text.endswith("+00:00"):
        text = text.removesuffix("+00:00") + "Z"
    expected = calendar.timegm(aware.utctimetuple()) * 1000 + aware.microsecond // 1000
    assert ts_of(ISO, text) == expected
    assert ts_of(AUTO, text) == expected


@given(moment=moments)
def test_naive_iso_is_utc(moment: datetime) -> None:
    expected = calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000
    assert ts_of(ISO, moment.isoformat()) == expected


@given(
    whole=st.integers(min_value=FIRST_S + 1, max_value=LAST_S - 1),
    fraction=st.text(alphabet="0123456789", min_size=0, max_size=6),
)
def test_epoch_seconds_numbers_and_strings_agree(whole: int, fraction: str) -> None:
    text = f"{whole}.{fraction}" if fraction else str(whole)
    expected = math.floor(Fraction(text) * 1000)
    assert ts_of(EPOCH_S, text) == expected
    as_string = b'{"customer_id": 1, "ts": "%s"}' % text.encode()
    assert EPOCH_S.parse_bytes(as_string).ts_ms == expected
    # A JSON number is read as a double, which keeps 15 significant digits.
    if len(text.lstrip("-").replace(".", "").lstrip("0")) <= 15:
        assert ts_of(EPOCH_S, float(text)) == expected
        as_number = b'{"customer_id": 1, "ts": %s}' % text.encode()
        assert EPOCH_S.parse_bytes(as_number).ts_ms == expected


@given(st.integers(min_value=FIRST_S * 1000, max_value=LAST_S * 1000 + 999))
def test_epoch_ms_numbers_and_strings_agree(ms: int) -> None:
    assert ts_of(EPOCH_MS, ms) == ms
    assert ts_of(EPOCH_MS, str(ms)) == ms
    assert ts_of(EPOCH_MS, float(ms)) == ms  # |ms| < 2**53, so the float is exact
    assert EPOCH_MS.parse_bytes(orjson.dumps({"customer_id": 1, "ts": ms})).ts_ms == ms


@given(st.integers(min_value=FIRST_S, max_value=LAST_S))
def test_auto_reads_small_numbers_as_seconds_and_large_as_ms(number: int) -> None:
    expected = number if abs(number) >= 10**11 else number * 1000
    assert ts_of(AUTO, number) == expected
    assert ts_of(AUTO, str(number)) == expected
