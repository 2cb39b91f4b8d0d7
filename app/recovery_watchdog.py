"""Stops a worker whose table recovery has stopped moving, rather than let it hang.

Faust waits for a changelog partition for as long as it takes: a partition that stays
offline (every replica's broker down) leaves the worker in recovery for ever, owning
partitions it never processes. The watchdog samples the records left to recover; when
that number has not gone down for ``KAPPA_RECOVERY_STALL_TIMEOUT`` seconds, the worker
logs the reason and exits non-zero, so that its partitions go to a worker that can
recover them, and an operator sees why.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from app.errors import KappaError
from app.recovery_status import recovery_status

log = logging.getLogger(__name__)
CHECK_INTERVAL_S = 5.0


class RecoveryStalled(KappaError):
    """Table recovery made no progress for the configured time."""


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

    async def recovery_watchdog() -> None:
        status = recovery_status(app)
        stuck = detector.observe(
            time.monotonic(), status["in_progress"], status["remaining_records"]
        )
        if stuck is None:
            return
        stalled = RecoveryStalled(
            f"table recovery has not moved for {stuck:.0f}s with "
            f"{status['remaining_records']:,} changelog records left: "
            f"{status['by_changelog']}",
            "check that every partition of those changelog topics has a live leader "
            "(kafka-topics --describe); the worker exits so that its partitions can go "
            "to one that can read them",
        )
        log.critical("%s", stalled)
        await app.crash(stalled)

    app.timer(interval=CHECK_INTERVAL_S)(recovery_watchdog)
