"""Two workers writing one state partition's changelog: ``TableBuffer.commit`` notices
the other's records, ``rewrite_foreign`` writes its own values of their keys after them;
with claims (``tables.claims``), readers skip the records written after another
worker's claim, and their writer keeps them out of its RocksDB.

A worker frozen past its session timeout (a zombie) stores the batch it was in when it
resumes, before its commit is refused: its records land among those of the worker that
took the partition over. A recovery takes each key's last record, so without the
rewrite it would mix the two states (each consistent on its own, with its progress
record): the test's key "progress" stands for that record, and a mix is caught as a
store equal to neither worker's.

Real Faust tables and RocksDB stores (``tests.support.stores``), one per worker, with the
same changelog names; the changelog is ``AcknowledgingSender``'s log, read back by
Faust's own recovery code (``Store.apply_changelog_batch``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from tables.faust_store import REWRITE_ROUNDS, TableBuffer, encode, rewrite_foreign
from tables.pipeline_tables import PipelineTables
from tests.support.stores import AcknowledgingSender, offline_tables

PARTITION = 1
APP_ID = "kappa-unit-two-workers"


@pytest.fixture
def zombie(tmp_path: Path) -> Iterator[PipelineTables]:
    with offline_tables(tmp_path / "zombie", app_id=APP_ID) as tables:
        yield tables


@pytest.fixture
def successor(tmp_path: Path) -> Iterator[PipelineTables]:
    with offline_tables(tmp_path / "successor", app_id=APP_ID) as tables:
        yield tables


def _changelog(tables: PipelineTables) -> str:
    name: str = tables.keys.changelog_topic.get_topic_name()
    return name


def _recorded(tables: PipelineTables) -> int | None:
    offset: int | None = tables.keys.data.persisted_offset(TP(_changelog(tables), PARTITION))
    return offset


def _store_of(tables: PipelineTables) -> dict[str, Any]:
    return dict(TableBuffer(tables.keys, PARTITION).items())


def _recover(tables: PipelineTables, log: AcknowledgingSender) -> None:
    """Faust's recovery on this state dir: the changelog from the recorded offset on."""
    start = _recorded(tables) or 0
    tables.keys.data.apply_changelog_batch(
        log.changelog_events(_changelog(tables), PARTITION, start),
        to_key=lambda k: k,
        to_value=lambda v: v,
    )


def _recovered_from_scratch(tmp_path: Path, log: AcknowledgingSender) -> dict[str, Any]:
    """What a worker with no state dir recovers: every key's last record."""
    with offline_tables(tmp_path, app_id=APP_ID) as tables:
        _recover(tables, log)
        return _store_of(tables)


async def _write(
    buffer: TableBuffer, log: AcknowledgingSender, values: dict[str, int | None]
) -> None:
    """Store ``values`` (None deletes), then rewrite what another worker wrote between."""
    for key, value in values.items():
        if value is None:
            buffer.delete(key)
        else:
            buffer.put(key, value)
    buffer.stage(log)
    buffer.commit(await log.send())
    await rewrite_foreign([buffer], log, log)


async def test_whichever_worker_writes_last_leaves_the_changelog_equal_to_its_store(
    zombie: PipelineTables, successor: PipelineTables, tmp_path: Path
) -> None:
    log = AcknowledgingSender()
    old = TableBuffer(zombie.keys, PARTITION)
    await _write(old, log, {"a": 1, "b": 1, "progress": 10})  # offsets 0-2
    # The zombie is frozen; the group gives its partition to the successor, which
    # recovers the changelog and goes on from progress 10.
    _recover(successor, log)
    new = TableBuffer(successor.keys, PARTITION)
    await _write(new, log, {"a": 2, "c": 2, "progress": 20})  # offsets 3-5
    assert new.foreign is None
    assert _recorded(successor) == 5

    # The zombie resumes mid-batch and stores it: it applied events up to 12 only.
    await _write(old, log, {"a": 9, "progress": 12})
    zombie_store = {"a": 9, "b": 1, "progress": 12}
    assert _store_of(zombie) == zombie_store
    # Without the rewrite the changelog would end with a: 9 and progress 12 from the
    # zombie and c: 2 from the successor: a state neither had.
    assert _recovered_from_scratch(tmp_path / "r1", log) == zombie_store
    assert old.foreign is None
    assert _recorded(zombie) == len(log.logs[_key(zombie)]) - 1

    # The successor stores its next batch: it finds the zombie's records and rewrites.
    await _write(new, log, {"b": 3, "progress": 30})
    successor_store = {"a": 2, "b": 3, "c": 2, "progress": 30}
    assert _store_of(successor) == successor_store
    assert _recovered_from_scratch(tmp_path / "r2", log) == successor_store
    assert new.foreign is None
    assert _recorded(successor) == len(log.logs[_key(zombie)]) - 1

    # The zombie's next recovery on its own state dir starts at its recorded offset and
    # ends where a recovery from scratch does.
    _recover(zombie, log)
    assert _store_of(zombie) == successor_store


