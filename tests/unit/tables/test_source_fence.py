"""A record's fence per source input partition (``SourceFence``): an event is applied iff
its offset is past its source's fence, whichever lane it came by."""

from __future__ import annotations

import orjson

from tables.records import SourceFence


def test_a_direct_event_is_judged_by_the_own_fence() -> None:
    fence = SourceFence()
    assert fence.take_new(2, [(2, 0), (2, 7)]) == [(2, 0), (2, 7)]
    assert fence.take_new(2, [(2, 7)]) == []
    assert fence.take_new(2, [(2, 8)]) == [(2, 8)]
    assert fence == SourceFence(own=8)


def test_an_event_applied_directly_is_dropped_when_it_comes_again_through_the_hop() -> None:
    # Input partition 2 grew: its later records hop, and the hop's first run repeats
    # records the direct lane already applied (source 2, offsets up to 7).
    fence = SourceFence(own=7)
    assert fence.take_new(2, [(2, 5), (2, 7), (2, 8)]) == [(2, 8)]


def test_each_source_has_its_own_fence() -> None:
    fence = SourceFence()
    assert fence.take_new(0, [(4, 100)]) == [(4, 100)]
    assert fence.take_new(0, [(4, 100), (5, 3), (0, 0)]) == [(5, 3), (0, 0)]
    assert fence == SourceFence(own=0, others={4: 100, 5: 3})


def test_a_zombies_late_run_is_dropped() -> None:
    # The successor applied source 3's records 10..20; the zombie's run of 10..15 arrives
    # after it, through the hop.
    fence = SourceFence()
    assert len(fence.take_new(1, [(3, offset) for offset in range(10, 21)])) == 11
    assert fence.take_new(1, [(3, offset) for offset in range(10, 16)]) == []


def test_take_new_drops_a_run_sent_twice_even_within_one_batch() -> None:
    fence = SourceFence(own=3)
    items = [(1, 2), (1, 4), (5, 0), (5, 1), (1, 4), (5, 0), (1, 5), (5, 2)]
    assert fence.take_new(1, items) == [(1, 4), (5, 0), (5, 1), (1, 5), (5, 2)]
    assert fence == SourceFence(own=5, others={5: 2})
    assert fence.take_new(1, [(1, 5), (5, 2)]) == []


def test_take_own_is_take_new_for_the_direct_lane() -> None:
    items = [(2, 5), (2, 6), (2, 9)]
    for own in (-1, 5, 6, 9):
        by_own, by_new = SourceFence(own=own, others={4: 1}), SourceFence(own=own, others={4: 1})
        assert by_own.take_own(list(items)) == by_new.take_new(2, list(items))
        assert by_own == by_new


def test_a_direct_only_fence_keeps_the_layout_from_before_the_hop() -> None:
    assert SourceFence(own=42).to_state() == 42
    assert SourceFence.from_state(42) == SourceFence(own=42)


def test_the_state_round_trips_through_json() -> None:
    fence = SourceFence(own=3, others={5: 9, 4: 11})
    state = orjson.loads(orjson.dumps(fence.to_state()))
    assert state == [3, [[4, 11], [5, 9]]]
    assert SourceFence.from_state(state) == fence
