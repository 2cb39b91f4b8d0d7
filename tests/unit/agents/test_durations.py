from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.durations import format_duration, parse_duration

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("0s", 0),
        ("30s", 30 * SECOND),
        ("1m", MINUTE),
        ("15m", 15 * MINUTE),
        ("1h", HOUR),
        ("1d", DAY),
        ("1w", 7 * DAY),
        (" 90m ", 90 * MINUTE),
    ],
)
def test_parse(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (250, "250ms"),
        (1500, "1500ms"),
        (90 * MINUTE, "90m"),
        (DAY, "1d"),
        (14 * DAY, "2w"),
    ],
)
def test_format_uses_the_largest_exact_unit(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@pytest.mark.parametrize(
    "text",
    [
        "600",
        "1.5h",
        "-1h",
        "1 h",
        "1hour",
        "1H",
        "h",
        "",
        "1h30m",
        "\u0661h",  # an Arabic-Indic digit one
    ],
)
def test_parse_rejects_and_names_the_units(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*ms, s, m, h, d or w"):
        parse_duration(text)


def test_format_rejects_negative() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        format_duration(-1)


@given(st.integers(min_value=0, max_value=10**15))
def test_round_trip(ms: int) -> None:
    assert parse_duration(format_duration(ms)) == ms
