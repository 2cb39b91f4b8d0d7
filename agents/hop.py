"""The repartition hop's routing and its records' source coordinates.

A record is applied directly on its input partition q only while the input has the
version's N partitions and q is its key's partition for N (agents/stages/route.py): then
input partition q and state partition q are co-partitioned (Faust assigns them together).
Every other record (null key, a key of another field, a custom partitioner, partitions
added after the version was created) goes to the version's repartition topic, on its
key's partition for N, with its original (input partition, offset) in a header: the
aggregate stage fences it by those coordinates (``tables.records.SourceFence``), so a
record is applied once whichever lane, run or worker brought it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

SOURCE_HEADER = "kappa-source"
_SOURCE = struct.Struct(">iq")  # input partition, offset: Kafka's own widths


class BadSource(ValueError):
    """A repartition record without a readable source header: not written by kappa."""


def source_headers(partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The hop record's headers: where the record was on the input."""
    return [(SOURCE_HEADER, _SOURCE.pack(partition, offset))]


def source_of(headers: Sequence[tuple[str, bytes]]) -> tuple[int, int]:
    """The (input partition, offset) a repartition record carries."""
    for name, value in headers:
        if name == SOURCE_HEADER:
            if len(value) != _SOURCE.size:
                raise BadSource(f"header {SOURCE_HEADER} has {len(value)} bytes, not 12")
            partition, offset = _SOURCE.unpack(value)
            return int(partition), int(offset)
    raise BadSource(f"no {SOURCE_HEADER} header")
