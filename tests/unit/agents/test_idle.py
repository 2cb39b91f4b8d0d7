"""Quiet partitions (``idle_timeout``): the idle stage, the processor's idle advance and
the clocks read back from the meta changelog, without a broker.

The partitions' state is kappa's real tables on RocksDB (``offline_tables``), stored with
``store_batch``; the clocks the idle stage reads are decoded from the very meta changelog
records that store sent. Expected window results come from a plain fold over the events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from agents.events import Event, EventParser
from agents.partition_clocks import newest_clocks, stored_clock
from agents.spec import PipelineSpec, SpecError, parse_spec
from agents.stages.aggregate import AggregateStage
from agents.stages.idle import IdleStage
from tables.partition_state import store_batch
from tables.pipeline_tables import PipelineTables
from tables.records import PartitionProgress, WindowResult, progress_key
from tables.watermark import StoredClock
from tests.support.stores import AcknowledgingSender, offline_tables
from tests.unit.agents.test_stages import config, spec

HOUR = 3_600_000
MINUTE = 60_000
H0 = 1_700_000_000_000 // HOUR * HOUR  # an hour's start
TIMEOUT = 5 * MINUTE
WALL = 1_800_000_000_000  # the wall clock "now", epoch ms
AMOUNTS = (0.1, 0.2, 0.3, 1e16, 1.0, -1e16)  # a float sum that only an exact fold gets


def with_idle_timeout(timeout: object) -> PipelineSpec:
    return parse_spec({**spec().model_dump(by_alias=True), "idle_timeout": timeout}, "test")


PARSER = EventParser(spec())


def event(key: str, ts: int, amount: float) -> Event:
    parsed = PARSER.parse_bytes(orjson.dumps({"customer_id": key, "ts": ts, "amount": amount}))
    assert isinstance(parsed, Event)
    return parsed


def fold(events: list[tuple[str, int, float]]) -> dict[tuple[str, int], tuple[int, float]]:
    """Per key and hourly window: the count and the exact sum."""
    rows: dict[tuple[str, int], list[float]] = defaultdict(list)
    for key, ts, amount in events:
        rows[(key, ts - ts % HOUR)].append(amount)
    return {window: (len(xs), math.fsum(xs)) for window, xs in rows.items()}


def folded(results: list[WindowResult]) -> dict[tuple[str, int], tuple[int, float]]:
    return {
        (r.key, r.start_ms): (r.result["count"], r.result["values"]["amount"]["sum"])
        for r in results
    }


class ChangelogClocks:
    """The stored clocks as ``PartitionClocks`` reads them, fed from the meta changelog
    records that ``store_batch`` sent, stamped with the wall clock of their store."""

    idle_timeout_ms = TIMEOUT

    def __init__(self, meta_changelog: str) -> None:
        self.topic = meta_changelog
        self.clocks: dict[int, StoredClock] = {}
        self.reads = 0
        self._seen = 0

    def stored(self, sender: AcknowledgingSender, at_ms: int) -> None:
        """What the sender acknowledged since the last call was stored at ``at_ms``."""
        sent = [record for batch in sender.sends[self._seen :] for record in batch]
        self._seen = len(sender.sends)
        records = [
            SimpleNamespace(key=key, value=value, timestamp=at_ms)
            for topic, _partition, key, value in sent
            if topic == self.topic
        ]
        newest_clocks(records, self.clocks)

    async def read(self) -> Mapping[int, StoredClock]:
        self.reads += 1
        return self.clocks

    async def stop(self) -> None:
        pass


class World:
    """Two state partitions on real tables, an idle stage over them and fake clocks."""

    def __init__(self, tables: PipelineTables) -> None:
        self.aggregate = AggregateStage(config(spec()), tables.partition_state, None)
        self.sender = AcknowledgingSender()
        self.clocks = ChangelogClocks(tables.meta.changelog_topic.get_topic_name())
        self.now_s = 1000.0  # the monotonic clock
        self.wall_ms = WALL
        self.idle = IdleStage(
            self.clocks,
            self.aggregate,
            monotonic=lambda: self.now_s,
            wall_ms=lambda: self.wall_ms,
        )
        self.offsets = [0, 0]

    def tick(self, ms: int) -> None:
        """Time passes, on both clocks."""
        self.now_s += ms / 1000
        self.wall_ms += ms

    def apply(self, partition: int, events: list[tuple[str, int, float]]) -> list[WindowResult]:
        offset = self.offsets[partition]
        batch = [(offset + i, event(*e)) for i, e in enumerate(events)]
        self.offsets[partition] += len(events)
        outcome = self.aggregate.apply(partition, batch, offset + len(events) - 1, len(events))
        self.aggregate.received[partition] = self.now_s
        return outcome.closed

    async def quiet_then_active(self, active: list[tuple[str, int, float]]) -> None:
        """Partition 1 takes ``QUIET`` and partition 0 ``ACTIVE``, both stored; then, an
        idle timeout later, partition 0 (only) takes ``active``, stored."""
        self.apply(1, QUIET)
        self.apply(0, ACTIVE)
        await self.store()
        self.tick(TIMEOUT)
        self.apply(0, active)
        await self.store()

    async def store(self) -> None:
        states, _, _ = self.aggregate.take_unstored()
        await store_batch(states, self.sender)
        self.clocks.stored(self.sender, self.wall_ms)


@pytest.fixture
def tables(tmp_path: Path) -> Iterator[PipelineTables]:
    with offline_tables(tmp_path, partitions=2) as declared:
        yield declared


QUIET = [("a", H0 + 10 * MINUTE, AMOUNTS[0]), ("b", H0 + 20 * MINUTE, AMOUNTS[1])]
QUIET += [("a", H0 + 30 * MINUTE + i, x) for i, x in enumerate(AMOUNTS[2:])]
QUIET += [("a", H0 + 65 * MINUTE, 2.5)]  # the next hour; both still open after it
ACTIVE = [("c", H0 + h * HOUR, float(h)) for h in range(4)]  # up to H0 + 3h


async def test_a_quiet_partition_closes_its_windows_at_the_active_partitions_clock(
    tables: PipelineTables,
) -> None:
    world = World(tables)
    await world.quiet_then_active([("c", H0 + 3 * HOUR + 1, 1.0)])

    moved = await world.idle.advance({0, 1})

    assert [partition for partition, _ in moved] == [1]
    processor = world.aggregate.processor(1)
    assert processor.progress.max_event_ms == H0 + 3 * HOUR + 1  # partition 0's clock
    assert processor.progress.idle
    # Every window of partition 1 ends before the new watermark (H0 + 2h50m): both close,
    # with what a plain fold of its events gives.
    assert folded(moved[0][1].closed) == fold(QUIET)
    assert 1 in world.aggregate.pending()  # stored by the flush that follows
    assert world.aggregate.processor(0).progress.max_event_ms == H0 + 3 * HOUR + 1
    assert not world.aggregate.processor(0).progress.idle


async def test_an_idle_advance_is_stored_as_idle_and_no_other_partition_takes_it(
    tables: PipelineTables,
) -> None:
    world = World(tables)
    await world.quiet_then_active([])  # partition 0 receives a record that holds no event
    await world.idle.advance({0, 1})
    await world.store()

    assert world.clocks.clocks[1] == StoredClock(H0 + 3 * HOUR, WALL + TIMEOUT, idle=True)
    reopened = AggregateStage(config(spec()), tables.partition_state, None).processor(1)
    assert reopened.progress.idle
    assert reopened.progress.max_event_ms == H0 + 3 * HOUR
    # Partition 0 goes quiet too, and partition 1's clock is an idle advance, not
    # activity: no partition is left active, so nothing moves.
    world.tick(TIMEOUT)
    assert await world.idle.advance({0, 1}) == []
    assert world.clocks.reads == 2


async def test_an_event_after_an_idle_close_is_late_and_the_partition_active_again(
    tables: PipelineTables,
) -> None:
    world = World(tables)
    await world.quiet_then_active([("c", H0 + 3 * HOUR, 1.0)])
    await world.idle.advance({1})

    offset = world.offsets[1]
    outcome = world.aggregate.apply(1, [(offset, event("a", H0 + 40 * MINUTE, 4.0))], offset, 1)

    assert [late.event.ts_ms for late in outcome.late] == [H0 + 40 * MINUTE]
    assert outcome.late[0].watermark == H0 + 3 * HOUR - 10 * MINUTE
    assert outcome.closed == []  # its window closed once, without it
    assert not world.aggregate.processor(1).progress.idle
    totals = world.aggregate.states[1].get_key("a")
    assert totals is not None
    before = sum(1 for key, _, _ in QUIET if key == "a")
    assert totals.totals.result(("amount",), ("count",))["count"] == before + 1


async def test_nothing_moves_before_the_timeout_nor_without_active_partitions(
    tables: PipelineTables,
) -> None:
    world = World(tables)
    world.apply(1, QUIET)
    world.apply(0, ACTIVE)
    await world.store()
    world.tick(TIMEOUT - 1)
    assert await world.idle.advance({1}) == []
    assert world.clocks.reads == 0  # not quiet long enough: the changelog is not read
    world.tick(1)
    # Quiet, but so is partition 0: its last store is as old as the timeout.
    assert await world.idle.advance({1}) == []
    assert world.clocks.reads == 1
    assert world.aggregate.processor(1).progress.max_event_ms == max(ts for _, ts, _ in QUIET)


async def test_a_partition_without_events_and_one_ahead_of_the_others_keep_their_clocks(
    tables: PipelineTables,
) -> None:
    world = World(tables)
    world.apply(0, [("c", H0, 1.0)])
    world.aggregate.processor(1)  # partition 1 is assigned here, and never has an event
    await world.store()
    world.tick(TIMEOUT)
    world.apply(0, [("c", H0 + HOUR, 1.0)])
    await world.store()
    assert await world.idle.advance({1}) == []
    assert world.aggregate.processor(1).progress.max_event_ms is None
    assert world.clocks.reads == 0  # no clock to move: nothing to read
    # Partition 1 ahead of the only active partition: its clock never moves back.
    world.apply(1, [("a", H0 + 5 * HOUR, 1.0)])
    world.tick(TIMEOUT)
    world.apply(0, [("c", H0 + 2 * HOUR, 1.0)])
    await world.store()
    assert await world.idle.advance({1}) == []
    assert world.clocks.reads == 1
    assert world.aggregate.processor(1).progress.max_event_ms == H0 + 5 * HOUR


def test_only_progress_records_of_the_meta_changelog_are_clocks() -> None:
    progress = PartitionProgress(max_event_ms=H0, offset=7, hop_offset=3, idle=True)
    key = orjson.dumps(progress_key(2))
    assert stored_clock(key, orjson.dumps(progress.to_state()), WALL) == (
        2,
        StoredClock(H0, WALL, idle=True),
    )
    older = orjson.dumps([H0, 7])  # the layout from before the hop
    assert stored_clock(key, older, WALL) == (2, StoredClock(H0, WALL, idle=False))
    assert stored_clock(key, None, WALL) is None  # a deletion
    assert stored_clock(orjson.dumps("bucket/2/1h@0"), orjson.dumps(["k"]), WALL) is None
    assert stored_clock(orjson.dumps("closed/2/1h"), orjson.dumps(0), WALL) is None


def test_progress_keeps_its_layout_unless_idle() -> None:
    for progress, layout in [
        (PartitionProgress(H0, 5), [H0, 5]),
        (PartitionProgress(H0, 5, 9), [H0, 5, 9]),
        (PartitionProgress(H0, 5, -1, idle=True), [H0, 5, -1, 1]),
    ]:
        assert progress.to_state() == layout
        assert PartitionProgress.from_state(orjson.loads(orjson.dumps(layout))) == progress


def test_idle_timeout_is_opt_in_and_a_positive_duration() -> None:
    assert spec().idle_timeout_ms is None
    assert with_idle_timeout("5m").idle_timeout_ms == 5 * MINUTE
    assert with_idle_timeout("5m").model_dump(by_alias=True)["idle_timeout"] == "5m"
    for bad, says in [("0s", "positive duration"), (300, "duration string"), ("5", "unit")]:
        with pytest.raises(SpecError, match=f"idle_timeout: .*{says}"):
            with_idle_timeout(bad)
