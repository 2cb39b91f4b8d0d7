"""``kappa verify``'s comparison rules (app/verify/compare.py) and its reading of a
version's input with a history seam (app/verify/reading.py), without a broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from agents.seam_record import SeamRecord
from agents.spec import PipelineSpec, parse_spec
from app.settings import KappaSettings
from app.verify.actual import Actual, WorkerView
from app.verify.batch import BatchAnswer, ExpectedWindow
from app.verify.bounds import within
from app.verify.compare import Comparison, compare, flatten
from app.verify.reading import InputReader
from tables.windows import Sessions

HOUR = 3_600_000
SPEC = parse_spec(
    {
        "name": "v",
        "version": 1,
        "input_topic": "in",
        "key": "k",
        "time_field": "t",
        "values": ["a"],
        "windows": [{"size": "1h"}],
        "retention": "2h",
    },
    "test",
)


def result(count: int, total: float) -> dict[str, Any]:
    return {
        "count": count,
        "values": {"a": {"sum": total, "min": total, "max": total, "mean": total / count}},
    }


def body(key: str, start: int, count: int, total: float, final: bool) -> dict[str, Any]:
    return {
        "key": key,
        "window": "1h",
        "start_ms": start,
        "end_ms": start + HOUR,
        "final": final,
        **result(count, total),
    }


def answer(windows: dict[int, tuple[int, float]], watermark: int) -> BatchAnswer:
    """Key ``x`` on partition 0 with one event per window start (count, sum)."""
    return BatchAnswer(
        totals={"x": result(1, 7.0)},  # the tests' totals: what they are does not matter
        windows={
            ("x", "1h", s): ExpectedWindow(0, s + HOUR, result(c, t), result(c, t))
            for s, (c, t) in windows.items()
        },
        watermarks={0: watermark},
        key_partition={"x": 0},
        first_seq={"x": 0},
    )


def view(watermark: int | None, processed: int = 9, closing: bool = False) -> WorkerView:
    done_closing = set() if closing else {0}
    return WorkerView(["http://w"], {0: "http://w"}, {0: watermark}, {0: processed}, done_closing)


def run(
    ans: BatchAnswer,
    act: Actual,
    before: WorkerView,
    after: WorkerView | None = None,
    spec: PipelineSpec = SPEC,
) -> Comparison:
    return compare(spec, ans, act, before, after or before, {0: 10}, (-10 * HOUR, 10 * HOUR))


def test_equal_when_everything_matches() -> None:
    ans = answer({0: (2, 7.0)}, watermark=HOUR)
    act = Actual(
        totals={"x": result(1, 7.0)},
        fences={"x": {0: 9}},
        windows={("x", "1h", 0): body("x", 0, 2, 7.0, final=True)},
        finals={("x", "1h", 0): body("x", 0, 2, 7.0, final=True)},
    )
    out = run(ans, act, view(HOUR))
    assert out.ok, out.differences
    assert (out.keys.equal, out.windows.equal, out.results.equal) == (1, 1, 1)


def test_a_difference_names_the_key_the_window_and_the_field() -> None:
    ans = answer({0: (2, 7.0)}, watermark=0)
    act = Actual(
        totals={"x": result(1, 7.0)},
        fences={"x": {0: 9}},
        windows={("x", "1h", 0): body("x", 0, 2, 7.000000000000001, final=False)},
    )
    out = run(ans, act, view(0))
    fields = {(d.where, d.field, d.expected, d.actual) for d in out.differences}
    assert ("windows", "values.a.sum", 7.0, 7.000000000000001) in fields
    assert out.windows.different == 1


def test_missing_and_extra_keys_and_a_key_not_reached_yet() -> None:
    ans = answer({}, watermark=0)
    ans.totals["later"] = result(1, 1.0)
    ans.key_partition["later"] = 0
    ans.first_seq["later"] = 12  # after the last processed offset (9): pending
    act = Actual(totals={"ghost": result(1, 1.0)}, fences={"ghost": {0: 3}})
    out = run(ans, act, view(0))
    assert (out.keys.missing, out.keys.extra, out.keys.skipped) == (1, 1, 1)
    assert {(d.kind, d.key) for d in out.differences} == {("missing", "x"), ("extra", "ghost")}


def test_a_moving_watermark_leaves_uncertain_windows_unchecked() -> None:
    # The window [0, 1h) expires at 3h (retention 2h). Before the API was asked the
    # watermark was 2h, after it 3h: the window may or may not be gone, and may be final.
    ans = answer({0: (1, 7.0)}, watermark=3 * HOUR)
    final = {("x", "1h", 0): body("x", 0, 1, 7.0, final=True)}
    act = Actual(totals={"x": result(1, 7.0)}, fences={"x": {0: 9}}, finals=final)
    out = run(ans, act, view(2 * HOUR), view(3 * HOUR))
    assert out.ok
    assert out.windows.skipped == 1
    # Had the watermark stayed at 2h (the version still reading), the window must be there.
    out = run(ans, act, view(2 * HOUR, processed=5))
    assert [(d.kind, d.where) for d in out.differences] == [("missing", "windows")]


def test_a_window_shown_open_after_it_closed_is_a_difference() -> None:
    ans = answer({0: (1, 7.0)}, watermark=HOUR)
    act = Actual(
        totals={"x": result(1, 7.0)},
        fences={"x": {0: 9}},
        windows={("x", "1h", 0): body("x", 0, 1, 7.0, final=False)},
        finals={("x", "1h", 0): body("x", 0, 1, 7.0, final=True)},
    )
    out = run(ans, act, view(HOUR))
    assert [(d.where, d.field, d.expected, d.actual) for d in out.differences] == [
        ("windows", "final", True, False)
    ]


def test_results_topic_missing_and_extra_finals() -> None:
    ans = answer({0: (1, 7.0), HOUR: (1, 7.0)}, watermark=HOUR)
    act = Actual(
        totals={"x": result(1, 7.0)},
        fences={"x": {0: 9}},
        windows={
            ("x", "1h", 0): body("x", 0, 1, 7.0, final=True),
            ("x", "1h", HOUR): body("x", HOUR, 1, 7.0, final=False),
        },
        # [0, 1h) closed and is not in the topic; [1h, 2h) is there but is still open.
        finals={("x", "1h", HOUR): body("x", HOUR, 1, 7.0, final=True)},
    )
    out = run(ans, act, view(HOUR))
    assert {(d.kind, d.where, d.start_ms) for d in out.differences} == {
        ("missing", "results topic", 0),
        ("extra", "results topic", HOUR),
    }


def test_a_key_read_while_it_moved_has_its_windows_skipped() -> None:
    ans = answer({0: (1, 7.0)}, watermark=0)
    act = Actual(totals={"x": result(1, 7.0)}, fences={"x": {0: 9}}, moving={"x"})
    out = run(ans, act, view(0))
    assert out.ok
    assert out.windows.skipped == 1


def test_sessions_of_a_key_with_records_past_its_fence_are_skipped() -> None:
    """As of its fence, an unseen event may have merged two of the key's sessions: the
    API's sessions of such a key are neither missing nor extra."""
    sessions = SPEC.model_copy(update={"windows": (Sessions("1h", HOUR),)})
    ans = answer({0: (1, 7.0)}, watermark=0)
    ans.unsettled_sessions = {"x"}
    act = Actual(totals={"x": result(1, 7.0)}, fences={"x": {0: 9}})
    act.windows[("x", "1h", 5 * HOUR)] = body("x", 5 * HOUR, 2, 1.0, False)
    out = run(ans, act, view(0), spec=sessions)
    assert out.ok
    assert out.windows.skipped == 2
    # Settled, the same two are a difference each.
    ans.unsettled_sessions = set()
    assert {d.kind for d in run(ans, act, view(0), spec=sessions).differences} == {
        "missing",
        "extra",
    }


