"""The mergeable aggregate, checked against math.fsum, exact fractions and plain folds."""

from __future__ import annotations

import gc
import math
import random
from fractions import Fraction
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.batch_sender import MAX_BATCH_BYTES
from tables.aggregates import KNOWN_METRICS, METRICS, ORDER_METRICS, Agg
from tables.distinct import distinct_limit
from tables.quantiles import MIN_MAGNITUDE, QUANTILES, RELATIVE_ACCURACY
from tables.records import KeyRecord, SourceFence

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


# --- first, last, count_distinct, and merging ----------------------------------------

# Integral values, dense and at the int64 edges, beside the others: count_distinct keeps
# them apart (a roaring bitmap and a list of floats).
DISTINCT_VALUE = (
    VALUE
    | st.integers(-70_000, 70_000).map(float)
    | st.sampled_from([-(2.0**63), 2.0**63, 2.0**63 - 1024, 0.0, -0.0, 0.5, -0.5])
)


@st.composite
def stamped_lists(draw: st.DrawFn) -> tuple[int, list[Event], list[tuple[int, int]]]:
    """Events with stamps: times from a small range (many ties), distinct offsets."""
    n = draw(st.integers(min_value=0, max_value=3))
    events = draw(st.lists(st.lists(DISTINCT_VALUE, min_size=n, max_size=n), max_size=40))
    offsets = draw(st.permutations(range(len(events))))
    stamps = [(draw(st.integers(0, 5)), offset) for offset in offsets]
    return n, events, stamps


def extras_oracle(n: int, events: list[Event], stamps: list[tuple[int, int]]) -> dict[str, Any]:
    """Each field's first and last non-null value by (time, offset), a sort then its
    ends, and its number of distinct non-null values, a Python set (-0.0 == 0.0)."""
    order = sorted(range(len(events)), key=lambda i: stamps[i])
    out = {}
    for j, name in enumerate(names(n)):
        xs = [v for i in order if (v := events[i][j]) is not None]
        out[name] = {
            "first": xs[0] if xs else None,
            "last": xs[-1] if xs else None,
            "count_distinct": len(set(xs)),
        }
    return out


ALL = KNOWN_METRICS
EXACT_EXTRAS = ("first", "last", "count_distinct")
EXTRA_METRICS = (*EXACT_EXTRAS, *QUANTILES)


def exact_quantile(xs: list[float], percent: int) -> float:
    """The value of rank ceil(percent / 100 * n), as SQL's percentile_disc."""
    return sorted(xs)[math.ceil(Fraction(percent, 100) * len(xs)) - 1]


def within_bound(got: float | None, exact: float) -> bool:
    """The sketch's guarantee: a relative error of at most RELATIVE_ACCURACY (and 0 for
    the values closer to 0 than it can tell apart)."""
    if abs(exact) < MIN_MAGNITUDE:
        return got == 0.0
    return got is not None and abs(got - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-12)


def check_quantiles(agg: Agg, n: int, events: list[Event]) -> None:
    for j, name in enumerate(names(n)):
        found = agg.result(names(n), list(QUANTILES))["values"][name]
        xs = [v for e in events if (v := e[j]) is not None]
        for metric, percent in QUANTILES.items():
            if not xs:
                assert found[metric] is None
            else:
                exact = exact_quantile(xs, percent)
                assert within_bound(found[metric], exact), (metric, found[metric], exact)


def merged_in_random_order(parts: list[Agg], data: st.DataObject) -> Agg:
    """``parts`` merged pairwise in a random tree, each pair in a random order."""
    while len(parts) > 1:
        i = data.draw(st.integers(0, len(parts) - 2))
        left, right = parts[i], parts.pop(i + 1)
        if data.draw(st.booleans()):
            left, right = right, left
        left.merge(right)
        parts[i] = left
    return parts[0]


