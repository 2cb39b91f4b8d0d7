"""docs/reprocessing.md's scale-out runbook, run as a user types it, while live events
keep arriving: from v1 with 2 partitions to v2 with 6, on two workers.

0. v1 (N = 2, one worker) runs live; the input is grown from 2 partitions to 6 while a
   producer writes, and v1 follows it through its repartition hop;
1. v2's spec asks for `partitions = 6`;
2. two v2 workers start beside v1 and share its partitions;
3. v2 catches up (`kappa versions`, with its repartition topic's lag), `kappa verify`
   passes, `kappa promote --verify` makes it active, v1's worker stops and `kappa
   retire` removes v1.

v2 reads the input from its start: the records produced before the growth are on their
key's partition for 2 and reach their key's partition for 6 through v2's hop, the later
ones are applied where they are. When the live events stop, one closer per state
partition closes every window, and v2's tables, windows and final results equal DuckDB's
over every event produced, each counted once. The lateness exceeds the events' span: the
hop interleaves input partitions in any order (docs/guarantees.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.datagen import DatasetShape, generate
from tests.support.datasets import HOURLY
from tests.support.harness import Harness
from tests.support.hop import assert_hop_equals_batch, closers
from tests.support.kafka import grow_topic, partition_counts, produce_events
from tests.support.runbook import LiveTraffic, run, versions, wait_for
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

OLD, NEW = 2, 6
SHAPE = DatasetShape(events=20_000, keys=150, span_ms=4 * 86_400_000, seed=184)
BEFORE = 4_000  # events produced before the runbook starts, all on 2 partitions
LIVE_RATE = 50.0  # events/s: the 16,000 live events would last 5.3 minutes
# A metadata refresh, a rebalance, and a new version's start on a busy machine.
SETTLE_S = 240


def _input_owned(worker: WorkerProcess) -> list[int]:
    status, body = worker.get("/api/status")
    return list(body["partitions_owned"]) if status == 200 and not body["rebalancing"] else []


def _lag(env: dict[str, str], name: str) -> int:
    """v2's lag on both its topics, as `kappa versions` says (unknown: not caught up)."""
    lag = versions(env, name)[2]["lag_total"]
    return 10**9 if lag is None else int(lag)


def _shared(workers: list[WorkerProcess]) -> bool:
    """Every input partition is owned by one of ``workers``, and each owns some."""
    shares = [set(_input_owned(worker)) for worker in workers]
    owned = [p for share in shares for p in share]
    return all(shares) and sorted(owned) == list(range(NEW))


def test_the_scale_out_runbook_with_live_traffic_throughout(kappa: Harness) -> None:
    name = f"t{kappa.unique}"
    bootstrap = kappa.settings.bootstrap
    events: list[dict[str, Any]] = list(generate(SHAPE))
    v1_spec = kappa.make_spec(lateness="10d", retention="400d", version=1)
    v2_spec = kappa.make_spec(
        lateness="10d", retention="400d", version=2, extra=f"partitions = {NEW}\n"
    )
    v1_env = kappa.env(v1_spec, partitions=OLD)

    v1 = kappa.start_worker(v1_env)
    v1.wait_ready(partitions=OLD)
    asyncio.run(produce_events(bootstrap, kappa.topic, events[:BEFORE], "customer_id"))
    with LiveTraffic(bootstrap, kappa.topic, events[BEFORE:], LIVE_RATE) as live:
        wait_for(lambda: live.sent > 300, 60, "live events to flow")

        # 0. The input grows first; v1 follows it through its hop.
        asyncio.run(grow_topic(bootstrap, kappa.topic, NEW))
        v1.wait_until(lambda: len(_input_owned(v1)) == NEW, SETTLE_S, "v1 to follow the growth")

        # 1-2. v2, with 6 partitions, on two workers beside v1.
        v2_env = kappa.env(v2_spec, partitions=NEW)
        v2 = [kappa.start_worker(v2_env), kappa.start_worker(kappa.env(v2_spec, partitions=NEW))]
        v2[1].wait_until(lambda: _shared(v2), SETTLE_S, "the two v2 workers to share")
        counts = asyncio.run(partition_counts(bootstrap))
        assert counts[f"kappa.{name}.v2.window-results"] == NEW
        assert counts[f"kappa.{name}.v1.window-results"] == OLD  # v1 keeps its own N

        # 3. v2 catches up; its lag counts its repartition topic too.
        wait_for(lambda: _lag(v2_env, name) <= 300, SETTLE_S, "v2 to catch up")
        shown = versions(v1_env, name)
        assert set(shown) == {1, 2}
        assert f"kappa.{name}.v2.repartition" in shown[2]["lag"], shown[2]["lag"]
        # 4-5. verify, then promote with verify, while events keep arriving.
        run(v2_env, "verify", str(v2_spec), "--version", "2")
        run(v2_env, "promote", str(v2_spec), "2", "--verify")
        assert versions(v1_env, name)[2]["active"] is True
        # 6. retire v1, once its worker has stopped.
        assert v1.stop() == 0
        run(v1_env, "retire", name, "1", "--yes")
        assert set(versions(v2_env, name)) == {2}
        assert live.sent < len(events) - BEFORE, "the live traffic ended before the runbook"
        produced = events[:BEFORE] + live.stop()

    # Nothing lost, nothing counted twice: v2 equals the batch answer over every event.
    last = closers(produced, NEW)
    asyncio.run(produce_events(bootstrap, kappa.topic, last, "customer_id"))
    assert_hop_equals_batch(
        v2,
        bootstrap,
        kappa.unique,
        produced + last,
        kappa.tmp_path / "events.csv",
        HOURLY,
        version=2,
    )
    run(v2_env, "verify", str(v2_spec), "--version", "2")
    for worker in v2:
        log = worker.log_path.read_text(errors="replace")
        assert "a batch failed" not in log
        assert "Unrecognized partition" not in log
