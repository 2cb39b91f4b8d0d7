"""The generated data: the same for the same seed, and able to catch an inexact sum.

The integration tests compare kappa's sums with the correctly rounded sum of the same
values (``math.fsum``), exactly. That can only catch an inexact implementation if the
data makes inexact sums come out different: here, for every dataset the integration
tests compare (tests/support/datasets.py), a plain running sum in arrival order, and a
sum rounded to a float after every batch, differ from ``math.fsum`` for some groups.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from app.datagen import DatasetShape, generate
from tests.support.datasets import COMPARED, Window
from tests.support.times import ms, starts_holding

FIELDS = ("amount", "quantity")
Group = tuple[str, str, int]  # kind ("totals" or a window's name), key, window start
Arrivals = list[tuple[int, float]]  # (arrival index, value) in arrival order


def _groups(event: dict[str, Any], windows: list[Window]) -> Iterator[Group]:
    """The key's totals, and every window the event is in."""
    key, ts = event["customer_id"], ms(event["ts"])
    yield "totals", key, 0
    for name, size, step in windows:
        for start in starts_holding(ts, size, step):
            yield name, key, start


def _values_by_group(
    events: list[dict[str, Any]], field: str, windows: list[Window]
) -> dict[Group, Arrivals]:
    groups: dict[Group, Arrivals] = defaultdict(list)
    for i, event in enumerate(events):
        if (value := event[field]) is not None:
            for group in _groups(event, windows):
                groups[group].append((i, value))
    return groups


def _running_sum(arrivals: Arrivals) -> float:
    """Left to right in arrival order, rounding after every addition."""
    total = 0.0
    for _, value in arrivals:
        total += value
    return total


def _rounded_between_batches(arrivals: Arrivals, batch: int) -> float:
    """Exact within each batch of ``batch`` arrivals, but kept as one float between them."""
    total = 0.0
    for _, chunk in itertools.groupby(arrivals, key=lambda arrival: arrival[0] // batch):
        total = math.fsum([total, *(value for _, value in chunk)])
    return total


def _exact(arrivals: Arrivals) -> float:
    return math.fsum(value for _, value in arrivals)


@pytest.fixture(scope="module", params=list(COMPARED))
def dataset(request: pytest.FixtureRequest) -> tuple[list[dict[str, Any]], list[Window]]:
    shape, windows = COMPARED[request.param]
    return list(generate(shape)), windows


@pytest.mark.parametrize("field", FIELDS)
def test_a_running_sum_in_arrival_order_is_inexact_for_some_keys_and_windows(
    dataset: tuple[list[dict[str, Any]], list[Window]], field: str
) -> None:
    events, windows = dataset
    groups = _values_by_group(events, field, windows)
    inexact = {
        kind
        for (kind, _, _), arrivals in groups.items()
        if _running_sum(arrivals) != _exact(arrivals)
    }
    assert inexact == {"totals", *(name for name, _, _ in windows)}


@pytest.mark.parametrize("field", FIELDS)
def test_a_sum_rounded_between_batches_is_inexact_for_some_keys(
    dataset: tuple[list[dict[str, Any]], list[Window]], field: str
) -> None:
    """A state that keeps only the rounded total between batches (ten per dataset)."""
    events, _ = dataset
    batch = len(events) // 10
    totals = _values_by_group(events, field, [])
    assert any(
        _rounded_between_batches(arrivals, batch) != _exact(arrivals)
        for arrivals in totals.values()
    )


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    shape = DatasetShape(events=500, keys=20, seed=4)
    assert list(generate(shape)) == list(generate(shape))
    assert list(generate(shape)) != list(generate(DatasetShape(events=500, keys=20, seed=5)))


def test_values_are_short_decimals_of_many_magnitudes_with_nulls() -> None:
    shape = DatasetShape(events=20_000, null_fraction=0.05)
    events = list(generate(shape))
    for field, places in (("amount", 4), ("quantity", 3)):
        values = [e[field] for e in events]
        present = [v for v in values if v is not None]
        assert 0.03 < 1 - len(present) / len(values) < 0.07
        # The float nearest to a decimal of at most ``places`` places (round is exact).
        assert all(v > 0 and round(v, places) == v for v in present)
        assert any(isinstance(v, int) for v in present)
        assert {math.floor(math.log10(v)) for v in present} >= set(range(-places, 4))
        assert sum(v != round(v, 2) for v in present) > len(present) // 10


def test_events_stay_within_the_disorder_of_the_newest_before_them() -> None:
    shape = DatasetShape(events=5_000, disorder_ms=60_000)
    newest = -math.inf
    for event in generate(shape):
        ts = ms(event["ts"])
        assert ts >= newest - shape.disorder_ms
        newest = max(newest, ts)


def test_order_values_look_like_orders() -> None:
    """The demo's and the example history's data: dollars and cents up to 3,000, 1-12
    items; the tests' datasets stay adversarial."""
    events = list(generate(DatasetShape(events=20_000, seed=4, values="orders")))
    amounts = [e["amount"] for e in events if e["amount"] is not None]
    quantities = [e["quantity"] for e in events if e["quantity"] is not None]
    assert all(0 < a <= 3_000 and round(a, 2) == a for a in amounts)
    assert 20 <= sorted(amounts)[len(amounts) // 2] <= 80  # a typical order: tens of dollars
    assert all(isinstance(q, int) and 1 <= q <= 12 for q in quantities)
    assert DatasetShape().values == "adversarial"