def test_a_watermark_of_a_processed_partition_must_match() -> None:
    ans = answer({}, watermark=5 * HOUR)
    ans.totals.clear()
    out = run(ans, Actual(), view(4 * HOUR))
    assert [(d.where, d.field, d.expected, d.actual) for d in out.differences] == [
        ("watermark", "partition 0", 5 * HOUR, 4 * HOUR)
    ]


def test_flatten() -> None:
    assert flatten(result(2, 3.0)) == {
        "count": 2,
        "values.a.sum": 3.0,
        "values.a.min": 3.0,
        "values.a.max": 3.0,
        "values.a.mean": 1.5,
    }


@dataclass
class Record:
    partition: int
    offset: int
    value: bytes


def test_a_seam_puts_history_first_and_skips_live_records_before_the_cut() -> None:
    seam = SeamRecord(
        cut_ms=5_000_000,
        history_topic="h",
        start_offsets={0: 0},
        end_offsets={0: 3},
        rows=3,
        after_cut=0,
        files=["h.csv"],
        replay_id="r",
    )
    reader = InputReader(KappaSettings(), SPEC, seam)
    for offset, t in enumerate([1_000, 4_000, 4_500]):
        reader._take(Record(0, offset, orjson.dumps({"k": "x", "t": t, "a": 1})), history=True)
    for offset, t in enumerate([4_999, 5_000, 6_000]):
        reader._take(Record(0, offset, orjson.dumps({"k": "x", "t": t, "a": 1})), history=False)
    reader._take(Record(0, 3, b"{bad"), history=False)
    read = reader.read
    # The worker's virtual offsets: history as it is, live after the 3 history records.
    assert read.columns["seq"] == [0, 1, 2, 4, 5]
    # Times are epoch seconds here (numbers below 1e11 in time_format auto).
    assert read.columns["t"] == [1_000_000, 4_000_000, 4_500_000, 5_000_000, 6_000_000]
    assert (read.records, read.history_records, read.before_cut) == (7, 3, 1)
    assert read.bad == {"malformed_json": 1}


