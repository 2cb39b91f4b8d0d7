"""``kappa verify``'s SQL answer (app/verify/batch.py) against a plain Python fold.

The fold shares nothing with kappa or with the SQL: it walks each partition in order,
keeps the newest time seen, and assigns windows with datetime and zoneinfo (a local
day starts at the first instant whose local date is that day, found by bisection).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from agents.spec import PipelineSpec, parse_spec
from app.datagen import generate
from app.verify.batch import BatchAnswer, batch_answer, connect, event_schema
from tables.aggregates import Agg
from tables.distinct import distinct_limit
from tables.windows import AlignedWindows
from tests.support.datasets import CRASH
from tests.support.fold import folded_result

HOUR = 3_600_000
DAY = 24 * HOUR
Row = tuple[int, int, str, int, tuple[float | None, ...]]  # partition, seq, key, ms, values


def spec_of(**fields: Any) -> PipelineSpec:
    base = {
        "name": "v",
        "version": 1,
        "input_topic": "in",
        "key": "k",
        "time_field": "t",
        "values": ["a", "b"],
    }
    return parse_spec(base | fields, "test")


def table(rows: Sequence[Row], values: int = 2) -> pa.Table:
    columns: dict[str, list[Any]] = {"p": [], "seq": [], "k": [], "t": []}
    for i in range(values):
        columns[f"v{i}"] = []
    for p, seq, k, t, vs in rows:
        columns["p"].append(p)
        columns["seq"].append(seq)
        columns["k"].append(k)
        columns["t"].append(t)
        for i, v in enumerate(vs):
            columns[f"v{i}"].append(v)
    return pa.Table.from_pydict(columns, schema=event_schema(values))


def result_of(rows: list[tuple[float | None, ...]], fields: int) -> dict[str, Any]:
    return folded_result(rows, ["a", "b"][:fields])


def first_instant(day: date, zone: ZoneInfo) -> int:
    """The first epoch ms whose local date in ``zone`` is ``day`` or later."""
    lo = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000) - 16 * HOUR
    hi = lo + 32 * HOUR
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid / 1000, zone).date() >= day:
            hi = mid
        else:
            lo = mid + 1
    return lo


def windows_of(t: int, size: int, step: int, zone: ZoneInfo | None) -> list[tuple[int, int]]:
    if zone is None:
        starts = range((t - size) // step * step + step, t // step * step + 1, step)
        return [(s, s + size) for s in starts if s <= t < s + size]
    epoch = date(1970, 1, 1)
    day = (datetime.fromtimestamp(t / 1000, zone).date() - epoch).days
    sd, st = size // DAY, step // DAY
    out = []
    for d in range((day - sd) // st * st + st, day // st * st + 1, st):
        start = first_instant(epoch + timedelta(days=d), zone)
        if start < first_instant(epoch + timedelta(days=d + 1), zone):
            out.append((start, first_instant(epoch + timedelta(days=d + sd), zone)))
    return out


def fold(rows: Sequence[Row], spec: PipelineSpec, fields: int = 2) -> dict[str, Any]:
    newest: dict[int, int] = {}
    totals: dict[str, list[Any]] = defaultdict(list)
    windows: dict[tuple[str, str, int], list[Any]] = defaultdict(list)
    ends: dict[tuple[str, str, int], int] = {}
    late = 0
    for p, _, key, t, vs in sorted(rows, key=lambda r: (r[0], r[1])):
        totals[key].append(vs)
        before = newest.get(p)
        newest[p] = t if before is None else max(before, t)
        if before is not None and t < before - spec.lateness_ms:
            late += 1
            continue
        for w in spec.windows:
            assert isinstance(w, AlignedWindows)
            for start, end in windows_of(t, w.size_ms, w.step_ms, w.zone):
                windows[(key, w.name, start)].append(vs)
                ends[(key, w.name, start)] = end
    return {
        "totals": {k: result_of(v, fields) for k, v in totals.items()},
        "windows": {w: (ends[w], result_of(v, fields)) for w, v in windows.items()},
        "watermarks": {p: t - spec.lateness_ms for p, t in newest.items()},
        "late": late,
    }


def answer(rows: Sequence[Row], spec: PipelineSpec, **kw: Any) -> BatchAnswer:
    return batch_answer(connect(), table(rows, len(spec.values)), spec, **kw)


def check(rows: Sequence[Row], spec: PipelineSpec) -> BatchAnswer:
    got = answer(rows, spec)
    want = fold(rows, spec, len(spec.values))
    assert got.totals == want["totals"]
    assert {w: (x.end_ms, x.result) for w, x in got.windows.items()} == want["windows"]
    assert got.watermarks == want["watermarks"]
    assert got.late_events == want["late"]
    return got


def test_late_events_count_in_totals_and_not_in_windows() -> None:
    spec = spec_of(windows=[{"size": "1h"}], lateness="10m")
    rows: list[Row] = [
        (0, 0, "x", 10 * HOUR + 50 * 60_000, (1.5, None)),
        (0, 1, "y", 11 * HOUR + 30 * 60_000, (2.0, 3.0)),  # watermark 11:20
        (0, 2, "x", 10 * HOUR + 55 * 60_000, (4.0, 1.0)),  # behind 11:20: late
        (0, 3, "x", 11 * HOUR + 25 * 60_000, (8.0, 2.0)),  # 11:25 >= 11:20: on time
        (1, 0, "z", 10 * HOUR, (None, None)),  # another partition: its own watermark
    ]
    got = check(rows, spec)
    assert got.late_events == 1
    assert got.totals["x"]["count"] == 3
    assert got.windows[("x", "1h", 10 * HOUR)].result["count"] == 1
    assert got.totals["z"]["values"]["a"] == {"sum": None, "min": None, "max": None, "mean": None}


def test_hopping_windows_and_negative_times() -> None:
    spec = spec_of(windows=[{"size": "1d", "step": "6h"}, {"size": "90m", "step": "1h"}])
    rng = random.Random(3)
    rows: list[Row] = [
        (i % 2, i, f"k{i % 5}", -2 * DAY + i * 7 * 60_000, (rng.uniform(-1, 1), None))
        for i in range(1500)
    ]
    got = check(rows, spec)
    assert len({w[1] for w in got.windows}) == 2


@pytest.mark.parametrize(
    ("zone", "first"),
    [
        ("America/New_York", "2024-03-08"),  # 23 and 25-hour days
        ("America/Sao_Paulo", "2018-11-02"),  # midnight skipped: the day starts at 01:00
        ("Pacific/Apia", "2011-12-28"),  # 2011-12-30 skipped whole
        ("America/Havana", "2008-10-24"),  # midnight repeated: the day starts at the first
        ("Asia/Kolkata", "2024-01-01"),
    ],
)
def test_days_in_a_time_zone(zone: str, first: str) -> None:
    spec = spec_of(
        timezone=zone, windows=[{"size": "1d"}, {"size": "2d", "step": "1d"}, {"size": "1h"}]
    )
    start = int(datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp() * 1000)
    rows: list[Row] = [
        (0, i, f"k{i % 3}", start + i * 37 * 60_000, (float(i), 1.0)) for i in range(400)
    ]
    got = check(rows, spec)
    assert {w[1] for w in got.windows} == {f"1d@{zone}", f"2d/1d@{zone}", "1h"}


def test_sums_are_exact_where_a_running_sum_is_not() -> None:
    # One of the integration tests' datasets, chosen there because a running sum over it
    # differs from the correctly rounded sum (tests/unit/app/test_datagen.py).
    events = list(generate(CRASH))[:5000]
    spec = spec_of(windows=[{"size": "1h"}], lateness="10m")

    def number(x: Any) -> float | None:
        return None if x in (None, "") else float(x)

    rows: list[Row] = [
        (
            0,
            i,
            str(e["customer_id"]),
            int(datetime.fromisoformat(str(e["ts"])).timestamp() * 1000),
            (number(e["amount"]), number(e["quantity"])),
        )
        for i, e in enumerate(events)
    ]
    got = check(rows, spec)
    by_key: dict[str, list[float]] = defaultdict(list)
    for _, _, k, _, vs in rows:
        if vs[0] is not None:
            by_key[k].append(vs[0])
    inexact = [k for k, xs in by_key.items() if sum(xs) != got.totals[k]["values"]["a"]["sum"]]
    assert inexact, "the data cannot tell an exact sum from a running one"


def test_as_of_a_fence_counts_a_key_up_to_its_fence() -> None:
    spec = spec_of(windows=[{"size": "1h"}])
    rows: list[Row] = [
        (0, 0, "x", 0, (1.0, None)),
        (0, 1, "y", 1000, (2.0, None)),
        (0, 2, "x", 2000, (4.0, None)),
        (0, 3, "x", 3000, (8.0, None)),
    ]
    got = answer(rows, spec, fences={"x": {0: 2}})
    assert got.totals["x"]["values"]["a"]["sum"] == 5.0
    assert got.totals["y"]["count"] == 1  # no fence: every event
    window = got.windows[("x", "1h", 0)]
    assert window.result["count"] == 3
    assert window.as_of_fence is not None
    assert window.as_of_fence["count"] == 2


def test_as_of_a_fence_per_source_partition_across_the_hop() -> None:
    """Through the repartition hop a key's events come from several input partitions,
    whose offsets are unrelated: each is fenced by its own partition's offset, and a
    partition the key has no fence for has none of its events applied yet."""
    spec = spec_of()
    rows: list[Row] = [
        (0, 500, "x", 0, (1.0, None)),  # applied: 500 <= fence 500 on partition 0
        (0, 501, "x", 1000, (2.0, None)),  # not yet
        (1, 3, "x", 2000, (4.0, None)),  # applied: 3 <= fence 7 on partition 1
        (1, 8, "x", 3000, (8.0, None)),  # not yet
        (2, 0, "x", 4000, (16.0, None)),  # partition 2: nothing applied yet
    ]
    got = answer(rows, spec, fences={"x": {0: 500, 1: 7}})
    assert got.totals["x"]["count"] == 2
    assert got.totals["x"]["values"]["a"]["sum"] == 5.0


def test_only_the_chosen_metrics() -> None:
    spec = spec_of(metrics=["count", "max"], windows=[{"size": "1h"}])
    got = answer([(0, 0, "x", 0, (1.0, 2.0))], spec)
    assert got.totals["x"] == {"count": 1, "values": {"a": {"max": 1.0}, "b": {"max": 2.0}}}


def ends_by_time_then_seq(rows: Sequence[Row], field: int) -> dict[str, Any]:
    """The first and last non-null value of a field, events sorted by (time, seq), and
    its number of distinct non-null values (a Python set: -0.0 == 0.0)."""
    xs = [vs[field] for _, _, _, _, vs in sorted(rows, key=lambda r: (r[3], r[1]))]
    present = [x for x in xs if x is not None]
    return {
        "first": present[0] if present else None,
        "last": present[-1] if present else None,
        "count_distinct": len(set(present)),
    }


def test_first_last_and_count_distinct_break_ties_by_seq_and_skip_nulls() -> None:
    spec = spec_of(
        metrics=["first", "last", "count_distinct"],
        windows=[{"size": "1h"}, {"size": "2h", "step": "1h"}],
        lateness="1d",  # nothing late: every event is in its windows
    )
    rng = random.Random(11)
    # Times on a coarse grid so that many events tie; seq in a shuffled order, the
    # history's negative seqs before the live ones, NULLs among the values.
    seqs = list(range(-50, 250))
    rng.shuffle(seqs)
    rows: list[Row] = [
        (
            0,
            seq,
            f"k{rng.randrange(4)}",
            rng.randrange(6) * 20 * 60_000,
            (rng.choice([None, rng.uniform(-9, 9)]), rng.choice([1.0, 2.0, -0.5, 0.0, -0.0])),
        )
        for seq in seqs
    ]
    got = answer(rows, spec)
    assert got.late_events == 0

    def ends(held: list[Row]) -> dict[str, Any]:
        return {
            "values": {"a": ends_by_time_then_seq(held, 0), "b": ends_by_time_then_seq(held, 1)}
        }

    for key, result in got.totals.items():
        assert result == ends([r for r in rows if r[2] == key])
    assert set(got.windows) == set(fold(rows, spec)["windows"])
    sizes = {w.name: w.size_ms for w in spec.paned_windows}
    for (key, name, start), window in got.windows.items():
        held = [r for r in rows if r[2] == key and start <= r[3] < start + sizes[name]]
        assert window.result == ends(held)


def test_quantiles_are_expected_within_the_sketchs_bound() -> None:
    spec = spec_of(metrics=["p50", "p90", "p99"], windows=[{"size": "1h"}])
    rng = random.Random(5)
    rows: list[Row] = [
        (0, i, f"k{i % 3}", i * 1000, (rng.lognormvariate(0, 3) * rng.choice([1, -1]), None))
        for i in range(900)
    ]
    got = answer(rows, spec)
    for key, result in got.totals.items():
        xs = sorted(vs[0] for _, _, k, _, vs in rows if k == key and vs[0] is not None)
        assert result["values"]["b"] == {"p50": None, "p90": None, "p99": None}
        for metric, percent in (("p50", 50), ("p90", 90), ("p99", 99)):
            expected = result["values"]["a"][metric]
            exact = xs[math.ceil(percent * len(xs) / 100) - 1]  # percentile_disc's rank
            assert expected.exact == exact
            # Equal within 1 %, and only within it, whichever side asks.
            assert exact * 1.0099 == expected == exact * 0.9901
            assert expected != exact * 1.0101
            assert exact * 0.9899 != expected
    # A sketch's answers, from kappa's own aggregate, pass the comparison.
    agg = Agg.empty(2, spec.metrics)
    agg.add_rows([vs for _, _, k, _, vs in rows if k == "k0"])
    assert agg.result(spec.values, spec.metrics) == got.totals["k0"]


def test_a_count_distinct_over_the_bound_is_expected_null() -> None:
    """Field ``a`` has one distinct value more than a record keeps for it, ``b`` exactly
    as many: verify expects ``a`` null (showing the exact count and the limit), ``b``
    exact; kappa's own aggregate passes."""
    spec = spec_of(metrics=["count_distinct"], windows=[{"size": "1d"}])
    limit = distinct_limit(2)
    rows: list[Row] = [
        (0, i, "x", i, (float(i) * 3, float(min(i, limit - 1)))) for i in range(limit + 1)
    ]
    got = answer(rows, spec)
    expected = got.totals["x"]["values"]
    assert (expected["a"]["count_distinct"].exact, expected["b"]["count_distinct"]) == (
        len({vs[0] for *_, vs in rows}),
        len({vs[1] for *_, vs in rows}),
    )
    assert expected["a"]["count_distinct"] == None  # noqa: E711  # equal to None only
    assert expected["a"]["count_distinct"] != limit + 1
    assert repr(expected["a"]["count_distinct"]).endswith(f"over the bound of {limit})")
    agg = Agg.empty(2, spec.metrics)
    agg.add_rows([vs for *_, vs in rows])
    assert agg.result(spec.values, spec.metrics) == got.totals["x"]
    assert agg.result(spec.values, spec.metrics) == got.windows[("x", "1d", 0)].result


