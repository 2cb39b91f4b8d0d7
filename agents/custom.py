"""What a custom agent gets from kappa: the validated event stream and read access to
the pipeline's state. Nothing else of the worker is part of this surface.

A custom agent module has a ``register(app, pipeline)`` function, called with the Faust
app and a ``CustomAgentContext`` (see agents/example_big_orders.py and
docs/custom-agents.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents.events import Event, Rejected
from agents.partitions import expected_partition
from agents.pipeline import WiredPipeline
from agents.spec import PipelineSpec
from tables.records import KeyRecord

__all__ = ["CustomAgentContext", "Event"]


class CustomAgentContext:
    """The pipeline as a custom agent sees it."""

    def __init__(self, pipeline: WiredPipeline) -> None:
        self._pipeline = pipeline

    @property
    def spec(self) -> PipelineSpec:
        """The pipeline's spec: key, time field, values (``spec.values`` is their order
        in ``Event.values``), windows."""
        return self._pipeline.spec

    @property
    def input(self) -> Any:
        """The input topic (a Faust topic of raw bytes): subscribe an agent to it."""
        return self._pipeline.input

    @property
    def partitions(self) -> int:
        """The input's partition count: declare tables with it, to stay co-partitioned."""
        return self._pipeline.partitions

    @property
    def prefix(self) -> str:
        """``kappa.<name>.v<version>``: name agents and tables with it, so versions of
        the pipeline never share them."""
        return self._pipeline.names.prefix

    async def events(self, stream: Any) -> AsyncIterator[Event]:
        """The stream's good events, as the aggregation sees them. Bad and misrouted
        records are skipped here (the aggregation dead-letters them once), and so are
        events the spec's ``where`` leaves out."""
        parse, partitions = self._pipeline.parser.parse_bytes, self._pipeline.partitions
        async for event in stream.events():
            try:
                parsed = parse(event.message.value)
            except Rejected:
                continue
            if (
                parsed.kept
                and expected_partition(parsed.key, partitions) == event.message.partition
            ):
                yield parsed

    def totals(self, key: str) -> dict[str, Any] | None:
        """A key's totals (``metric(value)`` -> number) as this worker last applied them,
        for the keys of the partitions it owns; None for an unknown key."""
        record = self._read(key)
        spec = self.spec
        return None if record is None else record.totals.result(spec.values, spec.metrics)

    def _read(self, key: str) -> KeyRecord | None:
        return self._pipeline.queries.key(key, expected_partition(key, self.partitions))
