"""Closing windows' results built from shared parts (``SharedResults``): each is the
window's result from its own aggregate, and its bytes are the very bytes orjson gives for
its JSON object, whatever the key (quotes, escapes, any Unicode) and the values."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tables.aggregates import METRICS, Agg
from tables.aggregation_config import AggregationConfig, SharedResults
from tables.windows import aligned_window

HOUR_MS = 3_600_000
HOPPING = aligned_window("1d/1h", 24 * HOUR_MS, HOUR_MS)
TUMBLING = aligned_window("1h", HOUR_MS, HOUR_MS)
# Values whose sums need several terms (1e16 + 1.0 - 1e16), with NULLs and -0.0, within
# the float range (a sum that leaves it is refused before any result is built).
values = st.none() | st.floats(-1e300, 1e300) | st.sampled_from([1e16, -1e16, 1.0, 0.1, -0.0])


def config(metrics: tuple[str, ...]) -> AggregationConfig:
    return AggregationConfig(("x", "y"), metrics, (TUMBLING, HOPPING), 0, HOUR_MS)


def agg_of(rows: list[tuple[float | None, float | None]]) -> Agg:
    agg = Agg.empty(2)
    for row in rows:
        agg.add(row)
    return agg


@settings(max_examples=200)
@given(
    keys=st.lists(st.text(), min_size=1, max_size=4),
    rows=st.lists(st.tuples(values, values), max_size=5),
    starts=st.lists(st.integers(-(10**13), 10**13), min_size=1, max_size=4),
    metrics=st.sampled_from([METRICS, ("count",), ("sum", "max"), ()]),
)
def test_each_result_is_its_own_and_encodes_as_orjson_encodes_its_json(
    keys: list[str],
    rows: list[tuple[float | None, float | None]],
    starts: list[int],
    metrics: tuple[str, ...],
) -> None:
    shared = SharedResults(config(metrics))
    aggs = [agg_of(rows), agg_of(rows[:1])]
    for key in keys:
        for start in starts:
            for window in (TUMBLING, HOPPING):
                for agg in aggs:
                    result = shared.final(key, window, start, window.end(start), agg)
                    assert (result.key, result.window, result.start_ms, result.final) == (
                        key,
                        window.name,
                        start,
                        True,
                    )
                    assert result.end_ms == window.end(start)
                    assert result.result == agg.result(("x", "y"), metrics)
                    assert result.encoded == orjson.dumps(result.as_json())
