"""The sink as a worker shows it (``GET /api/sink``, the dashboard's sink panel).

It is the survey ``kappa versions`` makes for its sink-lag column (app.sink.versions),
over the worker's own Kafka clients: which version the views show and each version's
lag, or why PostgreSQL did not answer, or that the pipeline has no sink.
"""

from __future__ import annotations

import time
from typing import Any

from app.kafka_client import OffsetQueries
from app.settings import KappaSettings
from app.sink.versions import survey_sink
from app.versions.names import topics_by_version
from tables.times import ms_to_iso


async def sink_status(
    settings: KappaSettings, pipeline: str, offsets: OffsetQueries
) -> dict[str, Any]:
    """The JSON of ``/api/sink``: ``state`` is ``none`` (no sink), ``unreachable``
    (PostgreSQL configured but not answering) or ``ok``."""
    checked_at = ms_to_iso(int(time.time() * 1000))
    versions = sorted(topics_by_version(pipeline, await offsets.topics()))
    survey = await survey_sink(settings, pipeline, versions, offsets.offset_ranges)
    body: dict[str, Any] = {"pipeline": pipeline, "checked_at": checked_at}
    if survey is None:
        return {**body, "state": "none", "views_version": None, "error": None, "versions": []}
    if survey.error is not None:
        return {
            **body,
            "state": "unreachable",
            "views_version": None,
            "error": survey.error,
            "versions": [],
        }
    return {
        **body,
        "state": "ok",
        "views_version": survey.views_version,
        "error": None,
        "versions": [{"version": v, **survey.as_json(v)} for v in versions],
    }
