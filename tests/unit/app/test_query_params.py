"""The query API's parameter parsers (``app.query_params``): what each good input means,
and the ``BadParameter`` (answered with 400 and its message) that each bad one gets.

Expected times are computed here with timedelta floor division, apart from
``tables.times.datetime_to_ms``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.errors import KappaError
from agents.spec import PipelineSpec, parse_spec
from app.query_params import (
    MAX_WINDOWS,
    BadParameter,
    int_param,
    parse_query_time,
    time_param,
    window_range,
)
from tables.windows import PanedKind, Sessions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
TIME_ADVICE = "use ISO-8601 (2024-05-01T12:00:00Z) or epoch milliseconds"


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // MS


# --- int_param -----------------------------------------------------------------------


def test_a_missing_integer_is_the_default() -> None:
    assert int_param({}, "limit", 100, 1, 1000) == 100
    assert int_param({"other": "x"}, "limit", 100, 1, 1000) == 100


@pytest.mark.parametrize(
    ("raw", "value"), [("1", 1), ("1000", 1000), ("+7", 7), (" 42 ", 42), ("0042", 42)]
)
def test_an_integer_in_range_is_taken(raw: str, value: int) -> None:
    assert int_param({"limit": raw}, "limit", 100, 1, 1000) == value


@pytest.mark.parametrize("raw", ["", "ten", "1.5", "1e3", "0x10", "5 5", "--5", "∞"])
def test_a_non_integer_says_so(raw: str) -> None:
    with pytest.raises(BadParameter) as bad:
        int_param({"limit": raw}, "limit", 100, 1, 1000)
    assert str(bad.value) == f"limit={raw!r} is not an integer"


@pytest.mark.parametrize("raw", ["0", "-1", "1001", str(10**30)])
def test_an_integer_out_of_range_says_which_to_use(raw: str) -> None:
    with pytest.raises(BadParameter) as bad:
        int_param({"limit": raw}, "limit", 100, 1, 1000)
    assert str(bad.value) == f"limit={int(raw)} is out of range; use 1..1000"


@given(value=st.integers(min_value=-(10**20), max_value=10**20))
def test_any_integer_is_taken_within_the_range_and_refused_outside(value: int) -> None:
    low, high = -500, 10**12
    if low <= value <= high:
        assert int_param({"n": str(value)}, "n", 0, low, high) == value
    else:
        with pytest.raises(BadParameter, match=rf"use {low}\.\.{high}$"):
            int_param({"n": str(value)}, "n", 0, low, high)


@given(raw=st.text(max_size=30))
def test_any_text_is_an_integer_in_range_or_a_bad_parameter(raw: str) -> None:
    low, high = -(10**9), 10**9
    try:
        value = int_param({"n": raw}, "n", 0, low, high)
    except BadParameter as bad:
        message = bad.message
    else:
        assert value == int(raw)
        assert low <= value <= high
        return
    assert message == f"n={raw!r} is not an integer" or message.endswith(
        f"is out of range; use {low}..{high}"
    )


# --- time_param ----------------------------------------------------------------------


def test_a_missing_time_is_the_default() -> None:
    assert time_param({}, "from", 123) == 123


@pytest.mark.parametrize(
    ("raw", "moment"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T07:30:00-04:30", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # naive: UTC
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250Z", datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        ("2024-05-01T12:00:00.000999Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),  # floored
        ("1969-12-31T23:59:59.999Z", datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
    ],
)
def test_iso_times_with_and_without_an_offset(raw: str, moment: datetime) -> None:
    assert time_param({"from": raw}, "from", 0) == epoch_ms(moment)


@pytest.mark.parametrize(
    ("raw", "ms"),
    [("0", 0), ("1714564800000", 1_714_564_800_000), ("-86400000", -86_400_000), ("-1", -1)],
)
def test_epoch_milliseconds_negative_too(raw: str, ms: int) -> None:
    assert time_param({"to": raw}, "to", 0) == ms


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "yesterday",
        "2024-13-01",
        "2024-02-30T00:00:00Z",
        "2024-05-01T25:00:00Z",
        "12:00",
        "1e12",
        "1714564800000.5",
        "--5",
        "-",
        "²",
        "2024-05-01T12:00:00+25:00",
    ],
)
def test_a_bad_time_says_what_to_send(raw: str) -> None:
    with pytest.raises(BadParameter) as bad:
        time_param({"from": raw}, "from", 0)
    message = str(bad.value)
    assert message.startswith(f"from={raw!r} is not a time; {TIME_ADVICE}")


def test_a_bad_parameter_is_a_kappa_error() -> None:
    assert issubclass(BadParameter, KappaError)


@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zone=st.none() | st.timezones(),
    spelled=st.sampled_from(["T", " "]),
)
def test_any_iso_time_is_its_epoch_milliseconds(
    moment: datetime, zone: tzinfo | None, spelled: str
) -> None:
    """Naive (UTC) or in any IANA zone, spelled with a T or a space."""
    local = moment.replace(tzinfo=zone)
    raw = local.isoformat(sep=spelled)
    assert parse_query_time(raw) == epoch_ms(
        local if zone is not None else local.replace(tzinfo=UTC)
    )


@given(
    moment=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    offset_min=st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
def test_any_fixed_offset_is_applied(moment: datetime, offset_min: int) -> None:
    local = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    expected = epoch_ms(moment.replace(tzinfo=UTC)) - offset_min * 60_000
    assert parse_query_time(local.isoformat()) == expected


@given(ms=st.integers(min_value=-(10**16), max_value=10**16))
def test_any_epoch_millisecond_is_itself(ms: int) -> None:
    assert time_param({"to": str(ms)}, "to", 0) == ms


@given(raw=st.text(max_size=40))
def test_any_text_is_a_time_or_a_bad_parameter(raw: str) -> None:
    try:
        value = time_param({"from": raw}, "from", 0)
    except BadParameter as bad:
        message = bad.message
    else:
        assert isinstance(value, int)
        return
    assert message.startswith(f"from={raw!r} is not a time; {TIME_ADVICE}")


# --- window_range --------------------------------------------------------------------

HOUR = 3_600_000
DAY = 24 * HOUR
WATERMARK = 1_714_564_800_000


def spec() -> PipelineSpec:
    return parse_spec(
        {
            "name": "orders",
            "version": 1,
            "input_topic": "orders",
            "key": "customer_id",
            "time_field": "ts",
            "values": ["amount"],
            "windows": [{"size": "1h"}, {"size": "1d", "step": "6h"}],
            "lateness": "10m",
            "retention": "30d",
        },
        "test",
    )


def test_by_default_every_window_over_the_retention_up_to_the_watermark() -> None:
    windows, start, end = window_range(spec(), {}, WATERMARK)
    assert [w.name for w in windows] == ["1h", "1d/6h"]
    # Up to windows still open at the watermark (lateness and the largest window past
    # it), back over the retention and twice the largest window.
    assert end == WATERMARK + 10 * 60_000 + DAY
    assert start == end - 30 * DAY - 2 * DAY


def test_one_window_and_a_range_asked_for() -> None:
    query = {"window": "1h", "from": "2024-05-01", "to": "2024-05-02T00:00:00+02:00"}
    windows, start, end = window_range(spec(), query, WATERMARK)
    assert [w.name for w in windows] == ["1h"]
    assert (start, end) == (
        epoch_ms(datetime(2024, 5, 1, tzinfo=UTC)),
        epoch_ms(datetime(2024, 5, 1, 22, tzinfo=UTC)),
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"window": "2h"}, "window='2h' is not one of this pipeline's windows (1h, 1d/6h)"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "`to` must be after `from`"),
        ({"from": "2024-05-01", "to": "2024-05-01"}, "`to` must be after `from`"),
        (
            {"window": "1h", "from": "0", "to": str((MAX_WINDOWS + 1) * HOUR)},
            f"from..to spans more than {MAX_WINDOWS} 1h windows; narrow the range",
        ),
        ({"to": "soon"}, f"to='soon' is not a time; {TIME_ADVICE}"),
    ],
)
def test_a_bad_window_or_range_says_what_to_send(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadParameter) as bad:
        window_range(spec(), query, WATERMARK)
    assert bad.value.message.startswith(message)


def test_the_most_windows_one_request_may_list() -> None:
    query = {"window": "1h", "from": "0", "to": str(MAX_WINDOWS * HOUR)}
    windows, start, end = window_range(spec(), query, WATERMARK)
    [hours] = windows
    assert isinstance(hours, PanedKind)
    assert (end - start) // hours.step_ms == MAX_WINDOWS


def test_sessions_are_listed_over_the_retention_with_their_gap_for_a_size() -> None:
    sessions = spec().model_copy(update={"windows": (Sessions("session/30m", 30 * 60_000),)})
    windows, start, end = window_range(sessions, {}, WATERMARK)
    assert windows == list(sessions.windows)
    assert end == WATERMARK + 10 * 60_000 + 30 * 60_000 + 1
    assert start == end - 30 * DAY - 2 * (30 * 60_000 + 1)
    # Any range: a key has only the sessions it had.
    assert window_range(sessions, {"from": "0", "to": str(10**15)}, WATERMARK)[1:] == (0, 10**15)