def _key(tables: PipelineTables) -> tuple[str, int]:
    return (_changelog(tables), PARTITION)


class StillWriting(AcknowledgingSender):
    """The other worker appends a record of key "x" to the changelog each time this
    one reads it back, ``times`` times: it is still storing its batch."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> AsyncIterator[list[Any]]:
        async for records in super().read(topic, partition, start, end):
            yield records
        if self.times > 0:
            self.times -= 1
            self.foreign(topic, partition, [(encode("x"), encode(self.times))])


async def test_the_rewrite_goes_on_while_the_other_worker_writes(
    successor: PipelineTables, tmp_path: Path
) -> None:
    log = StillWriting(times=3)
    buffer = TableBuffer(successor.keys, PARTITION)
    await _write(buffer, log, {"a": 1})
    log.foreign(_changelog(successor), PARTITION, [(encode("x"), encode(100))])
    await _write(buffer, log, {"a": 2})
    assert buffer.foreign is None
    assert _recovered_from_scratch(tmp_path / "r", log) == _store_of(successor) == {"a": 2}
    assert _recorded(successor) == len(log.logs[_key(successor)]) - 1


async def test_a_rewrite_cut_short_keeps_the_recorded_offset_and_goes_on_at_the_next_store(
    successor: PipelineTables, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = StillWriting(times=REWRITE_ROUNDS)
    buffer = TableBuffer(successor.keys, PARTITION)
    await _write(buffer, log, {"a": 1})
    log.foreign(_changelog(successor), PARTITION, [(encode("x"), encode(100))])
    await _write(buffer, log, {"a": 2})
    assert buffer.foreign is not None
    assert _recorded(successor) == 0  # only its first record is sure to be its own
    assert any("still being written by another worker" in m for m in caplog.messages)
    await _write(buffer, log, {"b": 3})  # the other worker has stopped
    assert buffer.foreign is None
    assert _recovered_from_scratch(tmp_path / "r", log) == _store_of(successor)
    assert _store_of(successor) == {"a": 2, "b": 3}


# -- claims: the zombie's writes after its successor's claim are skipped ---------------


async def _store(buffer: TableBuffer, log: AcknowledgingSender, values: dict[str, int]) -> bool:
    """As ``store_batch`` does for one buffer: False when the write came after another
    worker's claim (and so never reached this store's RocksDB)."""
    for key, value in values.items():
        buffer.put(key, value)
    buffer.stage(log)
    acked = await log.send()
    if await buffer.fenced_out(acked, log):
        return False
    buffer.commit(acked)
    return True


async def _take_over(tables: PipelineTables, log: AcknowledgingSender) -> TableBuffer:
    """What a worker does when the group gives it the partition: claim, recover, then
    write again the keys whose records the recovery skipped."""
    await tables.keys.data.claim([PARTITION], log.append)
    _recover(tables, log)
    await tables.keys.data.rewrite_skipped([PARTITION], log.append)
    return TableBuffer(tables.keys, PARTITION)


async def test_the_zombies_writes_after_the_claim_are_skipped_without_any_rewrite(
    zombie: PipelineTables, successor: PipelineTables, tmp_path: Path
) -> None:
    """The case the rewrites alone left open: the successor stops (a crash) before it
    writes its values again after the zombie's records. A recovery must still take the
    successor's state, never a mix."""
    log = AcknowledgingSender()
    old = await _take_over(zombie, log)
    assert await _store(old, log, {"a": 1, "b": 1, "progress": 10})

    # The group gives the partition to the successor: it claims it, then recovers.
    new = await _take_over(successor, log)
    assert await _store(new, log, {"a": 2, "c": 2, "progress": 20})
    successor_store = {"a": 2, "b": 1, "c": 2, "progress": 20}
    assert _store_of(successor) == successor_store

    # The zombie resumes and stores its batch: in the changelog after the claim, so
    # skipped by every reader, and kept out of its own RocksDB.
    assert not await _store(old, log, {"a": 9, "b": 9, "progress": 12})
    assert _store_of(zombie) == {"a": 1, "b": 1, "progress": 10}
    # The successor crashes before it rewrites anything: a recovery from scratch (its
    # successor's) takes the successor's state, and a recovery on either state dir too.
    assert _recovered_from_scratch(tmp_path / "r1", log) == successor_store
    _recover(zombie, log)
    assert _store_of(zombie) == successor_store
    _recover(successor, log)
    assert _store_of(successor) == successor_store


