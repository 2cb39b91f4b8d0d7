"""The source coordinates the hop's records carry."""

from __future__ import annotations

import pytest

from agents.hop import SOURCE_HEADER, BadSource, source_headers, source_of


def test_the_source_round_trips_through_the_headers() -> None:
    headers = source_headers(5, 2**40 + 3)
    assert source_of([("other", b"x"), *headers]) == (5, 2**40 + 3)


def test_a_record_without_a_readable_source_is_refused() -> None:
    with pytest.raises(BadSource, match="no kappa-source header"):
        source_of([])
    with pytest.raises(BadSource, match="has 3 bytes, not 12"):
        source_of([(SOURCE_HEADER, b"abc")])
