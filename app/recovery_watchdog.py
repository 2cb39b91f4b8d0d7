"""Stops a worker whose rebalance or table recovery has stopped moving, rather than
let it hang.

Faust waits for a changelog partition for as long as it takes: a partition that stays
offline (every replica's broker down) leaves the worker in its rebalance or recovery
for ever, owning partitions it never processes. The watchdog samples, from a
rebalance's start until the partitions are ready, the records left to recover; when
that number has not gone down for ``KAPPA_RECOVERY_STALL_TIMEOUT`` seconds, the worker
logs the reason and exits non-zero, so that its partitions go to a worker that can
recover them, and an operator sees why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agents.errors import KappaError
from app.recovery_status import recovery_status

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 5.0


class RecoveryStalled(KappaError):
    """A rebalance or table recovery made no progress for the configured time."""


class StallDetector:
    """Pure: fed samples of the records left to recover, says when they stop changing.

    Fewer records left is progress; more is a rebalance that added partitions to
    recover, a new start. Only a count that stays the same is a stall.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._last: int | None = None
        self._since = 0.0

    def observe(self, now: float, in_progress: bool, remaining: int) -> float | None:
        """The seconds recovery has been stuck, once that reaches the timeout."""
        if not in_progress:
            self._last = None
            return None
        if remaining != self._last:
            self._last, self._since = remaining, now
            return None
        stuck = now - self._since
        return stuck if stuck >= self.timeout_s else None


def install(app: Any, timeout_s: float) -> None:
    detector = StallDetector(timeout_s)
    started = False

    async def watch() -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            await check()

    async def start(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # Not an app.timer: Faust starts timers (and services) only once the first
        # recovery has completed, which is exactly what may never happen. The first
        # rebalance starts with a revocation, so the watchdog starts there.
        nonlocal started
        if not started:
            started = True
            app.add_future(watch())

    async def check() -> None:
        status = recovery_status(app)
        # From a rebalance's start until its partitions are ready: Faust can also hang
        # before its recovery starts (seen when a changelog partition had no leader).
        settling = bool(app.rebalancing) or status["in_progress"]
        stuck = detector.observe(time.monotonic(), settling, status["remaining_records"])
        if stuck is None:
            return
        if status["in_progress"]:
            why = f"table recovery has not moved for {stuck:.0f}s: {_where(app, status)}"
        else:
            why = (
                f"the rebalance has not finished for {stuck:.0f}s: Faust has not started "
                "to recover the tables of the partitions it assigned"
            )
        stalled = RecoveryStalled(
            why,
            "check that every partition of the pipeline's topics and changelog topics "
            "has a live leader (kafka-topics --describe); the worker exits so that its "
            "partitions can go to one that can read them",
        )
        log.critical("%s", stalled)
        await app.crash(stalled)

    app.on_partitions_revoked.connect(start)


def _where(app: Any, status: dict[str, Any]) -> str:
    """Which changelog partitions hold the recovery up."""
    recovery = app.tables.recovery
    # Before it reads any record, Faust asks for each changelog partition's end offset;
    # a partition without a leader never answers, and no record count is known yet.
    unknown = sorted(
        f"{tp.topic}:{tp.partition}"
        for tp in recovery.active_tps
        if recovery.active_highwaters.get(tp) is None
    )
    if unknown:
        return f"the end offsets of changelog partitions {unknown} could not be read"
    return f"{status['remaining_records']:,} changelog records left: {status['by_changelog']}"