@settings(max_examples=300, deadline=None)
@given(
    case=stamped_lists(),
    metrics=st.sampled_from([METRICS, ORDER_METRICS, ("count_distinct",), ("p50",), ALL]),
    data=st.data(),
)
def test_merging_in_any_order_and_grouping_gives_the_same_bytes(
    case: tuple[int, list[Event], list[tuple[int, int]]],
    metrics: tuple[str, ...],
    data: st.DataObject,
) -> None:
    n, events, stamps = case
    whole = Agg.empty(n, metrics)
    whole.add_rows(events, stamps)
    # Split into parts, fold each on its own, then merge them in a random order and tree.
    picks = data.draw(st.permutations(range(len(events))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=5)))
    parts = []
    for a, b in pairwise([0, *cuts, len(events)]):
        part = Agg.empty(n, metrics)
        part.add_rows([events[i] for i in picks[a:b]], [stamps[i] for i in picks[a:b]])
        parts.append(roundtrip(part) if data.draw(st.booleans()) else part)
    merged = merged_in_random_order(parts, data)
    assert orjson.dumps(merged.to_state()) == orjson.dumps(whole.to_state())
    assert merged.result(names(n), METRICS) == oracle(n, events)
    wanted = [m for m in EXACT_EXTRAS if m in metrics]
    expected = extras_oracle(n, events, stamps)
    for name, found in merged.result(names(n), wanted).get("values", {}).items():
        assert found == {m: expected[name][m] for m in wanted}
    if "p50" in metrics:
        check_quantiles(merged, n, events)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_of_thousands_stay_within_the_bound(seed: int) -> None:
    """Heavy tails of both signs, zeros and repeated values, in any split."""
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 4) * rng.choice([1, -1]) for _ in range(5000)]
    values += [0.0] * 200 + [-0.0] * 50 + [3.0] * 500 + [1e-310, 5e-324]
    rng.shuffle(values)
    whole = Agg.empty(1, list(QUANTILES))
    whole.add_rows([[v] for v in values])
    check_quantiles(whole, 1, [[v] for v in values])
    parts = [Agg.empty(1, list(QUANTILES)) for _ in range(5)]
    for v in values:
        rng.choice(parts).add([v])
    merged = parts.pop()
    for part in parts:
        merged = roundtrip(merged)
        merged.merge(part)
    assert orjson.dumps(merged.to_state()) == orjson.dumps(whole.to_state())


def test_a_distinct_set_stored_after_each_value_has_the_bytes_of_one_built_at_once() -> None:
    """A container whose run form is as small as its plain one (here 3 values in a run
    and 2 alone: 10 bytes either way) keeps the form it had: the state must not depend
    on whether the set was read back from a state between its values (found by the
    processor's any-batching test: a key's bytes differed)."""
    values = [-18.0, -19.0, -20.0, -17.0, -1.0]
    whole = Agg.empty(1, ["count_distinct"])
    whole.add_rows([[v] for v in values])
    stepwise = Agg.empty(1, ["count_distinct"])
    for v in values:
        stepwise = roundtrip(stepwise)
        stepwise.add([v])
    assert orjson.dumps(stepwise.to_state()) == orjson.dumps(whole.to_state())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_distinct_sets_of_thousands_merge_to_the_same_bytes(seed: int) -> None:
    """Enough values per 65536-block for roaring's array, bitmap and run containers."""
    rng = random.Random(seed)
    # Below the bound (about 22 000 distinct values of the 25 000 one field keeps).
    values = [float(rng.randrange(-40_000, 120_000)) for _ in range(15_000)]
    values += [float(v) for v in range(500_000, 507_000)]  # one long run
    values += [rng.uniform(-1, 1) for _ in range(300)]
    rng.shuffle(values)
    whole = Agg.empty(1, ["count_distinct"])
    whole.add_rows([[v] for v in values])
    parts = [Agg.empty(1, ["count_distinct"]) for _ in range(7)]
    for v in values:
        rng.choice(parts).add([v])
    rng.shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged = roundtrip(merged)
        merged.merge(part)
    assert orjson.dumps(merged.to_state()) == orjson.dumps(whole.to_state())
    got = merged.result(["x"], ["count_distinct"])["values"]["x"]["count_distinct"]
    assert got == len(set(values))


