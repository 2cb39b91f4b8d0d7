"""Which partition a key belongs on: Kafka's default partitioner (murmur2), which the
input's producers, the worker's routing check and the replay all use.

``default_partition`` hashes one key with aiokafka's murmur2, which is pure Python: a few
microseconds a key. ``expected_partition`` caches it for the hot path (hot keys hit the
cache). The replay and verify hash whole columns with Arrow (``agents.partition_columns``),
which a worker does not load.
"""

from __future__ import annotations

import functools

from aiokafka.partitioner import murmur2


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, aiokafka) picks for ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=65_536)
def expected_partition(key: str, partitions: int) -> int:
    """The partition an event's key belongs on."""
    return default_partition(key.encode(), partitions)
