"""The spec's ``[history]`` cut: what it accepts, and what each bad cut is told."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from typing import Any

import pytest

from agents.cut import parse_cut
from agents.spec import SpecError, parse_spec

MINIMAL: dict[str, Any] = {
    "name": "orders",
    "version": 2,
    "input_topic": "orders",
    "key": "customer_id",
    "time_field": "ts",
}
MARCH_1 = 1_709_251_200_000  # 2024-03-01T00:00:00Z


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2024-03-01T00:00:00Z", MARCH_1),
        ("2024-03-01T00:00:00+00:00", MARCH_1),
        ("2024-03-01T01:00:00+01:00", MARCH_1),
        ("2024-03-01T00:00:00", MARCH_1),  # naive is UTC
        ("2024-03-01", MARCH_1),  # a date is its midnight
        ("2024-03-01T00:00:00.250Z", MARCH_1 + 250),
        (datetime(2024, 3, 1), MARCH_1),  # a TOML date-time
        (date(2024, 3, 1), MARCH_1),  # a TOML date
    ],
)
def test_cut_times(value: Any, ms: int) -> None:
    assert parse_cut(value) == ms


def test_a_toml_datetime_cut_loads() -> None:
    data = tomllib.loads("[history]\ncut = 2024-03-01T00:00:00Z\n")
    spec = parse_spec({**MINIMAL, **data}, "v2.toml")
    assert spec.history is not None
    assert spec.history.cut_ms == MARCH_1
    assert spec.history.cut_iso == "2024-03-01T00:00:00Z"
    assert spec.model_dump(by_alias=True)["history"] == {"cut": "2024-03-01T00:00:00Z"}


def test_no_history_table_means_no_cut() -> None:
    assert parse_spec(MINIMAL, "v1.toml").history is None


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        ("next tuesday", "v2.toml: history.cut: 'next tuesday' is not an ISO-8601 time; write"),
        ("2024-13-01", "history.cut: '2024-13-01' is not an ISO-8601 time"),
        (1709251200000, "history.cut: the cut is a time, got 1709251200000; write it as an"),
        (True, "the cut is a time, got True"),
    ],
)
def test_a_cut_that_is_not_a_time(cut: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({**MINIMAL, "history": {"cut": cut}}, "v2.toml")
    assert message in str(caught.value)
    assert '"2024-03-01T00:00:00Z"' in str(caught.value)  # the error shows a good cut


def test_a_history_table_without_a_cut_or_with_a_typo() -> None:
    with pytest.raises(SpecError, match=r"history\.cut: required field is missing"):
        parse_spec({**MINIMAL, "history": {}}, "v2.toml")
    with pytest.raises(SpecError, match=r"history\.cutt: unknown field; did you mean 'cut'\?"):
        parse_spec({**MINIMAL, "history": {"cutt": "2024-03-01"}}, "v2.toml")
