"""The seam's pure parts: the virtual offsets, the phases, what is admitted, the report."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pyarrow as pa

from agents.events import Event
from agents.history_seam import HISTORY, LIVE, WAITING, HistorySeam, phase, to_input, to_virtual
from agents.names import PipelineNames
from agents.seam_record import LiveStart, SeamRecord
from agents.spec import parse_spec
from app.replay.into_history import before_cut
from app.replay.rows import GoodRows

CUT = 1_709_251_200_000
SPEC = parse_spec(
    {
        "name": "orders",
        "version": 2,
        "input_topic": "orders",
        "key": "customer_id",
        "time_field": "ts",
        "history": {"cut": "2024-03-01T00:00:00Z"},
    },
    "v2.toml",
)
NAMES = PipelineNames(SPEC)


def record(
    ends: dict[int, int], starts: dict[int, int] | None = None, cut: int = CUT
) -> SeamRecord:
    return SeamRecord(
        cut_ms=cut,
        history_topic=NAMES.history_topic,
        start_offsets=starts or dict.fromkeys(ends, 0),
        end_offsets=ends,
        rows=sum(ends.values()),
        after_cut=3,
        files=["h.csv"],
        replay_id="r1",
    )


def event(ts: int) -> Event:
    return Event(key="k", ts_ms=ts, values=(), fields={})


def test_one_scale_for_history_then_live() -> None:
    # History offsets 0..H-1 keep their offsets; live offset o is H + o.
    assert [to_virtual(5, o) for o in (0, 1, 7)] == [5, 6, 12]
    assert [to_input(5, v) for v in (-1, 0, 4, 5, 6, 12)] == [-1, -1, -1, 0, 1, 7]
    for base in (0, 1, 1000):
        for live in (0, 3, 10**9):
            assert to_input(base, to_virtual(base, live)) == live
    # An empty history: the virtual offsets are the live ones.
    assert to_input(0, 41) == 41


def test_phases() -> None:
    assert phase(sealed=False, base=0, applied=-1) == WAITING
    assert phase(sealed=True, base=10, applied=-1) == HISTORY
    assert phase(sealed=True, base=10, applied=8) == HISTORY
    assert phase(sealed=True, base=10, applied=9) == LIVE  # the history is all applied
    assert phase(sealed=True, base=0, applied=-1) == LIVE  # no history on this partition


def test_names_and_the_history_topic() -> None:
    assert NAMES.history_topic == "kappa.orders.v2.history"
    assert SPEC.history is not None
    assert SPEC.history.cut_ms == CUT


def test_live_events_before_the_cut_are_skipped_and_counted() -> None:
    seam = HistorySeam(CUT, NAMES)
    seam.seal(record({0: 4}))
    history = [(0, event(CUT - 5)), (1, event(CUT - 1))]
    assert seam.admit(0, live=False, base=0, events=history) == history
    live = [(0, event(CUT - 1)), (1, event(CUT)), (2, event(CUT - 10)), (3, event(CUT + 9))]
    admitted = seam.admit(0, live=True, base=4, events=live)
    assert [(o, e.ts_ms) for o, e in admitted] == [(5, CUT), (7, CUT + 9)]
    assert seam.live_skipped[0] == 2
    assert seam.history_applied[0] == 2


def test_offsets_stored_and_committed_are_live_ones() -> None:
    seam = HistorySeam(CUT, NAMES)
    seam.seal(record({0: 10, 1: 0, 2: 3}))
    # Partition 0 is still in its history: it has no live offset to commit yet.
    assert seam.input_offsets({0: 6, 1: 4, 2: 3}) == {1: 4, 2: 0}


def test_a_seam_record_for_another_cut_does_not_seal() -> None:
    seam = HistorySeam(CUT, NAMES)
    seam.seal(record({0: 1}, cut=CUT + 1))
    assert not seam.sealed
    assert not asyncio.run(seam.wait_sealed(0.01))
    seam.seal(record({0: 1}))
    assert asyncio.run(seam.wait_sealed(0.01))


def test_the_seam_record_round_trips() -> None:
    sealed = record({0: 10, 1: 7}, starts={0: 2, 1: 0})
    assert SeamRecord.decode(sealed.encoded()) == sealed
    body = sealed.to_json()
    assert body["cut"] == "2024-03-01T00:00:00Z"
    assert body["end_offsets"] == {"0": 10, "1": 7}


def test_a_gap_needs_deleted_records_and_a_later_first_event() -> None:
    assert LiveStart(0, log_start=10, first_event_ms=CUT + 1).gap(CUT)
    assert not LiveStart(0, log_start=10, first_event_ms=CUT).gap(CUT)
    assert not LiveStart(0, log_start=0, first_event_ms=CUT + 1).gap(CUT)  # nothing deleted
    text = LiveStart(3, log_start=10, first_event_ms=CUT + 60_000).explain("orders", CUT)
    assert "partition 3 of orders now starts at offset 10" in text
    assert "2024-03-01T00:01:00Z is after the cut 2024-03-01T00:00:00Z" in text


def test_the_report() -> None:
    seam = HistorySeam(CUT, NAMES)
    waiting = seam.report([0, 1], lambda p: -1)
    assert waiting["sealed"] is False
    assert {p["state"] for p in waiting["partitions"].values()} == {WAITING}
    seam.seal(record({0: 10, 1: 5}, starts={0: 2, 1: 0}))
    seam.started_live(1, [SimpleNamespace(offset=4, value=b"x")], lambda v: CUT + 1)
    applied = {0: 6, 1: 5 + 8}
    report = seam.report([0, 1], applied.__getitem__)
    assert report["partitions"]["0"]["state"] == HISTORY
    assert report["partitions"]["0"]["history_rows_taken"] == 5  # offsets 2..6
    assert report["partitions"]["1"]["state"] == LIVE
    assert report["partitions"]["1"]["history_rows_taken"] == 5
    assert report["partitions"]["1"]["first_live_offset"] == 4
    assert report["partitions"]["1"]["last_live_offset"] == 8
    assert report["rows_taken_from_history"] == 10
    assert report["gap"] is True  # live offset 4 is its first, and later than the cut
    assert "partition 1 of orders now starts at offset 4" in report["gap_explanation"][0]


def test_rows_at_or_after_the_cut_stay_out_of_the_history() -> None:
    rows = GoodRows(
        pa.array(["a", "b", "c", "d"]),
        pa.array([CUT - 1, CUT, CUT + 1, CUT - 1000], pa.int64()),
        pa.array([b"1", b"2", b"3", b"4"], pa.binary()),
    )
    kept, after = before_cut(rows, CUT)
    assert after == 2
    assert kept.keys.to_pylist() == ["a", "d"]
    assert kept.values is not None
    assert kept.values.to_pylist() == [b"1", b"4"]
    assert before_cut(rows, CUT + 10) == (rows, 0)