async def test_records_written_before_the_claim_are_the_successors_too(
    zombie: PipelineTables, successor: PipelineTables, tmp_path: Path
) -> None:
    """The zombie's records that land between the successor's recovery and its claim's
    acknowledgement cannot be: the successor claims first, then recovers, so its state
    holds every record before its claim."""
    log = AcknowledgingSender()
    old = await _take_over(zombie, log)
    assert await _store(old, log, {"a": 1, "progress": 10})
    # The zombie's next store lands just before the successor's claim.
    assert await _store(old, log, {"a": 3, "b": 3, "progress": 12})
    await successor.keys.data.claim([PARTITION], log.append)
    _recover(successor, log)
    assert _store_of(successor) == {"a": 3, "b": 3, "progress": 12}
    new = TableBuffer(successor.keys, PARTITION)
    assert await _store(new, log, {"a": 4, "progress": 20})
    assert _recovered_from_scratch(tmp_path / "r", log) == {"a": 4, "b": 3, "progress": 20}


async def test_the_keys_a_recovery_skipped_are_written_again_when_it_is_done(
    zombie: PipelineTables, successor: PipelineTables, tmp_path: Path
) -> None:
    """Compaction keeps each key's last record: a skipped record of the zombie's would
    outlive the successor's older record of its key, and a recovery after compaction
    would lose the key. So a worker that recovered past skipped records writes its own
    value of their keys after them, before it stores anything (a quiet partition may
    never store again)."""
    log = AcknowledgingSender()
    old = await _take_over(zombie, log)
    assert await _store(old, log, {"a": 1, "progress": 10})
    new = await _take_over(successor, log)
    assert await _store(new, log, {"b": 2, "progress": 20})
    assert not await _store(old, log, {"a": 9, "progress": 12})
    # The successor stops before its rewrite; a third worker takes over.
    with offline_tables(tmp_path / "third", app_id=APP_ID) as third:
        await _take_over(third, log)
        assert _store_of(third) == {"a": 1, "b": 2, "progress": 20}
    compacted = _compacted(log, _key(zombie))
    assert _recovered_from_scratch(tmp_path / "r", compacted) == {"a": 1, "b": 2, "progress": 20}


def _compacted(log: AcknowledgingSender, tp: tuple[str, int]) -> AcknowledgingSender:
    """``log`` as Kafka's log cleaner leaves it: each key's last record only, in place."""
    records = log.logs[tp]
    last = {key: offset for offset, (key, _) in enumerate(records)}
    kept = AcknowledgingSender()
    for offset, record in enumerate(records):
        if last[record[0]] == offset:
            kept.logs.setdefault(tp, []).append(record)
            kept.headers[(*tp, len(kept.logs[tp]) - 1)] = log.headers.get((*tp, offset), [])
    return kept
