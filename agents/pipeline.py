"""The thin Faust wiring of a pipeline: its input topic, tables, agent, route and timer.

Every record of the input topic, replayed or live, reaches ``BatchLoop`` a fetch at a
time (``agents.consumer``): it validates the records (bad ones go to the dead-letter
topic with the reason in headers), applies the good events to the partitions'
``PartitionProcessor``s, sends what they report (late events to the late topic, final
window results to the compacted results topic) and stores the state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust

from agents.batch_loop import BatchLoop
from agents.batch_sender import BatchSender
from agents.consumer import route_batches
from agents.events import EventParser
from agents.gap_reader import GapReader
from agents.history_seam import HistorySeam
from agents.names import PipelineNames
from agents.partition_clocks import PartitionClocks
from agents.partition_count import partitions_changed
from agents.spec import PipelineSpec
from agents.stages.flush import CommitPolicy
from tables.aggregation_config import AggregationConfig
from tables.pipeline_tables import PipelineTables, StoreOptions
from tables.queries import StateQueries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    """What the wiring needs from the worker's settings (``app.settings``)."""

    kafka: Mapping[str, Any]  # aiokafka client options: servers and security
    store: StoreOptions
    key_cache_bytes: int
    commit: CommitPolicy


@dataclass(frozen=True)
class _HopRoute:
    """The repartition topic's route: only ``BatchLoop`` reads it, even with custom agents
    on the input, so Faust never acknowledges, nor commits, a hop record."""

    loop: BatchLoop

    async def on_records(self, records: Mapping[Any, Any]) -> None:
        await self.loop.on_records(records)

    def also_streamed(self) -> bool:
        return False


class WiredPipeline:
    """A pipeline spec wired into a Faust app."""

    def __init__(
        self, app: faust.App, spec: PipelineSpec, options: PipelineOptions, partitions: int
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
        self.sender = BatchSender(dict(options.kafka))
        # Bytes in and out: kappa decodes and validates records itself.
        self.input = app.topic(
            self.names.input_topic,
            partitions=partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        # The repartition hop's topic: N partitions, like the tables' changelogs, so that
        # Faust assigns its partition q with state partition q (agents/stages/hop.py).
        self.repartition = app.topic(
            self.names.repartition_topic,
            partitions=partitions,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.tables = PipelineTables.declare(
            app, partitions, options.store, options.key_cache_bytes
        )
        self.agent_name = f"{self.names.prefix}.aggregate"
        self.seam = None if spec.history is None else HistorySeam(spec.history.cut_ms, self.names)
        self.batches = BatchLoop(
            app,
            self.names,
            partitions,
            self.parser,
            self.config,
            self.tables.partition_state,
            self.sender,
            GapReader(dict(options.kafka)),
            options.commit,
            self._custom_agents_read_input,
            self.seam,
            self._partition_clocks(options.kafka),
        )
        self.stats = self.batches.stats
        self.queries = StateQueries(
            self.tables, self.config, self.batches.live_state, self.batches.running_watermark
        )
        # The agent subscribes the group to the input topic, so that Faust assigns its
        # partitions (and the tables' changelog partitions with them); its records reach
        # BatchLoop, not this agent's stream (see agents.consumer).
        app.agent(self.input, name=self.agent_name)(self._subscription)
        app.agent(self.repartition, name=f"{self.names.prefix}.hop")(self._hop_subscription)
        route_batches(app, self.names.input_topic, self.batches)
        route_batches(app, self.names.repartition_topic, _HopRoute(self.batches))
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.timer(options.commit.interval_s, name=f"{self.names.prefix}.commit")(
            self.batches.on_timer
        )

    def _partition_clocks(self, kafka: Mapping[str, Any]) -> PartitionClocks | None:
        """With an idle timeout: every partition's stored clock, on the meta changelog."""
        timeout = self.spec.idle_timeout_ms
        if timeout is None:
            return None
        changelog: str = self.tables.meta.changelog_topic.get_topic_name()
        return PartitionClocks(GapReader(dict(kafka)), changelog, self.partitions, timeout)

    @staticmethod
    async def _subscription(stream: Any) -> None:
        # With custom agents on the input, Faust's stream carries its records too:
        # taking them acknowledges them, so Faust can commit as the custom agents do.
        async for _event in stream:
            pass

    @staticmethod
    async def _hop_subscription(stream: Any) -> None:
        # Subscribes the group to the repartition topic; its records reach BatchLoop.
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

    async def _on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # The group rebalances when a metadata refresh shows that the input's partition
        # count has changed. A grown input is followed: from this assignment on, its
        # records take the hop (BatchLoop._direct_lane). An input with fewer partitions
        # than N was re-created, or a version with a cut cannot follow it: stopping here,
        # before any record of it is fetched, stores nothing for it.
        count = self.app.consumer.topic_partitions(self.names.input_topic)
        if count is None:
            return
        changed = partitions_changed(
            self.names.input_topic,
            self.names.prefix,
            count,
            self.partitions,
            can_grow=self.seam is None,
        )
        if changed is not None:
            log.critical("%s", changed)
            await self.app.crash(changed)

    def owned_partitions(self) -> set[int]:
        """The input partitions assigned to this worker."""
        return self.batches.owned_partitions()

    def owned_states(self) -> set[int]:
        """The state partitions assigned to this worker (its keys' queries)."""
        return self.batches.owned_states()

    def behind(self, partition: int) -> bool:
        """Whether the partition's state is behind records it must read again from
        Kafka, not caught up yet (``BatchLoop.behind``)."""
        return self.batches.behind(partition)

    def applied_offset(self, partition: int) -> int:
        """The partition's last applied (virtual) offset, running or stored; -1 for none."""
        processor = self.batches.processors.get(partition)
        if processor is not None:
            return processor.progress.offset
        progress = self.tables.partition_state(partition).get_progress()
        return -1 if progress is None else progress.offset

    def seam_report(self, partitions: list[int]) -> dict[str, Any] | None:
        """The seam of a version with a cut (``HistorySeam.report``), None without one."""
        return None if self.seam is None else self.seam.report(partitions, self.applied_offset)
