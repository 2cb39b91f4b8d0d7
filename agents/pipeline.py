"""The thin Faust side of the aggregation: topics, tables, the input route, and reads.

Every record of the input topic, replayed or live, reaches ``BatchLoop`` a fetch at a
time (``agents.consumer``): it validates the records (bad ones go to the dead-letter
topic with the reason in headers), applies the good events to the partitions'
``PartitionProcessor``s, sends what they report (late events to the late topic, final
window results to the compacted results topic) and stores the state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import faust

from agents.aggregation import AggregationConfig, KeyRecord
from agents.batch_loop import BatchLoop, CommitPolicy, PipelineStats, expected_partition
from agents.batch_sender import BatchSender
from agents.consumer import route_batches
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.state import TablePartitionState, closed_key
from app.events import Event, EventParser, Rejected
from app.kafka_client import client_options
from app.names import PipelineNames
from app.settings import KappaSettings
from app.spec import PipelineSpec

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineStats", "expected_partition"]


class Pipeline:
    """A pipeline spec wired into a Faust app."""

    def __init__(
        self, app: faust.App, spec: PipelineSpec, settings: KappaSettings, partitions: int
    ) -> None:
        self.app = app
        self.spec = spec
        self.names = PipelineNames(spec)
        self.partitions = partitions
        self.parser = EventParser(spec)
        self.config = AggregationConfig(
            value_names=spec.values,
            metrics=spec.metrics,
            windows=spec.windows,
            lateness_ms=spec.lateness_ms,
            retention_ms=spec.retention_ms,
        )
        self.key_cache = settings.key_cache
        self.sender = BatchSender(client_options(settings))
        self.input = self._raw_topic(self.names.input_topic)
        self.keys = self._table("keys", settings, "per key: fence offset, totals, open windows")
        self.closed = self._table("closed", settings, "closed windows kept for the retention")
        self.meta = self._table("meta", settings, "per partition: watermark, closed buckets")
        self.agent_name = f"{self.names.prefix}.aggregate"
        self.seam = None if spec.history is None else HistorySeam(spec.history.cut_ms, self.names)
        self.batches = BatchLoop(
            app,
            self.names,
            partitions,
            self.parser,
            self.config,
            self._state,
            self.sender,
            GapReader(client_options(settings)),
            CommitPolicy(settings.commit_interval_ms / 1000, settings.commit_events),
            self._custom_agents_read_input,
            self.seam,
        )
        self.stats = self.batches.stats
        # The agent subscribes the group to the input topic, so that Faust assigns its
        # partitions (and the tables' changelog partitions with them); its records reach
        # BatchLoop, not this agent's stream (see agents.consumer).
        app.agent(self.input, name=self.agent_name)(self._subscription)
        route_batches(app, self.names.input_topic, self.batches)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.timer(settings.commit_interval_ms / 1000, name=f"{self.names.prefix}.commit")(
            self.batches.on_timer
        )

    def _raw_topic(self, name: str) -> Any:
        """Bytes in and out: kappa decodes and validates records itself."""
        return self.app.topic(
            name, partitions=self.partitions, key_serializer="raw", value_serializer="raw"
        )

    def _table(self, name: str, settings: KappaSettings, help_text: str) -> Any:
        return self.app.Table(
            name,
            partitions=self.partitions,
            key_type=str,
            help=help_text,
            options={
                "driver": "rocksdict",
                # Faust's default is a 2 GiB block cache per partition store.
                "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
                "block_cache_compressed_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
                "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
                "max_write_buffer_number": 2,
            },
        )

    @staticmethod
    async def _subscription(stream: Any) -> None:
        # With custom agents on the input, Faust's stream carries its records too:
        # taking them acknowledges them, so Faust can commit as the custom agents do.
        async for _event in stream:
            pass

    def _custom_agents_read_input(self) -> bool:
        return any(
            self.names.input_topic in getattr(agent.channel, "topics", ())
            for agent in self.app.agents.values()
            if agent.name != self.agent_name
        )

    async def _on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Faust awaits this before the group moves on: the partitions' state is stored
        # before their new owner can read it.
        await self.batches.on_revoked()

    def _state(self, partition: int) -> TablePartitionState:
        return TablePartitionState(self.keys, self.closed, self.meta, partition, self.key_cache)

    def owned_partitions(self) -> set[int]:
        return self.batches.owned_partitions()

    def watermark(self, partition: int) -> int | None:
        """For queries: the running processor's watermark, or the stored one."""
        watermark = self.batches.watermark(partition)
        if watermark is not None:
            return watermark
        progress = self._state(partition).get_progress()
        return None if progress is None else self.config.watermark(progress)

    def applied_offset(self, partition: int) -> int:
        """The partition's last applied (virtual) offset, running or stored; -1 for none."""
        processor = self.batches.processors.get(partition)
        if processor is not None:
            return processor.progress.offset
        progress = self._state(partition).get_progress()
        return -1 if progress is None else progress.offset

    def seam_report(self, partitions: list[int]) -> dict[str, Any] | None:
        """The seam of a version with a cut (``HistorySeam.report``), None without one."""
        return None if self.seam is None else self.seam.report(partitions, self.applied_offset)

    def read_key(self, key: str) -> KeyRecord | None:
        """A key's record as this worker last applied it (stored or not yet)."""
        live = self.batches.live_state(expected_partition(key, self.partitions))
        if live is not None:
            return live.get_key(key)
        state = self.keys.get(key)
        return None if state is None else KeyRecord.from_state(state)

    def read_closed(self, key: str, window: str, start_ms: int) -> dict[str, Any] | None:
        """A closed window's final result, while it is retained."""
        live = self.batches.live_state(expected_partition(key, self.partitions))
        if live is not None:
            return live.get_closed(key, window, start_ms)
        result: dict[str, Any] | None = self.closed.get(closed_key(key, window, start_ms))
        return result

    async def validated(self, stream: Any) -> AsyncIterator[Event]:
        """The stream's good events, as the aggregation sees them: for custom agents.

        Bad records are skipped here; the aggregation dead-letters them once.
        """
        async for event in stream.events():
            try:
                parsed = self.parser.parse_bytes(event.message.value)
            except Rejected:
                continue
            if expected_partition(parsed.key, self.partitions) == event.message.partition:
                yield parsed
