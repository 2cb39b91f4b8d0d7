"""The sink in ``kappa versions``, ``promote`` and ``retire``.

A pipeline has a sink when its views exist in PostgreSQL (the first version a sink
writes creates them). Then ``kappa versions`` shows each version's sink lag,
``kappa promote`` refuses a version whose tables are behind and switches the views to
it, and ``kappa retire`` refuses the version the views show and drops its tables.
Without PostgreSQL configured or running, nothing changes for a pipeline without a sink.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from agents.errors import Refused
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings
from app.sink.schema import VersionTables
from app.sink.views import (
    PostgresUnreachable,
    SinkLag,
    connect,
    drop_version,
    first_line,
    sink_lag,
    stored_offsets,
    switch_views,
    view_version,
)


@dataclass
class SinkSurvey:
    """The pipeline's sink: which version its views show, and each version's lag; or why
    PostgreSQL could not be asked."""

    views_version: int | None = None
    lags: dict[int, SinkLag] = field(default_factory=dict)
    error: str | None = None

    def as_json(self, version: int) -> dict[str, Any]:
        lag = self.lags.get(version)
        return {
            "views": self.views_version == version,
            "started": lag is not None and lag.started,
            "lag_total": None if lag is None else lag.total,
            "lag": None
            if lag is None
            else {t: {str(p): n for p, n in ps.items()} for t, ps in lag.lag.items()},
            "error": self.error,
        }


def _configured(settings: KappaSettings) -> bool:
    """Whether a PostgreSQL is meant to be there: a URL, or a local server created."""
    return settings.postgres_url is not None or (settings.home / "postgres" / "data").exists()


# The survey answers ``/api/sink`` and ``kappa versions``: a locked table or a stalled
# server is reported as such rather than holding the caller.
SURVEY_STATEMENT_TIMEOUT_MS = 3000

OffsetRanges = Callable[[list[str]], Awaitable[dict[str, dict[int, tuple[int, int]]]]]


async def survey_sink(
    settings: KappaSettings,
    pipeline: str,
    versions: Iterable[int],
    ranges_of: OffsetRanges | None = None,
) -> SinkSurvey | None:
    """The sink of ``pipeline``, or None when it has none (no PostgreSQL, no views).
    ``ranges_of`` reads the topics' offsets (a worker passes its open clients); by
    default, one-off clients do."""
    try:
        conn = await connect(settings, SURVEY_STATEMENT_TIMEOUT_MS)
    except PostgresUnreachable as exc:
        return SinkSurvey(error=exc.reason) if _configured(settings) else None
    schema = settings.postgres_schema
    wanted = [VersionTables(pipeline, v, schema) for v in versions]
    topics = [t for tables in wanted for t in tables.source_topics]
    try:
        async with conn:
            shown = await view_version(conn, VersionTables(pipeline, 0, schema))
            if shown is None:
                return None
            stored = await stored_offsets(conn, schema, topics)
    except psycopg.OperationalError as exc:  # gone or timed out mid-survey
        return SinkSurvey(error=first_line(exc))
    if ranges_of is None:
        ranges = await offset_ranges(client_options(settings), topics)
    else:
        ranges = await ranges_of(topics)
    lags = {
        tables.version: sink_lag(
            tables.version,
            {
                topic: {p: end for p, (_, end) in ranges.get(topic, {}).items()}
                for topic in tables.source_topics
            },
            stored,
        )
        for tables in wanted
    }
    return SinkSurvey(shown, lags)


def promotion_sink_refusal(
    pipeline: str, version: int, sink: SinkSurvey | None, max_lag: int
) -> Refused | None:
    """Why the views cannot switch to ``version`` now, or None (also without a sink)."""
    if sink is None:
        return None
    if sink.error is not None:
        return Refused(
            f"v{version} of {pipeline} cannot be promoted: its sink's PostgreSQL does not "
            f"answer ({sink.error}), so its views could not switch",
            hint="start PostgreSQL (`kappa postgres start`) or fix KAPPA_POSTGRES_URL, "
            "and promote again",
        )
    lag = sink.lags.get(version)
    if lag is None or not lag.started:
        return Refused(
            f"v{version} of {pipeline} cannot be promoted: no sink has written its tables, "
            "and the views would show nothing",
            hint=f"start `kappa sink postgres` with the v{version} spec, wait until "
            f"`kappa versions {pipeline}` shows its sink lag near 0, and promote again",
        )
    if lag.total > max_lag:
        return Refused(
            f"v{version} of {pipeline} cannot be promoted: its sink is {lag.total:,} records "
            f"behind, more than KAPPA_PROMOTE_MAX_LAG={max_lag:,}",
            hint=f"wait until `kappa versions {pipeline}` shows its sink caught up, then "
            "promote again",
        )
    return None


def retire_sink_refusal(pipeline: str, version: int, sink: SinkSurvey | None) -> Refused | None:
    """Why ``version``'s tables cannot be dropped now, or None."""
    if sink is None:
        return None
    if sink.error is not None:
        return Refused(
            f"v{version} of {pipeline} cannot be retired: its sink's PostgreSQL does not "
            f"answer ({sink.error}), so its tables could not be dropped",
            hint="start PostgreSQL or fix KAPPA_POSTGRES_URL, and retire again",
        )
    if sink.views_version == version:
        return Refused(
            f"the views {VersionTables(pipeline, version, '').windows_view} and "
            f"{VersionTables(pipeline, version, '').totals_view} show v{version}: readers "
            "read its tables",
            hint=f"promote another version first (`kappa promote {pipeline} N`), then retire "
            f"v{version}",
        )
    return None


async def switch_to(settings: KappaSettings, pipeline: str, version: int) -> None:
    conn = await connect(settings)
    async with conn:
        await switch_views(conn, VersionTables(pipeline, version, settings.postgres_schema))


async def drop_tables(settings: KappaSettings, pipeline: str, version: int) -> bool:
    tables = VersionTables(pipeline, version, settings.postgres_schema)
    conn = await connect(settings)
    async with conn:
        return await drop_version(conn, tables, tables.source_topics)
