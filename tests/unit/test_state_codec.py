"""kappa writes table keys and values with orjson directly (tables.partition_state); Faust reads
them back with its table codec, "json". The two must agree byte for byte on every kind
of value kappa stores."""

from __future__ import annotations

from typing import Any

import pytest
from faust.serializers import codecs

from tables.aggregates import Agg
from tables.faust_store import decode, encode
from tables.records import KeyRecord, PartitionProgress, closed_key


def _record() -> KeyRecord:
    totals = Agg.empty(2)
    for values in ([1.5, None], [-0.25, 3.0], [1e-300, 2.0**60]):
        totals.add(values)
    window = Agg.empty(2)
    window.add([0.1, None])
    return KeyRecord(fence=41, totals=totals, windows={"1h@1704067200000": window})


VALUES: list[Any] = [
    _record().to_state(),
    KeyRecord(fence=0, totals=Agg.empty(1), windows={}).to_state(),
    PartitionProgress(max_event_ms=1_704_067_200_123, offset=99).to_state(),
    PartitionProgress().to_state(),
    {"key": "ü-ключ", "window": "1d/6h", "start_ms": -86_400_000, "final": True, "count": 3},
    ["c1", "c2", 'quote"d', "tab\tbed"],
    None,
]
KEYS = ["customer-1", "ü-ключ|7", closed_key("k", "1h", 1_704_067_200_000), "progress/3", ""]


@pytest.mark.parametrize("value", VALUES)
def test_values_are_the_bytes_faust_writes_and_read_back(value: Any) -> None:
    assert encode(value) == codecs.dumps("json", value)
    assert codecs.loads("json", encode(value)) == decode(encode(value)) == value


@pytest.mark.parametrize("key", KEYS)
def test_keys_are_the_bytes_faust_writes_and_read_back(key: str) -> None:
    assert encode(key) == codecs.dumps("json", key)
    assert codecs.loads("json", encode(key)) == key
