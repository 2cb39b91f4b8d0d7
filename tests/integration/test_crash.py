"""``kill -9`` a worker in the middle of a replay, or of closing windows, restart it:
nothing lost, nothing twice.

The worker is killed while ``kappa replay`` is still producing (slowed with ``--rate``),
and restarts on the same state dir, or on an empty one (rebuilt from the changelogs). In
one case the replay is killed with it and resumed with the same ``--id``. Besides hourly
windows, the pipeline keeps sessions with a 1-hour gap (a key has an event about every
72 minutes), whose records move and merge as events arrive.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.datagen import generate, write
from tests.support.datasets import (
    CRASH,
    HOPPING_BACKLOG_WINDOWS,
    HOURLY,
    ONE_DAY_MANY_KEYS,
)
from tests.support.harness import Harness
from tests.support.hop import closers
from tests.support.invariant import assert_equals_batch
from tests.support.worker import run_kappa

pytestmark = pytest.mark.broker


# Slow enough that the replay is still producing when the worker is killed.
REPLAY_RATE = "1500"
SESSIONS = ("session/1h", 3_600_000)


@pytest.mark.parametrize(
    ("kill_after", "lose_state", "kill_replay"),
    [(0.3, False, False), (0.6, False, True), (0.5, True, False)],
    ids=["early", "late, replay killed too", "state dir lost"],
)
def test_kill_minus_nine_mid_replay_then_restart(
    kill_after: float,
    lose_state: bool,
    kill_replay: bool,
    kappa: Harness,
) -> None:
    events: list[dict[str, Any]] = list(generate(CRASH))
    path = kappa.tmp_path / "history.csv"
    write(iter(events), path)
    env = kappa.env(
        kappa.make_spec(windows='{ size = "1h" }, { gap = "1h" }', retention="30d"),
        partitions=2,
        KAPPA_SESSION_TIMEOUT="8",  # the killed worker leaves the group sooner
    )
    first = kappa.start_worker(env)
    first.wait_ready(partitions=2)
    replay_args = ["replay", str(path), "--id", "crash", "--rate", REPLAY_RATE]
    replaying = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *replay_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def processed() -> int:
        counts = first.get("/api/status")[1]["counts"]
        return int(counts["events_since_start"])

    first.wait_until(lambda: processed() >= kill_after * len(events), 120, "some progress")
    first.kill()
    assert replaying.poll() is None, "the replay ended before the worker was killed"
    if kill_replay:
        replaying.send_signal(signal.SIGKILL)
        replaying.wait(timeout=30)
        run_kappa(env, *replay_args[:4])  # the same id resumes, at full speed
    else:
        _, stderr = replaying.communicate(timeout=120)
        assert replaying.returncode == 0, stderr.decode(errors="replace")
    if lose_state:
        # The host's disk is gone too: the new worker rebuilds from the changelogs.
        shutil.rmtree(Path(env["KAPPA_HOME"]) / "state")

    second = kappa.start_worker(env)
    second.wait_ready(partitions=2)
    assert_equals_batch(
        [second], kappa.settings.bootstrap, kappa.unique, path, events, HOURLY, SESSIONS
    )


def test_kill_minus_nine_mid_closing_then_restart_closes_the_rest(kappa: Harness) -> None:
    """One event far after a day of hopping windows on 4,000 keys closes them all: in
    steps of a 1 MB write-back buffer, each stored with the input's checkpoint. The
    worker is killed between two steps, after the last record's checkpoint is stored,
    and restarted with no record to come: it resumes the closing by itself, and every
    window closes once, equal to DuckDB's."""
    events: list[dict[str, Any]] = list(generate(ONE_DAY_MANY_KEYS))
    events += closers(events, 1)
    path = kappa.tmp_path / "history.csv"
    write(iter(events), path)
    env = kappa.env(
        kappa.make_spec(windows='{ size = "1d", step = "1h" }', retention="60d"),
        partitions=1,
        KAPPA_WRITE_BACK_BUFFER_MB="1",
        KAPPA_SESSION_TIMEOUT="8",
    )
    first = kappa.start_worker(env)
    first.wait_ready(partitions=1)
    run_kappa(env, "replay", str(path))

    def cut_short() -> bool:
        body = first.get("/api/status")[1]
        stored: int | None = body["processed_offsets"].get("0")
        return stored == len(events) - 1 and body["closing"] == [0]

    first.wait_until(cut_short, 120, "the last record stored mid-closing", poll_s=0.02)
    first.kill()

    second = kappa.start_worker(env)
    second.wait_ready(partitions=1)
    assert_equals_batch(
        [second], kappa.settings.bootstrap, kappa.unique, path, events, HOPPING_BACKLOG_WINDOWS
    )
