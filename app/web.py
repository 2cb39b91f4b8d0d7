"""The query API: JSON over Faust's web server.

Unknown keys get 404 and bad parameters 400, always with a JSON body that says why.
Nothing here mutates state.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import aiohttp
import aiohttp.typedefs
import aiohttp.web
import faust
from faust.web import Request, Response, View
from yarl import URL

from agents.aggregation import WindowResult
from agents.pipeline import Pipeline, expected_partition
from app.events import datetime_to_ms, ms_to_iso
from app.input_progress import read_input_progress
from app.kafka_client import OffsetQueries
from app.recovery_status import recovery_status
from app.replay_tracker import ReplayTracker
from app.settings import KappaSettings
from tables.windows import starts_between

log = logging.getLogger(__name__)

MAX_PAGE = 1000
ROUTED_HEADER = "X-Kappa-Routed-By"  # a routed request is never routed again
MAX_WINDOWS = 10_000


class BadParameter(Exception):
    pass


@aiohttp.web.middleware
async def errors_as_json(
    request: aiohttp.web.Request, handler: aiohttp.typedefs.Handler
) -> aiohttp.web.StreamResponse:
    """Unknown paths and methods get a JSON error, as every API error does."""
    try:
        return await handler(request)
    except aiohttp.web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = (
            f"no page at {request.path}: the dashboard is at /dashboard, metrics at "
            "/metrics, the API under /api (docs/api.md)"
            if exc.status == 404
            else exc.reason
        )
        return aiohttp.web.json_response({"error": error, "path": request.path}, status=exc.status)


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise BadParameter(f"{name}={value} is out of range; use {low}..{high}")
    return value


def parse_query_time(raw: str) -> int:
    """Epoch milliseconds, or ISO-8601 (naive means UTC, as for event times)."""
    if raw.lstrip("-").isdigit():
        return int(raw)
    return datetime_to_ms(datetime.fromisoformat(raw))


def _time_param(request: Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return parse_query_time(raw)
    except ValueError as exc:
        raise BadParameter(
            f"{name}={raw!r} is not a time; use ISO-8601 (2024-05-01T12:00:00Z) or epoch "
            f"milliseconds ({exc})"
        ) from None


def register_views(
    app: faust.App,
    pipeline: Pipeline,
    tracker: ReplayTracker,
    settings: KappaSettings,
    queries: OffsetQueries,
) -> None:
    owned_partitions = pipeline.owned_partitions

    def unknown_key(view: View, key: str) -> Response:
        partition = expected_partition(key, pipeline.partitions)
        return view.error(404, "unknown key", key=key, partition=partition)

    changelog = pipeline.keys.changelog_topic.get_topic_name()

    def owners() -> dict[str, list[int]]:
        """Which worker (by advertised URL) owns which partitions, as Faust's assignor
        last distributed them."""
        return {
            host: sorted(topics.get(changelog, []))
            for host, topics in app.assignor.table_metadata(changelog).items()
        }

    async def routed(view: View, request: Request, key: str) -> Response | None:
        """Answer from the key's owner when another worker owns it; None when we do."""
        partition = expected_partition(key, pipeline.partitions)
        if partition in owned_partitions():
            return None
        owner = next((h for h, ps in owners().items() if partition in ps), None)
        if owner is None or request.headers.get(ROUTED_HEADER):
            return view.error(
                503,
                f"no worker owns partition {partition} of key {key!r} right now (a rebalance "
                "is under way); retry shortly",
                key=key,
                partition=partition,
            )
        target = URL(owner).with_path(request.url.path).with_query(request.url.query)
        try:
            async with app.http_client.get(
                target, headers={ROUTED_HEADER: settings.resolved_worker_name}
            ) as response:
                body = await response.read()
                return view.bytes(body, content_type="application/json", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return view.error(
                502, f"the owner of partition {partition} at {owner} did not answer ({exc!r})"
            )

    @app.page("/api/keys/{key}")
    class KeyTotals(View):
        async def get(self, request: Request, key: str) -> Response:
            if (response := await routed(self, request, key)) is not None:
                return response
            record = pipeline.read_key(key)
            if record is None:
                return unknown_key(self, key)
            return self.json(
                {
                    "key": key,
                    "totals": record.totals.result(pipeline.spec.values, pipeline.spec.metrics),
                    "last_offset": record.fence,
                }
            )

    @app.page("/api/keys/{key}/windows")
    class KeyWindows(View):
        """A key's windows whose start lies in [from, to): open ones and closed ones that
        are still retained. Without from/to: the retention period up to the watermark."""

        async def get(self, request: Request, key: str) -> Response:
            if (response := await routed(self, request, key)) is not None:
                return response
            record = pipeline.read_key(key)
            if record is None:
                return unknown_key(self, key)
            watermark = pipeline.watermark(expected_partition(key, pipeline.partitions)) or 0
            spec = pipeline.spec
            try:
                name = request.query.get("window")
                windows = [w for w in spec.windows if name in (None, w.name)]
                if not windows:
                    known = ", ".join(w.name for w in spec.windows) or "none"
                    raise BadParameter(
                        f"window={name!r} is not one of this pipeline's windows ({known})"
                    )
                largest = max(w.size_ms for w in windows)
                end = _time_param(request, "to", watermark + spec.lateness_ms + largest)
                start = _time_param(request, "from", end - spec.retention_ms - 2 * largest)
                if end <= start:
                    raise BadParameter("`to` must be after `from`")
                for window in windows:
                    if (end - start) // window.step_ms > MAX_WINDOWS:
                        raise BadParameter(
                            f"from..to spans more than {MAX_WINDOWS} "
                            f"{window.name} windows; narrow the range"
                        )
            except BadParameter as exc:
                return self.error(400, str(exc))
            wanted = {w.name for w in windows}
            results: dict[tuple[str, int], WindowResult | dict[str, Any]] = {
                (r.window, r.start_ms): r
                for r in pipeline.config.open_windows(key, record)
                if r.window in wanted and start <= r.start_ms < end
            }
            for window in windows:
                for s in starts_between(start, end, window):
                    if (window.name, s) in results:
                        continue
                    closed = pipeline.read_closed(key, window.name, s)
                    if closed is not None:
                        results[(window.name, s)] = closed
            ordered = [results[k] for k in sorted(results)]
            return self.json(
                {
                    "key": key,
                    "windows": [r.as_json() if isinstance(r, WindowResult) else r for r in ordered],
                }
            )

    @app.page("/api/keys")
    class Keys(View):
        async def get(self, request: Request) -> Response:
            try:
                limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
            except BadParameter as exc:
                return self.error(400, str(exc))
            after = request.query.get("after", "")
            keys = sorted(k for k in pipeline.keys if k > after)
            page = keys[:limit]
            return self.json({"keys": page, "next": page[-1] if len(keys) > limit else None})

    @app.page("/api/status")
    class Status(View):
        async def get(self, request: Request) -> Response:
            body = await status(app, pipeline, tracker, settings, queries, owned_partitions())
            return self.json({**body, "owners": owners()})


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_iso(ms)


def _iso_s(seconds: float | None) -> str | None:
    """A wall-clock time in epoch seconds (``time.time()``) as ISO-8601 UTC."""
    return None if seconds is None else ms_to_iso(int(seconds * 1000))


def event_times(pipeline: Pipeline, owned: set[int]) -> dict[int, tuple[int, int]]:
    """(watermark, newest event time), in epoch milliseconds, of each owned partition
    that has seen an event: the watermark is the newest event time minus the lateness."""
    lateness = pipeline.spec.lateness_ms
    return {
        p: (watermark, watermark + lateness)
        for p in sorted(owned)
        if (watermark := pipeline.watermark(p)) is not None
    }


def state_sizes(pipeline: Pipeline, owned: set[int]) -> dict[int, dict[str, int]]:
    """Keys and open windows (one per key and window instance) of each owned partition
    that this worker has processed events on: its processor keeps the counts."""
    processors = pipeline.batches.processors
    return {
        p: {"keys": processor.key_count, "open_windows": processor.open_window_count()}
        for p in sorted(owned)
        if (processor := processors.get(p)) is not None
    }


async def status(
    app: faust.App,
    pipeline: Pipeline,
    tracker: ReplayTracker,
    settings: KappaSettings,
    queries: OffsetQueries,
    owned: set[int],
) -> dict[str, Any]:
    progress = await read_input_progress(
        queries, pipeline.names, pipeline.stats.processed_offsets, settings.kafka_query_timeout
    )
    stats = pipeline.stats
    stages = stats.stages
    watermarks = {str(p): pipeline.watermark(p) for p in sorted(owned)}
    times = event_times(pipeline, owned)
    return {
        "worker": settings.resolved_worker_name,
        "url": settings.resolved_advertised_url,
        "pipeline": {"name": pipeline.spec.name, "version": pipeline.spec.version},
        "uptime_s": round(time.time() - stats.started, 1),
        "partitions": pipeline.partitions,
        "partitions_owned": sorted(owned),
        # From a rebalance's start until the tables of the new assignment are ready.
        "rebalancing": bool(app.rebalancing),
        # False when Kafka did not answer in time: offsets, lag and durable counts are
        # then this worker's own or missing.
        "kafka_answered": progress.kafka_answered,
        "watermarks": watermarks,
        "watermarks_iso": {p: _iso(ms) for p, ms in watermarks.items()},
        "newest_event_times": {str(p): newest for p, (_, newest) in times.items()},
        "processed_offsets": {str(p): o for p, o in sorted(progress.processed.items())},
        "end_offsets": {str(p): o for p, o in sorted((progress.end_offsets or {}).items())},
        "lag": {str(p): n for p, n in progress.lag(sorted(owned)).items()},
        "state": {str(p): sizes for p, sizes in state_sizes(pipeline, owned).items()},
        # A version with a cut: its history, the live input after it, and any gap.
        "seam": pipeline.seam_report(sorted(owned)),
        "batches": {
            "first_started_at": stats.first_batch_at,
            "last_stored_at": stats.last_batch_at,
            "first_started_at_iso": _iso_s(stats.first_batch_at),
            "last_stored_at_iso": _iso_s(stats.last_batch_at),
        },
        "replays": tracker.status(progress.processed, owned),
        "recovery": recovery_status(app),
        "counts": {
            "late_events": progress.late_events,
            "dead_letters": progress.dead_letters,
            "events_since_start": stats.events,
            "duplicates_skipped_since_start": stats.duplicates,
            "late_since_start": stats.late,
            "dead_letters_since_start": stats.dead_letters,
            "window_results_since_start": stats.window_results,
            "batches_since_start": stats.batches,
            "gap_records_read_back_since_start": stats.gap_records_read,
            "ack_wait_seconds_since_start": round(pipeline.sender.waited_s, 3),
            "dead_letters_by_reason_since_start": dict(
                sorted(stats.dead_letters_by_reason.items())
            ),
        },
        # Seconds since start in each stage of the worker's batches; ack_wait_s is the
        # part of store_s spent waiting for Kafka's acknowledgements.
        "stages": {
            "fetch_s": round(stages.fetch, 3),
            "decode_s": round(stages.decode, 3),
            "aggregate_s": round(stages.aggregate, 3),
            "store_s": round(stages.store, 3),
            "ack_wait_s": round(pipeline.sender.waited_s, 3),
        },
        "latest_dead_letters": list(stats.recent_dead_letters),
        "latest_late_events": list(stats.recent_late),
    }
