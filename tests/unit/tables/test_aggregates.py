"""The mergeable aggregate, checked against math.fsum, exact fractions and plain folds."""

from __future__ import annotations

import gc
import math
from fractions import Fraction
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.aggregates import METRICS, Agg

Event = list[float | None]

# Bounded so that no sum of a drawn list can leave the float range.
FINITE = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
# Magnitudes that cancel and lose bits in a naive running sum.
NASTY = st.sampled_from([1e16, -1e16, 1.0, -1.0, 0.1, -0.1, 2.0**53, 1e-300, -0.0, 1e300, -1e300])
VALUE = st.none() | FINITE | NASTY


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 40) -> tuple[int, list[Event]]:
    n = draw(st.integers(min_value=0, max_value=3))
    events = draw(st.lists(st.lists(VALUE, min_size=n, max_size=n), max_size=max_size))
    return n, events


def names(n: int) -> list[str]:
    return [f"v{j}" for j in range(n)]


def fold(n: int, events: list[Event]) -> Agg:
    agg = Agg.empty(n)
    for e in events:
        agg.add(e)
    return agg


def oracle(n: int, events: list[Event]) -> dict[str, Any]:
    """The expected result of every metric, computed independently of Agg."""
    values: dict[str, Any] = {}
    for j, name in enumerate(names(n)):
        vals = [v for v in (e[j] for e in events) if v is not None]
        if not vals:
            values[name] = {"sum": None, "min": None, "max": None, "mean": None}
            continue
        total = math.fsum(vals)
        lo = hi = vals[0]
        for v in vals[1:]:
            lo = v if v < lo else lo
            hi = v if v > hi else hi
        values[name] = {"sum": total, "min": lo, "max": hi, "mean": total / len(vals)}
    return {"count": len(events), "values": values}


def roundtrip(agg: Agg) -> Agg:
    return Agg.from_state(orjson.loads(orjson.dumps(agg.to_state())))


@settings(max_examples=300, deadline=None)
@given(case=event_lists())
def test_metrics_match_an_independent_fold(case: tuple[int, list[Event]]) -> None:
    n, events = case
    assert fold(n, events).result(names(n), METRICS) == oracle(n, events)


@settings(max_examples=300, deadline=None)
@given(vals=st.lists(FINITE | NASTY, min_size=1, max_size=60))
def test_sum_is_the_correctly_rounded_exact_sum(vals: list[float]) -> None:
    got = fold(1, [[v] for v in vals]).result(["x"], ["sum"])["values"]["x"]["sum"]
    assert got == float(sum(Fraction(v) for v in vals))
    assert got == math.fsum(vals)


def test_cancellation_keeps_every_bit() -> None:
    vals = [1e100, 1.0, -1e100, 1e-100, 0.1, 0.2, -0.3]
    got = fold(1, [[v] for v in vals]).result(["x"], ["sum"])["values"]["x"]["sum"]
    assert got == float(sum(Fraction(v) for v in vals))
    assert got != sum(vals)  # the naive running sum loses the 1.0


@settings(max_examples=200, deadline=None)
@given(case=event_lists(), data=st.data())
def test_any_order_and_batching_gives_the_same_state(
    case: tuple[int, list[Event]], data: st.DataObject
) -> None:
    n, events = case
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=6)))
    bounds = [0, *cuts, len(events)]
    agg = Agg.empty(n)
    for a, b in pairwise(bounds):  # batches, stored and read back between some of them
        agg.add_rows(shuffled[a:b])
        agg = roundtrip(agg) if data.draw(st.booleans()) else agg

    merged, sequential = agg, fold(n, events)
    assert merged.to_state() == sequential.to_state()
    assert orjson.dumps(merged.to_state()) == orjson.dumps(sequential.to_state())
    assert merged.result(names(n), METRICS) == oracle(n, events)


@settings(max_examples=200, deadline=None)
@given(case=event_lists(), more=st.data())
def test_state_roundtrips_through_json(case: tuple[int, list[Event]], more: st.DataObject) -> None:
    n, events = case
    agg = fold(n, events)
    back = roundtrip(agg)
    assert back.to_state() == agg.to_state()
    assert back.result(names(n), METRICS) == agg.result(names(n), METRICS)
    # A restored aggregate carries on exactly like the original.
    later = more.draw(st.lists(st.lists(VALUE, min_size=n, max_size=n), max_size=10))
    for e in later:
        back.add(e)
    assert back.result(names(n), METRICS) == oracle(n, events + later)


@settings(max_examples=100, deadline=None)
@given(count=st.integers(min_value=0, max_value=20), other=st.lists(FINITE, max_size=20))
def test_all_null_field_is_null_but_counted(count: int, other: list[float]) -> None:
    events: list[Event] = [[None, v] for v in other] + [[None, None]] * count
    got = fold(2, events).result(["a", "b"], METRICS)
    assert got["count"] == len(other) + count
    assert got["values"]["a"] == {"sum": None, "min": None, "max": None, "mean": None}


