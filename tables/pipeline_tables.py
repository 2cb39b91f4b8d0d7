"""The pipeline's four Faust tables, declared on the app, and one partition's state on them.

| table | holds (key layout in ``tables.records``) |
| --- | --- |
| ``keys`` | per key: fence offset, totals |
| ``windows`` | per key and open window: fence offset, aggregate (window-major) |
| ``closed`` | closed windows' final results, kept for the retention |
| ``meta`` | per partition: progress (watermark, checkpoint), closed window instances' keys |

Each is a RocksDB (rocksdict) store per partition with a changelog topic, co-partitioned
with the input, so Faust assigns, recovers and replicates (standbys) them with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.partition_state import TablePartitionState


@dataclass(frozen=True)
class StoreOptions:
    """RocksDB sizes per partition store (Faust's default block cache is 2 GiB each)."""

    block_cache_mb: int
    write_buffer_mb: int

    def rocksdict_options(self) -> dict[str, Any]:
        return {
            "driver": "rocksdict",
            "block_cache_size": self.block_cache_mb * 1024 * 1024,
            "block_cache_compressed_size": self.block_cache_mb * 1024 * 1024,
            "write_buffer_size": self.write_buffer_mb * 1024 * 1024,
            "max_write_buffer_number": 2,
        }


@dataclass(frozen=True)
class PipelineTables:
    keys: Any
    windows: Any
    closed: Any
    meta: Any
    key_cache: int  # decoded key records kept per partition between batches

    @classmethod
    def declare(
        cls, app: Any, partitions: int, store: StoreOptions, key_cache: int
    ) -> PipelineTables:
        def table(name: str, help_text: str) -> Any:
            return app.Table(
                name,
                partitions=partitions,
                key_type=str,
                help=help_text,
                options=store.rocksdict_options(),
            )

        return cls(
            keys=table("keys", "per key: fence offset, totals"),
            windows=table("windows", "per key and open window: fence offset, aggregate"),
            closed=table("closed", "closed windows kept for the retention"),
            meta=table("meta", "per partition: watermark, closed buckets"),
            key_cache=key_cache,
        )

    def partition_state(self, partition: int) -> TablePartitionState:
        return TablePartitionState(
            self.keys, self.windows, self.closed, self.meta, partition, self.key_cache
        )

    @property
    def ownership_changelog(self) -> str:
        """The changelog whose assignment says which worker owns which partition."""
        name: str = self.keys.changelog_topic.get_topic_name()
        return name
