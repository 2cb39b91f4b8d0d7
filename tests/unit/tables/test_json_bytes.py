"""Encoded bytes are orjson's, held in objects of their own size."""

from __future__ import annotations

import tracemalloc

import orjson

from tables.json_bytes import dumps


def test_the_bytes_are_orjsons() -> None:
    for value in ["k\x1f1", [3, [1, 0.1, None, [1e-17, 0.3]]], {"a": "ü"}, None]:
        assert dumps(value) == orjson.dumps(value)


def test_many_small_encodings_take_their_own_size() -> None:
    """orjson alone holds about 4 KB per small value; 10,000 keys held must not."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [dumps(f"key-{i:08d}") for i in range(10_000)]
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(held) == 10_000
    assert taken < 10_000 * 200  # bytes objects of about 50 bytes, and the list
