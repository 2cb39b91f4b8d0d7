"""Batches of one key's events applied and stored step by step on real RocksDB stores,
for the tests that cut a store short between its steps (a crash) and compare what the
stores keep with an uncrashed run's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.events import Event
from agents.processor import BatchOutcome, PartitionProcessor
from tables.aggregation_config import AggregationConfig
from tables.partition_state import TablePartitionState, store_batch
from tables.pipeline_tables import PipelineTables
from tests.support.stores import AcknowledgingSender, SendFailed


def events(pairs: list[tuple[int, float]], first_offset: int) -> list[tuple[int, Event]]:
    """Key ``a``'s events of (time, value), at offsets from ``first_offset``."""
    return [(first_offset + i, Event("a", ts, (value,), {})) for i, (ts, value) in enumerate(pairs)]


def stored(tables: PipelineTables) -> dict[str, dict[Any, Any]]:
    """What the stores keep of the keys, open windows and closed results."""
    return {name: dict(getattr(tables, name).items()) for name in ("keys", "windows", "closed")}


def apply_and_store(
    config: AggregationConfig,
    state: TablePartitionState,
    batch: list[tuple[int, Event]],
    sender: Any,
) -> BatchOutcome:
    """A new processor on ``state`` applies the batch's records past its checkpoint, then
    the batch is stored through ``sender``."""
    processor = PartitionProcessor(config, state, 0)
    fresh = [(offset, event) for offset, event in batch if not processor.done(offset)]
    outcome = processor.apply(fresh)
    processor.checkpoint(batch[-1][0])
    asyncio.run(store_batch([state], sender))
    return outcome


def first_then_crashed(
    config: AggregationConfig,
    tables: PipelineTables,
    first: list[tuple[int, Event]],
    second: list[tuple[int, Event]],
    fail_on: int | None,
) -> None:
    """Partition 0 applies and stores ``first``; then, unless ``fail_on`` is None, applies
    ``second`` and its store fails at send ``fail_on`` (a crash between its steps)."""
    apply_and_store(config, tables.partition_state(0), first, AcknowledgingSender())
    if fail_on is not None:
        with pytest.raises(SendFailed):
            apply_and_store(
                config, tables.partition_state(0), second, AcknowledgingSender(fail_on=fail_on)
            )
