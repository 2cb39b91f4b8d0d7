"""How long the event loop was held: a worker answers its API only between callbacks.

A task sleeps ``EVERY_S`` again and again; how much later than asked it wakes is how long
something else held the loop (a fetch being applied, a flush). The longest such stall
since the worker started is in ``/api/status`` (``event_loop``) and ``/metrics``, and the
benchmark reports it per run (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agents.stats import WorkerStats

EVERY_S = 0.05


def install(app: Any, stats: WorkerStats) -> None:
    """Run the probe as one of the app's tasks, for as long as the worker runs."""

    async def probe() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + EVERY_S
            await asyncio.sleep(EVERY_S)
            stats.loop_stalled(loop.time() - due)

    app.task(probe)