def spread_values(rng: random.Random, n: int, kind: str) -> list[float]:
    """``n`` distinct values of the costliest kinds to keep: integers spread over 2**53
    (sparse roaring containers), or floats with 17 significant digits and an exponent."""
    if kind == "spread":
        return [float(v) for v in rng.sample(range(-(1 << 53), 1 << 53), n)]
    return [-rng.random() * 1e-300 for _ in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["spread", "floats"])
def test_a_record_at_the_distinct_bound_fits_one_changelog_record(n: int, kind: str) -> None:
    """Every field at its limit, of the costliest values, with every other metric too:
    the stored record stays below the most a changelog record may hold."""
    rng = random.Random(n)
    limit = distinct_limit(n)
    columns = [spread_values(rng, limit, kind) for _ in range(n)]
    agg = Agg.empty(n, ALL)
    agg.add_rows([list(row) for row in zip(*columns, strict=True)], [(i, i) for i in range(limit)])
    result = agg.result(names(n), ["count_distinct"])["values"]
    assert all(found["count_distinct"] == limit for found in result.values())
    stored = orjson.dumps(KeyRecord(SourceFence(own=limit), agg).to_state())
    assert len(stored) < MAX_BATCH_BYTES


@pytest.mark.parametrize("seed", [1, 2])
def test_a_field_over_the_bound_is_null_in_any_merge_order(seed: int) -> None:
    """Field ``a`` gets one value more than its limit, ``b`` exactly its limit: ``a`` is
    over (None, its sets dropped), ``b`` exact, whatever the batching and merge order,
    with the same bytes; a Python set counts them."""
    rng = random.Random(seed)
    limit = distinct_limit(2)
    a = spread_values(rng, limit + 1, "spread")
    b = [float(v) for v in range(limit)] + [0.0]  # a repeat: limit distinct values
    rows: list[list[float | None]] = [[x, y] for x, y in zip(a, b, strict=True)]
    rows.append([None, -0.0])  # a NULL, and -0.0 == 0.0
    rng.shuffle(rows)
    assert len(set(a)) == limit + 1
    assert len({v for row in rows if (v := row[1]) is not None}) == limit
    whole = Agg.empty(2, ["count_distinct"])
    whole.add_rows(rows)
    parts = [Agg.empty(2, ["count_distinct"]) for _ in range(5)]
    for row in rows:
        rng.choice(parts).add(row)
    rng.shuffle(parts)
    merged = parts[0]
    for part in parts[1:]:
        merged = roundtrip(merged)
        merged.merge(part)
    for agg in (whole, merged):
        found = agg.result(["a", "b"], ["count_distinct"])["values"]
        assert found == {"a": {"count_distinct": None}, "b": {"count_distinct": limit}}
        assert agg.to_state()[-1]["distinct"][0] is None
    assert orjson.dumps(merged.to_state()) == orjson.dumps(whole.to_state())
    # Once over, it stays over, whatever is added or merged.
    merged.add([1.0, 0.0])
    merged.merge(roundtrip(parts[0]))
    assert merged.to_state()[-1]["distinct"][0] is None


def test_an_aggregate_without_extras_keeps_its_bytes_and_refuses_their_metrics() -> None:
    plain, ordered = Agg.empty(1), Agg.empty(1, ORDER_METRICS)
    plain.add([2.0])
    ordered.add([2.0], (5, 0))
    assert plain.to_state() == [1, [1, 2.0, 2.0, [2.0]]]
    assert ordered.to_state()[:-1] == plain.to_state()
    for metric in EXTRA_METRICS:
        with pytest.raises(ValueError, match="made for them"):
            plain.result(["x"], [metric])
    with pytest.raises(ValueError, match="stamp"):
        ordered.add([1.0])
    with pytest.raises(ValueError, match="different"):
        ordered.merge(plain)
    assert roundtrip(ordered).result(["x"], ORDER_METRICS)["values"]["x"]["last"] == 2.0


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