def test_a_quantile_is_equal_within_its_bound_and_shown_with_it() -> None:
    expected = {"count": 1, "values": {"a": {"p50": within(100.0)}}}
    ans = BatchAnswer(
        totals={"x": expected},
        windows={},
        watermarks={0: 0},
        key_partition={"x": 0},
        first_seq={"x": 0},
    )
    for got, ok in ((100.99, True), (99.01, True), (101.01, False), (98.9, False)):
        act = Actual(
            totals={"x": {"count": 1, "values": {"a": {"p50": got}}}}, fences={"x": {0: 9}}
        )
        out = run(ans, act, view(0))
        assert out.ok is ok, (got, out.differences)
    (difference,) = out.differences
    shown = orjson.loads(orjson.dumps(difference.as_json()))
    assert shown["expected"] == {"exact": 100.0, "relative_error": 0.01}
    assert shown["actual"] == 98.9


def test_windows_a_partition_is_still_closing_are_not_required_final() -> None:
    """A watermark move closes its windows in steps: between two, a window it passed may
    be open in the API and not in the results topic yet. Once the partition is done
    closing, the same is a difference."""
    ans = answer({0: (1, 7.0)}, watermark=HOUR)
    act = Actual(
        totals={"x": result(1, 7.0)},
        fences={"x": {0: 9}},
        windows={("x", "1h", 0): body("x", 0, 1, 7.0, final=False)},
    )
    out = run(ans, act, view(HOUR, closing=True))
    assert out.ok, out.differences
    assert (out.windows.equal, out.results.skipped) == (1, 1)
    assert {(d.kind, d.where) for d in run(ans, act, view(HOUR)).differences} == {
        ("different", "windows"),
        ("missing", "results topic"),
    }
