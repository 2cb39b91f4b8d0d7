"""``kappa verify`` with idle advances (app/verify/idle.py, app/verify/batch.py): read
from meta changelog records, and applied where they happened, against a plain Python
fold that walks each partition in order with its clock."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, NamedTuple

import orjson

from agents.hop import source_headers
from app.verify.batch import batch_answer, connect
from app.verify.idle import IdleAdvance, InputAdvance, idle_advances, on_inputs
from tables.records import PartitionProgress, bucket_keys_key, progress_key
from tests.unit.app.verify.test_batch import Row, spec_of, table

HOUR = 3_600_000
LATENESS = 10 * 60_000


class Stored(NamedTuple):
    key: bytes | None
    value: bytes | None


def stored(key: str, state: Any) -> Stored:
    return Stored(orjson.dumps(key), orjson.dumps(state))


def test_only_the_progress_records_marked_idle_are_advances() -> None:
    records = [
        stored(progress_key(0), PartitionProgress(5_000, 41).to_state()),
        stored(progress_key(0), PartitionProgress(9_000, 41, idle=True).to_state()),
        stored(progress_key(1), PartitionProgress(7_000, 3, hop_offset=2, idle=True).to_state()),
        stored(progress_key(1), PartitionProgress(8_000, 5, hop_offset=2).to_state()),
        stored(bucket_keys_key(0, "1h@0"), ["a", "b"]),
        stored("progress/x/2", [1, 2]),  # not a progress key
        Stored(orjson.dumps(progress_key(2)), None),  # a tombstone
    ]
    assert idle_advances(records) == [IdleAdvance(0, 41, 9_000), IdleAdvance(1, 3, 7_000, 2)]


class HopRecord(NamedTuple):
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]


def test_an_advance_applies_on_its_own_input_and_on_what_the_hop_had_brought() -> None:
    """State partition 0 took input 0's records up to offset 4 directly, and through the
    hop (offsets 0-3 of its repartition partition) input 2's records 10 and 11 and input
    0's 5 and 6; the advance came after hop offset 3 and before 4. State partition 1's
    hop records do not count for it."""
    hop = [
        HopRecord(0, 0, source_headers(2, 10)),
        HopRecord(0, 1, source_headers(0, 5)),
        HopRecord(0, 2, source_headers(2, 11)),
        HopRecord(0, 3, source_headers(0, 6)),
        HopRecord(0, 4, source_headers(2, 12)),  # after the advance
        HopRecord(0, 5, [("other", b"")]),  # not kappa's: left out
        HopRecord(1, 0, source_headers(3, 99)),
    ]
    advances = [IdleAdvance(0, 4, 7_000, hop_after=3), IdleAdvance(1, 8, 9_000)]
    assert on_inputs(advances, hop) == [
        InputAdvance(0, 6, 7_000),
        InputAdvance(2, 11, 7_000),
        InputAdvance(1, 8, 9_000),
    ]
    # Only through the hop (its own offset never moved): still placed on input 0.
    assert on_inputs([IdleAdvance(0, -1, 7_000, hop_after=3)], hop) == [
        InputAdvance(0, 6, 7_000),
        InputAdvance(2, 11, 7_000),
    ]


def fold(rows: list[Row], advances: list[InputAdvance]) -> dict[str, Any]:
    """Per partition in seq order: the clock is the newest time seen, and at least the
    clock of every advance made after a seq already passed; an event behind the clock
    minus the lateness is late; ``by_idle`` if only an advance made it so."""
    out: dict[str, Any] = {"late": set(), "by_idle": set(), "watermarks": {}}
    by_partition: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_partition[row[0]].append(row)
    for p, held in by_partition.items():
        seen: int | None = None
        moved: int | None = None
        for row in sorted(held, key=lambda r: r[1]):
            clocks = [a.clock_ms for a in advances if a.partition == p and a.after_seq < row[1]]
            moved = max(clocks, default=None)
            by_time = seen is not None and row[3] < seen - LATENESS
            by_advance = moved is not None and row[3] < moved - LATENESS
            if by_time or by_advance:
                out["late"].add((p, row[1]))
            if by_advance and not by_time:
                out["by_idle"].add((p, row[1]))
            seen = row[3] if seen is None else max(seen, row[3])
        assert seen is not None
        last = max((a.clock_ms for a in advances if a.partition == p), default=seen)
        out["watermarks"][p] = max(seen, last) - LATENESS
    return out


def test_an_event_behind_an_earlier_idle_advance_is_late_and_its_window_kept_apart() -> None:
    spec = spec_of(metrics=["count", "sum"], windows=[{"size": "1h"}], lateness="10m")
    rng = random.Random(3)
    # Partition 0 goes quiet at seq 19 (times within the first hour), is advanced to
    # 3h, then gets stragglers in hours 0-3.5, in rising time, from seq 20 on (late
    # only by the advance, but for a few). Partition 1 is never idle.
    rows: list[Row] = [
        (0, seq, f"k{seq % 3}", rng.randrange(HOUR), (1.0, None)) for seq in range(20)
    ]
    later = sorted(rng.randrange(7 * HOUR // 2) for _ in range(40))
    rows += [(0, seq, f"k{seq % 3}", t, (2.0**-seq, None)) for seq, t in enumerate(later, start=20)]
    rows.insert(30, (0, 60, "k0", 0, (5.0, None)))  # late by time too
    rows += [(1, seq, "k9", rng.randrange(4 * HOUR), (3.0, None)) for seq in range(40)]
    advances = [InputAdvance(0, 19, 3 * HOUR - 60_000), InputAdvance(0, 19, 3 * HOUR)]
    expected = fold(rows, advances)
    # The data must have events late only by the advance, and one late by time.
    assert len(expected["by_idle"]) > 10
    assert expected["late"] - expected["by_idle"]

    got = batch_answer(connect(), table(rows), spec, idle=advances)
    plain = batch_answer(connect(), table(rows), spec)
    assert got.late_events == len(expected["late"])
    assert got.idle_late_events == len(expected["by_idle"])
    assert got.watermarks == expected["watermarks"]
    on_time = [r for r in rows if (r[0], r[1]) not in expected["late"]]
    windows: dict[tuple[str, str, int], list[float | None]] = defaultdict(list)
    for _, _, key, t, (a, _) in on_time:
        windows[(key, "1h", t // HOUR * HOUR)].append(a)
    assert {w: x.result["count"] for w, x in got.windows.items()} == {
        w: len(xs) for w, xs in windows.items()
    }
    by_idle = [r for r in rows if (r[0], r[1]) in expected["by_idle"]]
    assert got.idle_closed == {(r[2], "1h", r[3] // HOUR * HOUR) for r in by_idle}
    # Totals count every event either way; without the advances nothing is idle.
    assert got.totals == plain.totals
    assert (plain.idle_closed, plain.idle_late_events) == (set(), 0)
    # The windows kept apart are exactly those where the event-time answer differs.
    differ = {
        w
        for w, x in plain.windows.items()
        if w not in got.windows or got.windows[w].result != x.result
    }
    assert differ == got.idle_closed
