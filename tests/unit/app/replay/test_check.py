"""What a replay checks before producing: the bad-row limit, and the events that would be
late, counted against an independent fold of kappa's lateness policy."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.partition_columns import partitions_of
from agents.partitions import default_partition
from app.replay.check import BadRowLimit, Disorder


@pytest.mark.parametrize(
    ("text", "count", "share"),
    [
        ("0", 0, None),
        ("10", 10, None),
        (" 7 ", 7, None),
        ("0.1%", None, Fraction(1, 1000)),
        ("100%", None, Fraction(1)),
        ("0%", None, Fraction(0)),
        ("0.001", None, Fraction(1, 1000)),
        ("0.5", None, Fraction(1, 2)),
        ("1e-3", None, Fraction(1, 1000)),
    ],
)
def test_a_limit_is_a_count_or_a_share(text: str, count: int | None, share: Fraction) -> None:
    limit = BadRowLimit.parse(text)
    assert (limit.count, limit.share) == (count, share)


@pytest.mark.parametrize("text", ["", "-1", "1.5", "1.0", "150%", "-1%", "ten", "nan", "inf%", "%"])
def test_a_bad_limit_says_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"a number of rows \(10\), a percentage \(0.1%\)"):
        BadRowLimit.parse(text)


def test_what_a_limit_allows() -> None:
    assert BadRowLimit().allows(0, 100)
    assert not BadRowLimit().allows(1, 100)
    assert BadRowLimit.parse("3").allows(3, 3)
    assert not BadRowLimit.parse("3").allows(4, 1000)
    assert BadRowLimit.parse("0.1%").allows(1, 1000)
    assert not BadRowLimit.parse("0.1%").allows(2, 1999)  # 1.999 rows allowed: exact, no float
    assert BadRowLimit.parse("0.1%").allows(2, 2000)
    assert BadRowLimit.parse("100%").allows(5, 5)


def late_by_fold(
    events: list[tuple[str, int]], partitions: int, lateness_ms: int
) -> tuple[int, int]:
    """kappa's policy, one event at a time: late iff its time is before the newest time
    seen on its partition before it minus the lateness. Also the largest lag behind."""
    newest: dict[int, int] = {}
    late = behind = 0
    for key, ts in events:
        partition = default_partition(key.encode(), partitions)
        if partition in newest:
            late += ts < newest[partition] - lateness_ms
            behind = max(behind, newest[partition] - ts)
            newest[partition] = max(newest[partition], ts)
        else:
            newest[partition] = ts
    return late, behind


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(-50, 50)), max_size=60
    ),
    partitions=st.integers(min_value=1, max_value=4),
    lateness_ms=st.integers(min_value=0, max_value=20),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=4),
)
def test_would_be_late_is_the_fold_of_the_lateness_policy(
    events: list[tuple[str, int]], partitions: int, lateness_ms: int, cuts: list[int]
) -> None:
    disorder = Disorder(lateness_ms)
    bounds = [0, *sorted(cuts), len(events)]
    for start, end in itertools.pairwise(bounds):  # the events in batches
        keys = pa.array([key for key, _ in events[start:end]], pa.string())
        times = pa.array([ts for _, ts in events[start:end]], pa.int64())
        disorder.add(partitions_of(keys, partitions), times)
    late, behind = late_by_fold(events, partitions, lateness_ms)
    assert (disorder.late, disorder.max_behind_ms, disorder.events) == (late, behind, len(events))
