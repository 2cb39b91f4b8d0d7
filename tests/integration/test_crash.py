"""``kill -9`` a worker in the middle of a replay, restart it: nothing lost, nothing twice.

The worker restarts on the same state dir, or on an empty one (rebuilt from the
changelogs).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from app.datagen import generate, write
from tests.support.datasets import CRASH, HOURLY
from tests.support.harness import Harness
from tests.support.invariant import assert_equals_batch
from tests.support.worker import run_kappa

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    ("kill_after", "lose_state"),
    [(0.3, False), (0.6, False), (0.5, True)],
    ids=["early", "late", "state dir lost"],
)
def test_kill_minus_nine_mid_replay_then_restart(
    kill_after: float,
    lose_state: bool,
    kappa: Harness,
) -> None:
    events: list[dict[str, Any]] = list(generate(CRASH))
    path = kappa.tmp_path / "history.csv"
    write(iter(events), path)
    env = kappa.env(
        kappa.make_spec(windows='{ size = "1h" }', retention="30d"),
        partitions=2,
        KAPPA_SESSION_TIMEOUT="8",  # the killed worker leaves the group sooner
    )
    first = kappa.start_worker(env)
    first.wait_ready(partitions=2)
    run_kappa(env, "replay", str(path))

    def processed() -> int:
        counts = first.get("/api/status")[1]["counts"]
        return int(counts["events_since_start"])

    first.wait_until(lambda: processed() >= kill_after * len(events), 120, "some progress")
    first.kill()
    if lose_state:
        # The host's disk is gone too: the new worker rebuilds from the changelogs.
        shutil.rmtree(Path(env["KAPPA_HOME"]) / "state")

    second = kappa.start_worker(env)
    second.wait_ready(partitions=2)
    assert_equals_batch([second], kappa.settings.bootstrap, kappa.unique, path, events, HOURLY)
