"""The recovery watchdog's stall detection: a changing count resets the clock, a count
that stays the same for the timeout trips it."""

from __future__ import annotations

from app.recovery_watchdog import StallDetector


def test_steady_progress_never_trips() -> None:
    detector = StallDetector(timeout_s=30)
    for second, remaining in enumerate(range(1000, 0, -10)):
        assert detector.observe(float(second * 10), True, remaining) is None


def test_no_progress_for_the_timeout_trips_with_the_time_stuck() -> None:
    detector = StallDetector(timeout_s=30)
    assert detector.observe(0.0, True, 500) is None
    assert detector.observe(10.0, True, 400) is None  # progress: the clock restarts here
    assert detector.observe(35.0, True, 400) is None
    assert detector.observe(40.0, True, 400) == 30.0


def test_a_count_that_grows_is_a_new_start_not_a_stall() -> None:
    # A rebalance can add partitions to recover: the clock restarts, and the larger
    # count must then go down again.
    detector = StallDetector(timeout_s=30)
    assert detector.observe(0.0, True, 100) is None
    assert detector.observe(20.0, True, 900) is None
    assert detector.observe(45.0, True, 800) is None
    assert detector.observe(70.0, True, 800) is None
    assert detector.observe(75.0, True, 800) == 30.0


def test_the_end_of_recovery_forgets_the_past() -> None:
    detector = StallDetector(timeout_s=30)
    assert detector.observe(0.0, True, 100) is None
    assert detector.observe(20.0, False, 0) is None
    assert detector.observe(45.0, True, 100) is None  # a new recovery, a new clock
    assert detector.observe(70.0, True, 100) is None
    assert detector.observe(75.0, True, 100) == 30.0
