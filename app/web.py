"""The query API: JSON over Faust's web server.

Unknown keys get 404 and bad parameters 400, always with a JSON body that says why.
Nothing here mutates state.
"""

from __future__ import annotations

import logging

import aiohttp
import aiohttp.typedefs
import aiohttp.web
import faust
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View

from agents.partitions import expected_partition
from agents.pipeline import WiredPipeline
from app.kafka_client import OffsetQueries
from app.key_routing import VERSION_HEADER, KeyRouter
from app.query_params import BadParameter, int_param, window_range
from app.replay.tracker import ReplayTracker
from app.settings import KappaSettings
from app.status import status
from app.versions.status import VersionStatus

log = logging.getLogger(__name__)

MAX_PAGE = 1000


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


def version_header(version: int) -> aiohttp.typedefs.Middleware:
    """Every answer says which version gave it, unless it already does (forwarded)."""

    @aiohttp.web.middleware
    async def add_version(
        request: aiohttp.web.Request, handler: aiohttp.typedefs.Handler
    ) -> aiohttp.web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault(VERSION_HEADER, str(version))
        return response

    return add_version


def register_views(
    app: faust.App,
    pipeline: WiredPipeline,
    tracker: ReplayTracker,
    settings: KappaSettings,
    offsets: OffsetQueries,
    versions: VersionStatus,
) -> None:
    spec, state = pipeline.spec, pipeline.queries
    router = KeyRouter(
        app,
        pipeline.tables.ownership_changelog,
        settings.resolved_worker_name,
        versions,
        pipeline.behind,
    )

    async def routed(view: View, request: Request, key: str) -> Response | None:
        partition = expected_partition(key, pipeline.partitions)
        owned = pipeline.owned_states()
        return await router.answer_elsewhere(view, request, key, partition, owned)

    def unknown_key(view: View, key: str) -> Response:
        partition = expected_partition(key, pipeline.partitions)
        return view.error(404, "unknown key", key=key, partition=partition)

    @app.page("/api/keys/{key}")
    class KeyTotals(View):
        async def get(self, request: Request, key: str) -> Response:
            if (response := await routed(self, request, key)) is not None:
                return response
            partition = expected_partition(key, pipeline.partitions)
            record = state.key(key, partition)
            if record is None:
                return unknown_key(self, key)
            return self.json(
                {
                    "key": key,
                    "totals": record.totals.result(spec.values, spec.metrics),
                    "last_offset": record.fence.own,
                    # Through the repartition hop a key's events come from several input
                    # partitions: the last applied offset of each (verify's fences).
                    "source_offsets": {
                        str(p): o for p, o in sorted(record.fence.by_source(partition).items())
                    },
                }
            )

    @app.page("/api/keys/{key}/windows")
    class KeyWindows(View):
        """A key's windows whose start lies in [from, to): open ones and closed ones that
        are still retained. Without from/to: the retention period up to the watermark."""

        async def get(self, request: Request, key: str) -> Response:
            if (response := await routed(self, request, key)) is not None:
                return response
            partition = expected_partition(key, pipeline.partitions)
            record = state.key(key, partition)
            if record is None:
                return unknown_key(self, key)
            try:
                windows, start, end = window_range(
                    spec, request.query, state.partition_watermark(partition) or 0
                )
            except BadParameter as exc:
                return self.error(400, str(exc))
            found = state.windows(key, partition, windows, start, end)
            return self.json({"key": key, "windows": found})

    @app.page("/api/keys")
    class Keys(View):
        async def get(self, request: Request) -> Response:
            try:
                limit = int_param(request.query, "limit", 100, 1, MAX_PAGE)
            except BadParameter as exc:
                return self.error(400, str(exc))
            # Keys are never empty: an empty ``after`` starts from the first, as none does.
            after_key = request.query.get("after") or None
            page, after = state.keys_page(pipeline.owned_states(), after_key, limit)
            return self.json({"keys": page, "next": after})

    @app.page("/api/status")
    class Status(View):
        async def get(self, request: Request) -> Response:
            owned = pipeline.owned_partitions()
            body = await status(app, pipeline, tracker, settings, offsets, owned)
            return self.json(
                {**body, "owners": router.owners(), "catch_up": await versions.catch_up(body)}
            )

    @app.page("/api/sink")
    class Sink(View):
        """The pipeline's PostgreSQL sink: its views' version and each version's lag."""

        async def get(self, request: Request) -> Response:
            # Imported here: psycopg (about 24 MB) loads once the sink is first asked
            # about, not in every worker.
            from app.sink.status import sink_status

            try:
                body = await sink_status(settings, spec.name, offsets)
            except KafkaError as exc:
                return self.error(503, f"Kafka did not answer the sink's offsets: {exc}")
            return self.json(body)

    @app.page("/api/active")
    class Active(View):
        """The pipeline's active version and its results topic, on any worker."""

        async def get(self, request: Request) -> Response:
            return self.json(versions.active_json())
