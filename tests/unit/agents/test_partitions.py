"""``partitions_of`` picks, for a whole column of keys, what Kafka's default partitioner
picks for each key (``agents.batch_sender.default_partition``, aiokafka's murmur2)."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.partition_columns import partitions_of
from agents.partitions import default_partition


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(max_size=13), max_size=60),
    partitions=st.integers(min_value=1, max_value=200),
    start=st.integers(min_value=0, max_value=5),
)
def test_binary_keys_of_any_length_and_slices(
    keys: list[bytes], partitions: int, start: int
) -> None:
    column = pa.array(keys, pa.binary())[start:]  # a slice: an offset into the buffers
    want = [default_partition(key, partitions) for key in keys[start:]]
    assert partitions_of(column, partitions).to_pylist() == want


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.text(max_size=9), max_size=60), partitions=st.sampled_from([1, 4, 7]))
def test_text_keys_are_hashed_as_utf8(keys: list[str], partitions: int) -> None:
    want = [default_partition(key.encode(), partitions) for key in keys]
    assert partitions_of(pa.array(keys, pa.string()), partitions).to_pylist() == want


def test_many_keys_of_one_length() -> None:
    keys = [f"c{i:05d}" for i in range(20_000)]
    want = [default_partition(key.encode(), 12) for key in keys]
    assert partitions_of(pa.array(keys), 12).to_pylist() == want
