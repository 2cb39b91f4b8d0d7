"""The slices a fetch is applied in are sized by the time the last one took."""

from __future__ import annotations

from agents.stages.slices import SliceSizer


def test_the_next_slice_takes_about_the_target_at_the_last_slices_cost() -> None:
    sizer = SliceSizer(target_s=0.1, first=100, most=10_000)
    sizer.took(100, 0.5)  # 5 ms a record: 20 fit in 0.1 s
    assert sizer.size == 20
    sizer.took(20, 0.001)  # cheap now: grows, but at most twice the last slice
    assert sizer.size == 40


def test_a_slice_never_holds_more_than_most_nor_fewer_than_one_record() -> None:
    sizer = SliceSizer(target_s=0.1, first=3000, most=4096)
    sizer.took(3000, 0.0)  # too fast to measure
    assert sizer.size == 4096
    sizer.took(4096, 1000.0)  # a record takes longer than the target
    assert sizer.size == 1


def test_an_empty_slice_changes_nothing() -> None:
    sizer = SliceSizer(target_s=0.1, first=64)
    sizer.took(0, 1.0)
    assert sizer.size == 64