def test_sessions_per_key_split_where_an_event_is_more_than_the_gap_after() -> None:
    spec = spec_of(windows=[{"gap": "30m"}], lateness="1h")
    minute = 60_000
    rows: list[Row] = [
        (0, 0, "x", 10 * HOUR, (1e16, None)),
        (0, 1, "x", 10 * HOUR + 40 * minute, (0.1, None)),  # 40m after: a new session
        (0, 2, "x", 10 * HOUR + 10 * minute, (1.0, None)),  # bridges them: one session
        (0, 3, "x", 11 * HOUR + 11 * minute, (2.0, None)),  # 31m after 10:40: a new one
        (0, 4, "y", 10 * HOUR + 40 * minute, (-1e16, 5.0)),
        (0, 5, "x", 8 * HOUR, (7.0, None)),  # late: behind 11:11 - 1h
    ]
    got = batch_answer(connect(), table(rows), spec)
    name = "session/30m"
    expected = {
        ("x", name, 10 * HOUR): (10 * HOUR + 70 * minute + 1, [rows[0], rows[1], rows[2]]),
        ("x", name, 11 * HOUR + 11 * minute): (11 * HOUR + 41 * minute + 1, [rows[3]]),
        ("y", name, 10 * HOUR + 40 * minute): (11 * HOUR + 10 * minute + 1, [rows[4]]),
    }
    assert got.windows.keys() == expected.keys()
    for wid, (end, held) in expected.items():
        assert got.windows[wid].end_ms == end
        assert got.windows[wid].result == result_of([r[4] for r in held], 2)
    assert got.late_events == 1
    assert got.unsettled_sessions == set()
    # A fence before x's last records: x's sessions as of it are not compared.
    fenced = batch_answer(connect(), table(rows), spec, {"x": {0: 2}, "y": {0: 4}})
    assert fenced.unsettled_sessions == {"x"}