@settings(max_examples=200, deadline=None)
@given(
    case=event_lists(max_size=5),
    metrics=st.lists(st.sampled_from(METRICS), unique=True),
)
def test_result_holds_only_the_requested_metrics(
    case: tuple[int, list[Event]], metrics: list[str]
) -> None:
    n, events = case
    got = fold(n, events).result(names(n), metrics)
    value_metrics = [m for m in metrics if m != "count"]
    expected_keys = {"count"} & set(metrics) | ({"values"} if value_metrics else set())
    assert set(got) == expected_keys
    for per_field in got.get("values", {}).values():
        assert list(per_field) == value_metrics


def test_signed_zeros_do_not_depend_on_order() -> None:
    a, b = fold(1, [[-0.0], [0.0]]), fold(1, [[0.0], [-0.0]])
    assert orjson.dumps(a.to_state()) == orjson.dumps(b.to_state())
    for agg in (a, b, fold(1, [[-0.0]])):
        for metric in agg.result(["x"], METRICS)["values"]["x"].values():
            assert math.copysign(1.0, metric) == 1.0


def test_overflow_raises_and_leaves_the_aggregate_unchanged() -> None:
    agg = fold(2, [[1.0, 1.7e308]])
    before = agg.to_state()
    with pytest.raises(OverflowError):
        agg.add([1.0, 1.7e308])
    with pytest.raises(OverflowError):
        agg.add_rows([[1.0, 1.0], [1.0, 1.7e308]])
    assert agg.to_state() == before


def test_shape_mismatches_are_rejected() -> None:
    agg = Agg.empty(2)
    with pytest.raises(ValueError, match="expected 2 values"):
        agg.add([1.0])
    with pytest.raises(ValueError, match="expected 2 values"):
        agg.add_rows([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="expected 2 value names"):
        agg.result(["a"], ["sum"])
    with pytest.raises(ValueError, match="unknown metrics"):
        agg.result(["a", "b"], ["median"])


def _containers(obj: Any) -> list[Any]:
    """The lists and tuples an object holds, directly and within them."""
    found = []
    for inner in gc.get_referents(obj):
        if isinstance(inner, (list, tuple)):
            found += [inner, *_containers(inner)]
    return found


def test_an_aggregate_is_one_flat_list_with_terms_only_where_a_sum_needs_them() -> None:
    """Sums that one float holds exactly keep no terms; a sum that needs more keeps
    its terms in one tuple, and the state is the canonical one either way."""
    agg = fold(3, [[1.5, None, 0.1], [2.25, 4.0, 0.2], [-0.5, 1.0, 0.3]])
    containers = _containers(agg)
    assert [type(c) for c in containers] == [list, tuple]  # the cells; 0.1+0.2+0.3's terms
    (terms,) = (c for c in containers if isinstance(c, tuple))
    state = agg.to_state()
    assert state[1][3] == [3.25]
    assert state[2][3] == [5.0]
    assert list(terms) == state[3][3]
    assert len(terms) > 1
    assert Fraction(math.fsum(terms)) != sum(map(Fraction, terms))  # not one float's worth
    assert Agg.from_state(orjson.loads(orjson.dumps(state))).to_state() == state


@settings(max_examples=200, deadline=None)
@given(case=event_lists(), data=st.data())
def test_merging_parts_equals_adding_every_event(
    case: tuple[int, list[Event]], data: st.DataObject
) -> None:
    """How hopping windows combine their panes: the parts of any split, each folded and
    stored, merged in any order, give the state (byte for byte) and the results of
    adding every event to one aggregate; the parts are left unchanged."""
    n, events = case
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    bounds = [0, *cuts, len(events)]
    parts = [roundtrip(fold(n, events[a:b])) for a, b in pairwise(bounds)]
    before = [part.to_state() for part in parts]
    merged = Agg.merged(data.draw(st.permutations(parts)))
    whole = fold(n, events)
    assert orjson.dumps(merged.to_state()) == orjson.dumps(whole.to_state())
    assert merged.result(names(n), METRICS) == oracle(n, events)
    if len(parts) > 1:
        assert [part.to_state() for part in parts] == before


def test_merge_refuses_other_fields_and_an_overflow_leaves_it_unchanged() -> None:
    with pytest.raises(ValueError, match="value fields"):
        Agg.empty(1).merge(Agg.empty(2))
    big = fold(1, [[1e308]])
    with pytest.raises(OverflowError):
        big.merge(fold(1, [[1e308]]))
    assert big.to_state() == fold(1, [[1e308]]).to_state()
