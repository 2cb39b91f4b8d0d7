"""The invariant, asserted: what the workers hold equals the batch computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.oracle import batch_results, session_results
from tests.support.results import (
    api_results,
    key_differences,
    topic_finals,
    wait_processed,
    window_differences,
)
from tests.support.times import DAY, ms
from tests.support.worker import WorkerProcess


def assert_equals_batch(
    workers: list[WorkerProcess],
    bootstrap: str,
    unique: str,
    history: Path,
    events: list[dict[str, Any]],
    windows: list[tuple[str, int, int]],
    sessions: tuple[str, int] | None = None,
) -> None:
    """Once ``workers`` have processed the whole input topic: every key's totals, every
    window (and, given its name and gap, every session) and every final result in the
    output topic equal DuckDB's over ``history``."""
    wait_processed(workers, bootstrap, f"test-input-{unique}")
    want_totals, want_windows = batch_results(history, windows)
    if sessions is not None:
        want_windows |= session_results(history, *sessions)
    times = [ms(e["ts"]) for e in events]
    totals, got_windows, final = api_results(
        workers, set(want_totals), min(times) - 2 * DAY, max(times) + 2 * DAY
    )
    assert totals == want_totals, key_differences(totals, want_totals)
    assert got_windows.keys() == want_windows.keys(), window_differences(got_windows, want_windows)
    assert got_windows == want_windows
    finals = topic_finals(bootstrap, f"kappa.t{unique}.v1.window-results")
    assert finals, "no window closed"
    assert finals == {k: v for k, v in got_windows.items() if final[k]}
