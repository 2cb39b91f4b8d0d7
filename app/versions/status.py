"""A worker's view of its pipeline's versions: its own version's catch-up for
``/api/status`` (under ``catch_up``), the active version for ``GET /api/active``, and
which worker of the active version owns a key's partition, for query routing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from agents.names import version_prefix
from app.kafka_client import OffsetQueries
from app.versions.active import ActiveRecord, ActiveVersionTracker
from app.versions.catch_up import LagSample, LagSampler
from app.versions.group_members import GroupDescription
from app.versions.input_tail import InputTail
from tables.times import ms_to_iso

log = logging.getLogger(__name__)

# How long a worker reuses what it learnt of the active version's group membership.
OWNERS_TTL_S = 2.0
# Longest a status request waits for the input's newest event times.
TAIL_WAIT_S = 0.5


class VersionStatus:
    def __init__(
        self,
        pipeline: str,
        version: int,
        tracker: ActiveVersionTracker,
        queries: OffsetQueries,
        tail: InputTail,
        input_topic: str,
        wait_s: float,
        windows: tuple[str, ...],
    ) -> None:
        self.pipeline = pipeline
        self.version = version
        self.windows = windows
        self.tracker = tracker
        self.queries = queries
        self.tail = tail
        self.input_topic = input_topic
        self.wait_s = wait_s
        self.sampler = LagSampler()
        self._owners: tuple[float, int, dict[int, str]] | None = None  # (at, version, owners)
        self._tail_read: asyncio.Future[dict[int, int]] | None = None

    @property
    def active(self) -> ActiveRecord | None:
        return self.tracker.active

    def forward_to(self) -> int | None:
        """The version queries go to when it is not this worker's own, else None."""
        active = self.tracker.active
        return None if active is None or active.version == self.version else active.version

    async def active_owners(self, version: int) -> dict[int, str]:
        """Input partition -> advertised URL of the active version's worker that owns
        it, from that version's group membership (cached for ``OWNERS_TTL_S``)."""
        now = time.monotonic()
        if self._owners is not None:
            at, cached_version, owners = self._owners
            if cached_version == version and now - at < OWNERS_TTL_S:
                return owners
        group: GroupDescription = await self._bounded(
            self.queries.group(version_prefix(self.pipeline, version))
        )
        owners = group.owners(self.input_topic)
        self._owners = (now, version, owners)
        return owners

    async def _bounded(self, query: Any) -> Any:
        async with asyncio.timeout(self.wait_s):
            return await query

    async def _input_newest(self, ends: dict[int, int]) -> dict[int, int]:
        """The input's newest event times, waiting at most ``TAIL_WAIT_S`` for a fresh
        read: a status request must stay quick, so a slow read finishes in the
        background (bounded by the Kafka query timeout) and a later request gets it."""
        if self._tail_read is None or self._tail_read.done():
            self._tail_read = asyncio.ensure_future(self._bounded(self.tail.newest(ends)))
            self._tail_read.add_done_callback(_log_failure)
        done, _ = await asyncio.wait({self._tail_read}, timeout=TAIL_WAIT_S)
        read = next(iter(done), None)
        if read is not None and not read.cancelled() and read.exception() is None:
            newest: dict[int, int] = read.result()
            return newest
        return self.tail.known(ends)

    def active_json(self) -> dict[str, Any]:
        active = self.tracker.active
        return {
            "pipeline": self.pipeline,
            "active": None if active is None else active.as_json(),
            "control_topic": self.tracker.topic,
            "this_worker_version": self.version,
            "this_worker_windows": list(self.windows),
        }

    async def catch_up(self, status: dict[str, Any]) -> dict[str, Any]:
        """This version's catch-up, from the offsets and event times ``status`` holds
        (the rest of ``/api/status``): lag over every input partition (the group's
        committed offsets where another worker owns it), the rate it shrinks at and an
        ETA, the watermark, and how far its newest event is behind the input's."""
        ends = {int(p): end for p, end in status["end_offsets"].items()}
        processed = {int(p): o for p, o in status["processed_offsets"].items()}
        lag = {p: max(0, end - 1 - processed.get(p, -1)) for p, end in sorted(ends.items())}
        progress = (
            self.sampler.add(LagSample(time.monotonic(), sum(lag.values())))
            if status["kafka_answered"] and ends
            else None
        )
        input_newest = await self._input_newest(ends)
        own_newest = {int(p): ms for p, ms in status["newest_event_times"].items()}
        behind = {
            str(p): max(0, input_newest[p] - ms)
            for p, ms in sorted(own_newest.items())
            if p in input_newest
        }
        watermarks = [ms for ms in status["watermarks"].values() if ms is not None]
        watermark = min(watermarks) if watermarks else None
        eta_s = None if progress is None else progress.eta_s
        active = self.tracker.active
        return {
            "version": self.version,
            # None until a version of the pipeline was promoted.
            "active_version": None if active is None else active.version,
            "active": None if active is None else active.version == self.version,
            "lag": None if progress is None else {str(p): n for p, n in lag.items()},
            "lag_total": None if progress is None else progress.lag,
            "rate_per_s": None if progress is None else progress.as_json()["rate_per_s"],
            "eta_s": None if eta_s is None else round(eta_s, 1),
            "eta": None if eta_s is None else ms_to_iso(int((time.time() + eta_s) * 1000)),
            "watermark": watermark,
            "watermark_iso": None if watermark is None else ms_to_iso(watermark),
            "input_newest_event_times": {str(p): ms for p, ms in input_newest.items()},
            "input_newest_event_time_iso": ms_to_iso(max(input_newest.values()))
            if input_newest
            else None,
            "behind_input_ms": behind,
        }


def _log_failure(read: asyncio.Future[dict[int, int]]) -> None:
    if not read.cancelled() and (exc := read.exception()) is not None:
        log.warning("newest input event times unavailable (%r)", exc)
