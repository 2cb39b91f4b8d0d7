"""The pipeline's four Faust tables, declared on the app, and one partition's state on them.

| table | holds (key layout in ``tables.records``) |
| --- | --- |
| ``keys`` | per key: fence offset, totals |
| ``windows`` | per key and open window: fence offset, aggregate (window-major) |
| ``closed`` | closed windows' final results, kept for the retention |
| ``meta`` | per partition: progress (watermark, checkpoint), closed window instances' keys |

Each is a RocksDB (rocksdict) store per partition with a changelog topic, co-partitioned
with the input, so Faust assigns, recovers and replicates (standbys) them with it. All the
stores of a worker share one memory budget (``tables.faust_store.RocksDBBudget``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.faust_store import RocksDBBudget
from tables.partition_state import TablePartitionState

MB = 1024 * 1024
# The app's store (Faust's ``store`` setting): ``tables.faust_store.BudgetedStore``, by
# its name in Faust's store registry (see pyproject). Set on the app, not per table: a
# table's own store URL without a path reads as none, and Faust then takes the app's.
STORE_URL = "kappa://"


@dataclass(frozen=True)
class StoreOptions:
    """RocksDB's memory in a worker: a block cache and memtables shared by every store
    (Faust's default is a 2 GiB block cache per store), and the size at which one
    store's memtable is flushed."""

    block_cache_mb: int
    memtables_mb: int
    write_buffer_mb: int

    def budget(self) -> RocksDBBudget:
        return RocksDBBudget(self.block_cache_mb * MB, self.memtables_mb * MB)

    def rocksdict_options(self, budget: RocksDBBudget) -> dict[str, Any]:
        return {
            "driver": "rocksdict",
            "budget": budget,
            "write_buffer_size": self.write_buffer_mb * MB,
            "max_write_buffer_number": 2,
        }


@dataclass(frozen=True)
class PipelineTables:
    keys: Any
    windows: Any
    closed: Any
    meta: Any
    # Bytes of decoded key records, and as many of open-window records, kept per
    # partition between batches.
    key_cache_bytes: int
    rocksdb: RocksDBBudget

    @classmethod
    def declare(
        cls, app: Any, partitions: int, store: StoreOptions, key_cache_bytes: int
    ) -> PipelineTables:
        budget = store.budget()  # one for all of the worker's stores

        def table(name: str, help_text: str) -> Any:
            return app.Table(
                name,
                partitions=partitions,
                key_type=str,
                help=help_text,
                options=store.rocksdict_options(budget),
            )

        return cls(
            keys=table("keys", "per key: fence offset, totals"),
            windows=table("windows", "per key and open window: fence offset, aggregate"),
            closed=table("closed", "closed windows kept for the retention"),
            meta=table("meta", "per partition: watermark, closed buckets"),
            key_cache_bytes=key_cache_bytes,
            rocksdb=budget,
        )

    def partition_state(self, partition: int) -> TablePartitionState:
        return TablePartitionState(
            self.keys, self.windows, self.closed, self.meta, partition, self.key_cache_bytes
        )

    @property
    def ownership_changelog(self) -> str:
        """The changelog whose assignment says which worker owns which partition."""
        name: str = self.keys.changelog_topic.get_topic_name()
        return name
