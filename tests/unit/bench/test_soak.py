"""``bench.soak``'s arguments: key and event counts with an optional k or m."""

from __future__ import annotations

import pytest

from bench.soak import parse_count


@pytest.mark.parametrize(
    ("text", "count"), [("10m", 10_000_000), ("300K", 300_000), ("5000", 5_000)]
)
def test_counts_take_a_k_or_m_suffix(text: str, count: int) -> None:
    assert parse_count(text) == count


def test_a_count_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        parse_count("lots")
