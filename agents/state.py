"""``PartitionState`` on Faust tables: RocksDB (rocksdict) stores with changelog topics.

Writes happen while a source event of the partition is current, so Faust routes every
write to that partition's store and changelog: the state stays co-partitioned with
its input and moves with it on a rebalance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agents.aggregation import KeyRecord, Progress, WindowResult

SEP = "\x1f"  # cannot appear in JSON text keys users type, so composite keys stay unambiguous


def closed_key(key: str, window: str, start_ms: int) -> str:
    return f"{key}{SEP}{window}{SEP}{start_ms}"


class TablePartitionState:
    """One partition's view of the ``keys``, ``closed`` and ``meta`` tables."""

    def __init__(self, keys: Any, closed: Any, meta: Any, partition: int) -> None:
        self.keys = keys
        self.closed = closed
        self.meta = meta
        self.partition = partition

    def get_key(self, key: str) -> KeyRecord | None:
        state = self.keys.get(key)
        return None if state is None else KeyRecord.from_state(state)

    def put_key(self, key: str, record: KeyRecord) -> None:
        self.keys[key] = record.to_state()

    def get_progress(self) -> Progress | None:
        state = self.meta.get(f"progress/{self.partition}")
        return None if state is None else Progress.from_state(state)

    def put_progress(self, progress: Progress) -> None:
        self.meta[f"progress/{self.partition}"] = progress.to_state()

    def put_closed(self, result: WindowResult) -> None:
        self.closed[closed_key(result.key, result.window, result.start_ms)] = result.as_json()

    def delete_closed(self, key: str, window: str, start_ms: int) -> None:
        self.closed.pop(closed_key(key, window, start_ms), None)

    def get_bucket_keys(self, bucket: str) -> list[str]:
        return list(self.meta.get(f"bucket/{self.partition}/{bucket}") or [])

    def put_bucket_keys(self, bucket: str, keys: list[str]) -> None:
        self.meta[f"bucket/{self.partition}/{bucket}"] = keys

    def delete_bucket_keys(self, bucket: str) -> None:
        self.meta.pop(f"bucket/{self.partition}/{bucket}", None)

    def iter_keys(self) -> Iterator[tuple[str, KeyRecord]]:
        """Every key record of this partition, read straight from its RocksDB store."""
        store = self.keys.data
        for raw_key, raw_value in store._db_for_partition(self.partition).items():
            if raw_key == store.offset_key:
                continue
            yield store._decode_key(raw_key), KeyRecord.from_state(store._decode_value(raw_value))
