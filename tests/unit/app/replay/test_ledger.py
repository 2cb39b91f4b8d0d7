"""The replay ledger's pure logic: file identity, folding the topic, and the decision to
start, resume or refuse a replay; and the per-partition numbering a resume skips by."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.spec import PipelineSpec
from app.replay.ledger import (
    AlreadyReplayed,
    FileEntry,
    Ledger,
    LedgerUnreadable,
    Owner,
    Plan,
    ResumeRefused,
    RowOrder,
    checkpoint_from_json,
    checkpoint_json,
    describe_file,
    parsing_fingerprint,
    plan,
)
from app.replay.resume import Sequencer

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
HERE = Owner("host-a", 1000)
TARGET = "orders"
A = FileEntry("a.csv", "a" * 64, 10)
B = FileEntry("b.csv.gz", "b" * 64, 20)


def _order(*files: FileEntry, **changes: Any) -> RowOrder:
    fields = {"fmt": None, "order_by_time": False, "partitions": 4, "parsing": "p1"}
    return RowOrder(files=tuple(f.sha256 for f in files), **{**fields, **changes})


def _record(state: str, *files: FileEntry, **extra: Any) -> dict[str, Any]:
    return {
        "id": "r1",
        "target": TARGET,
        "state": state,
        "files": [f.as_json() for f in files],
        "row_order": _order(*files).as_json(),
        "updated_at": (NOW - timedelta(seconds=5)).isoformat(),
        "finished_at": None if state == "running" else "2026-11-30T10:00:00+00:00",
        "owner": {"host": "host-a", "pid": 999},
        **extra,
    }


def _ledger(*records: tuple[str, dict[str, Any] | None]) -> Ledger:
    return Ledger.fold(
        (b"replay:" + rid.encode(), None if r is None else orjson.dumps(r), offset)
        for offset, (rid, r) in enumerate(records)
    )


def _plan(
    ledger: Ledger,
    replay_id: str = "r2",
    files: tuple[FileEntry, ...] = (A,),
    force: bool = False,
    alive: bool = False,
    **order: Any,
) -> Plan:
    return plan(
        ledger,
        replay_id=replay_id,
        target=TARGET,
        files=list(files),
        order=_order(*files, **order),
        force=force,
        now=NOW,
        here=HERE,
        pid_alive=lambda pid: alive,
    )


def test_a_file_is_known_by_the_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    data = gzip.compress(b"customer_id,ts\nc1,2024-01-01\n")
    path.write_bytes(data)
    entry = describe_file(path)
    assert entry == FileEntry(str(path), hashlib.sha256(data).hexdigest(), len(data))


def test_the_newest_record_of_each_replay_wins_and_a_tombstone_forgets_it() -> None:
    ledger = _ledger(
        ("r1", _record("running", A)),
        ("r1", _record("complete", A)),
        ("r2", _record("failed", B)),
        ("r2", None),
    )
    assert set(ledger.entries) == {"r1"}
    assert ledger.entries["r1"].state == "complete"
    assert not ledger.unreadable


def test_a_record_that_does_not_parse_is_unreadable_until_a_good_one_replaces_it() -> None:
    broken = Ledger.fold(
        [(b"replay:r1", b"{not json", 7), (b"replay:r2", orjson.dumps({"files": []}), 8)]
    )
    assert broken.unreadable == {"r1": 7, "r2": 8}
    fixed = Ledger.fold(
        [(b"replay:r1", b"{not json", 7), (b"replay:r1", orjson.dumps(_record("failed", A)), 9)]
    )
    assert fixed.unreadable == {}
    assert fixed.entries["r1"].state == "failed"


def test_the_pipeline_control_topics_other_records_are_not_the_ledgers() -> None:
    active = orjson.dumps({"pipeline": "p", "version": 2, "promoted_at_ms": 1})
    ledger = Ledger.fold([(b"active", active, 0), (None, b"x", 1), (b"seam", b"{", 2)])
    assert ledger == Ledger()


def test_a_new_replay_of_new_files_starts_afresh() -> None:
    ledger = _ledger(("r1", _record("complete", B)))
    assert _plan(ledger, files=(A,)).earlier is None


def test_a_file_replayed_before_into_the_target_is_refused_naming_the_replay() -> None:
    ledger = _ledger(("r1", _record("complete", A)))
    renamed = FileEntry("elsewhere/renamed.csv", A.sha256, A.size)
    with pytest.raises(AlreadyReplayed) as refused:
        _plan(ledger, files=(B, renamed))
    message = str(refused.value)
    assert "renamed.csv" in message
    assert "replay r1" in message
    assert "2026-11-30T10:00:00+00:00" in message
    assert "--force" in message
    assert _plan(ledger, files=(B, renamed), force=True).earlier is None


def test_a_file_in_an_unfinished_replay_is_refused_with_how_to_resume_it() -> None:
    ledger = _ledger(("r1", _record("failed", A)))
    with pytest.raises(AlreadyReplayed, match="kappa replay --id r1"):
        _plan(ledger, files=(A,))


def test_the_same_file_is_not_refused_for_another_target() -> None:
    ledger = _ledger(("r1", {**_record("complete", A), "target": "history"}))
    assert _plan(ledger, files=(A,)).earlier is None


def test_one_file_named_twice_is_refused_unless_force() -> None:
    twin = FileEntry("copy.csv", A.sha256, A.size)
    with pytest.raises(AlreadyReplayed, match="same content"):
        _plan(Ledger(), files=(A, twin))
    assert not _plan(Ledger(), files=(A, twin), force=True).resumes


def test_an_unfinished_replay_resumes_with_the_same_files_and_options() -> None:
    for state in ("running", "failed"):
        decided = _plan(_ledger(("r1", _record(state, A))), replay_id="r1", files=(A,))
        assert decided.earlier is not None
        assert decided.earlier.state == state


def test_a_complete_replay_is_not_run_again() -> None:
    with pytest.raises(ResumeRefused, match="r1 is complete"):
        _plan(_ledger(("r1", _record("complete", A))), replay_id="r1", files=(A,), force=True)


@pytest.mark.parametrize(
    ("files", "order", "named"),
    [
        ((B,), {}, "the files"),
        ((A,), {"order_by_time": True}, "--order-by-time"),
        ((A,), {"fmt": "jsonl"}, "--format"),
        ((A,), {"partitions": 8}, "partitions"),
        ((A,), {"parsing": "p2"}, "pipeline spec"),
    ],
)
def test_a_resume_with_other_files_or_options_is_refused(
    files: tuple[FileEntry, ...], order: dict[str, Any], named: str
) -> None:
    ledger = _ledger(("r1", _record("failed", A)))
    with pytest.raises(ResumeRefused, match="cannot be resumed") as refused:
        _plan(ledger, replay_id="r1", files=files, **order)
    assert named in str(refused.value)


def test_a_replay_still_running_is_not_resumed_beside_itself() -> None:
    ledger = _ledger(("r1", _record("running", A)))
    with pytest.raises(ResumeRefused, match="still running"):
        _plan(ledger, replay_id="r1", alive=True)  # same host, its pid alive
    assert _plan(ledger, replay_id="r1", alive=False).resumes  # same host, pid gone
    elsewhere = {**_record("running", A), "owner": {"host": "host-b", "pid": 5}}
    with pytest.raises(ResumeRefused, match="still running"):
        _plan(_ledger(("r1", elsewhere)), replay_id="r1")  # heard 5 s ago
    stale = {**elsewhere, "updated_at": (NOW - timedelta(minutes=5)).isoformat()}
    assert _plan(_ledger(("r1", stale)), replay_id="r1").resumes


def test_an_unreadable_ledger_refuses_a_resume_and_the_hash_check() -> None:
    ledger = Ledger.fold([(b"replay:r1", b"\xff", 3)])
    with pytest.raises(LedgerUnreadable, match="offset 3"):
        _plan(ledger, replay_id="r1")
    with pytest.raises(LedgerUnreadable, match="--force"):
        _plan(ledger, replay_id="r2")
    assert _plan(ledger, replay_id="r2", force=True).earlier is None


def test_parsing_fingerprint_follows_the_fields_that_decide_the_rows() -> None:
    base = {"name": "p", "version": 1, "input_topic": "t", "key": "k", "time_field": "ts"}
    spec = PipelineSpec.model_validate(base)
    windowed = PipelineSpec.model_validate({**base, "version": 2, "windows": [{"size": "1h"}]})
    other_key = PipelineSpec.model_validate({**base, "key": "k2"})
    assert parsing_fingerprint(spec) == parsing_fingerprint(windowed)
    assert parsing_fingerprint(spec) != parsing_fingerprint(other_key)


def test_checkpoints_round_trip_through_json() -> None:
    checkpoint = {0: (120, 7), 3: (5, 0)}
    assert checkpoint_from_json(orjson.loads(orjson.dumps(checkpoint_json(checkpoint)))) == (
        checkpoint
    )


def test_a_sequencer_numbers_rows_per_partition_and_skips_those_written() -> None:
    fresh = Sequencer()
    assert [fresh.next(p) for p in (0, 1, 0, 0, 1)] == [1, 1, 2, 3, 2]
    resumed = Sequencer({0: (500, 2), 1: (40, 0)})
    assert resumed.to_skip == 2
    assert [resumed.next(p) for p in (0, 1, 0, 0, 1)] == [None, 1, None, 3, 2]
    assert resumed.total_skipped == 2
    assert resumed.skipped(0) == 2
    assert resumed.skipped(1) == 0


def test_a_sequencer_takes_runs_of_rows_as_it_takes_them_one_by_one() -> None:
    by_run = Sequencer({0: (500, 5)})
    assert by_run.take(0, 3) == (1, 3)
    assert by_run.take(0, 4) == (4, 2)  # rows 4 and 5 were written, 6 and 7 are new
    assert by_run.take(0, 2) == (8, 0)
    assert by_run.take(1, 2) == (1, 0)
    assert by_run.total_skipped == 5
