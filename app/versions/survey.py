"""Every version of a pipeline that exists on the cluster, and how far each has got:
what ``kappa versions``, ``kappa promote`` and ``kappa retire`` start from.

Versions are found by name (app.versions.names) among the cluster's topics and consumer
groups. Lag comes from each version's committed offsets, sampled twice for a rate and
an ETA; workers, from the group's members and their advertised URLs; watermarks, state
sizes and the input's newest event time, from those workers' ``/api/status``; the
PostgreSQL sink's lag, from its offsets (app.sink.versions).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from agents.errors import KappaError
from agents.names import repartition_topic, version_prefix
from app.group_status import failure_reason, fetch_status
from app.kafka_client import client_options, offset_ranges
from app.settings import KappaSettings
from app.sink.versions import SinkSurvey, survey_sink
from app.versions.active import ActiveRecord, read_active
from app.versions.catch_up import CatchUp, LagSample, catch_up, partition_lag
from app.versions.group_members import GroupDescription, describe_group
from app.versions.names import topics_by_version, version_groups, version_of
from tables.times import ms_to_iso


@dataclass
class VersionReport:
    version: int
    topics: list[str]
    group: GroupDescription
    input_topics: list[str]  # the topics its lag is counted on
    lag: dict[str, dict[int, int]]  # topic -> partition -> records not processed
    progress: CatchUp | None  # None when the input topic is not known (see survey)
    active: bool
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # URL -> /api/status
    unreachable: dict[str, str] = field(default_factory=dict)  # URL -> why

    @property
    def prefix(self) -> str:
        return self.group.group

    @property
    def urls(self) -> list[str]:
        return sorted({m.url for m in self.group.members if m.url is not None})

    def windows(self) -> tuple[str, ...] | None:
        """The names of the version's windows, as its workers say; None when none
        answered (or all run a kappa that did not say)."""
        said = (body.get("pipeline", {}).get("windows") for body in self.workers.values())
        return next((tuple(names) for names in said if names is not None), None)

    def watermark(self) -> int | None:
        """The version's watermark: the lowest of its partitions' (from its workers)."""
        marks = [
            ms
            for body in self.workers.values()
            for ms in body.get("watermarks", {}).values()
            if ms is not None
        ]
        return min(marks) if marks else None

    def newest_event_times(self) -> dict[int, int]:
        return {
            int(p): ms
            for body in self.workers.values()
            for p, ms in body.get("newest_event_times", {}).items()
        }

    def state(self) -> dict[str, int | None] | None:
        """Keys and open windows over the partitions its answering workers own; a count
        is None while a worker still counts a restarted partition's stored ones."""
        sizes = [s for body in self.workers.values() for s in body.get("state", {}).values()]
        if not self.workers:
            return None
        return {name: _total([s[name] for s in sizes]) for name in ("keys", "open_windows")}

    def seam(self) -> dict[str, Any] | None:
        """Where a version with a cut switches from history files to the live input, over
        its answering workers' partitions (agents/history_seam.py); None without a cut."""
        reports = [body["seam"] for body in self.workers.values() if body.get("seam")]
        if not reports:
            return None
        partitions = {p: part for report in reports for p, part in report["partitions"].items()}
        ordered = sorted(partitions.items(), key=lambda item: int(item[0]))
        return {
            "cut": reports[0]["cut"],
            "cut_ms": reports[0]["cut_ms"],
            "sealed": all(report["sealed"] for report in reports),
            "rows_taken_from_history": sum(p["history_rows_taken"] for p in partitions.values()),
            "live_skipped_before_cut": sum(r["live_skipped_before_cut"] for r in reports),
            "states": {p: part["state"] for p, part in ordered},
            "first_live_offsets": {p: part["first_live_offset"] for p, part in ordered},
            "gap": any(report["gap"] for report in reports),
            "gap_explanation": [line for r in reports for line in r["gap_explanation"]],
        }

    def behind_input_ms(self, input_newest: dict[int, int]) -> int | None:
        """How far its newest event is behind the input's newest, on its worst partition."""
        own = self.newest_event_times()
        gaps = [max(0, input_newest[p] - ms) for p, ms in own.items() if p in input_newest]
        return max(gaps) if gaps else None

    def as_json(self, input_newest: dict[int, int]) -> dict[str, Any]:
        watermark = self.watermark()
        return {
            "version": self.version,
            "active": self.active,
            "consumer_group": self.group.group,
            "group_state": self.group.state,
            "topics": self.topics,
            **(
                self.progress.as_json()
                if self.progress
                else dict.fromkeys(("lag_total", "rate_per_s", "eta_s"))
            ),
            "lag": {t: {str(p): n for p, n in ps.items()} for t, ps in self.lag.items()},
            "eta": None
            if self.progress is None or self.progress.eta_s is None
            else ms_to_iso(int((time.time() + self.progress.eta_s) * 1000)),
            "watermark": watermark,
            "watermark_iso": None if watermark is None else ms_to_iso(watermark),
            "behind_input_ms": self.behind_input_ms(input_newest),
            "state": self.state(),
            "seam": self.seam(),
            "workers": [m.as_json() for m in self.group.members],
            "unreachable": self.unreachable,
        }


@dataclass
class PipelineSurvey:
    pipeline: str
    versions: dict[int, VersionReport]
    active: ActiveRecord | None
    sink: SinkSurvey | None = None  # the PostgreSQL sink, when the pipeline has one

    def input_newest(self) -> dict[int, int]:
        """The input's newest event time per partition, as the workers of any version
        read it from the input topic's last records (``catch_up`` in their status)."""
        newest: dict[int, int] = {}
        for report in self.versions.values():
            for body in report.workers.values():
                times = (body.get("catch_up") or {}).get("input_newest_event_times", {})
                for p, ms in times.items():
                    newest[int(p)] = max(ms, newest.get(int(p), ms))
        return newest

    def get(self, version: int) -> VersionReport:
        if version not in self.versions:
            known = ", ".join(f"v{v}" for v in sorted(self.versions))
            raise KappaError(
                f"pipeline {self.pipeline} has no version {version} on the cluster "
                f"(it has {known})",
                hint=f"`kappa versions {self.pipeline}` lists them",
            )
        return self.versions[version]

    def as_json(self) -> dict[str, Any]:
        newest = self.input_newest()
        latest = max(newest.values()) if newest else None
        return {
            "pipeline": self.pipeline,
            "active": None if self.active is None else self.active.as_json(),
            "input_newest_event_time": latest,
            "input_newest_event_time_iso": None if latest is None else ms_to_iso(latest),
            "versions": [
                {**r.as_json(newest), "sink": None if self.sink is None else self.sink.as_json(v)}
                for v, r in sorted(self.versions.items())
            ],
        }


async def survey(
    settings: KappaSettings,
    pipeline: str,
    input_topic: str | None = None,
    sample_s: float = 2.0,
    only: int | None = None,
) -> PipelineSurvey:
    """Every version of ``pipeline`` (or only version ``only``), with two lag samples
    ``sample_s`` apart. Raises KappaError when the cluster holds no version of it."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        topics = topics_by_version(pipeline, await admin.list_topics())
        groups = version_groups(pipeline, [g[0] for g in await admin.list_consumer_groups()])
        found = sorted(set(topics) | set(groups))
        if not found:
            raise KappaError(
                f"no version of pipeline {pipeline!r} exists on the cluster at "
                f"{settings.bootstrap}",
                hint="check the name (the spec's `name`), KAPPA_BOOTSTRAP_SERVERS, and that "
                "a worker of it ran at least once",
            )
        wanted = found if only is None else [only]
        for version in wanted:
            if version not in found:
                known = ", ".join(f"v{v}" for v in found)
                raise KappaError(
                    f"pipeline {pipeline} has no version {version} on the cluster (it has {known})",
                    hint=f"`kappa versions {pipeline}` lists them",
                )
        active = await read_active(settings, pipeline)
        described = {v: await describe_group(admin, version_prefix(pipeline, v)) for v in found}
        # The versions share the input topic: given by the spec, or whatever topics
        # outside their own namespace any of them has committed offsets on or is assigned.
        shared = {input_topic} if input_topic else set()
        if not shared:
            for group in described.values():
                committed = await admin.list_consumer_group_offsets(group.group)
                read = {tp.topic for tp in committed}
                read |= {t for m in group.members for t in m.partitions}
                shared |= {t for t in read if version_of(pipeline, t) is None}
        reports = {
            version: VersionReport(
                version=version,
                topics=topics.get(version, []),
                group=described[version],
                # Not a version's history topic: its workers read it without the group
                # (agents/history_seam.py), and its live lag, counted from the first
                # retained record until it commits there, bounds what the history leaves.
                # And its repartition hop: a version has caught up once the records
                # sent through it are applied too.
                input_topics=sorted(
                    shared | {repartition_topic(pipeline, version)} & set(topics.get(version, []))
                ),
                lag={},
                progress=None,
                active=active is not None and active.version == version,
            )
            for version in wanted
        }
        if shared:
            samples = [await _lag_sample(settings, admin, reports)]
            if sample_s > 0:
                await asyncio.sleep(sample_s)
                samples.append(await _lag_sample(settings, admin, reports))
            for version, report in reports.items():
                after, report.lag = samples[-1][version]
                before = samples[0][version][0] if len(samples) > 1 else None
                report.progress = catch_up(before, after)
    finally:
        await admin.close()
    await asyncio.gather(*(_ask_workers(report) for report in reports.values()))
    return PipelineSurvey(pipeline, reports, active, await survey_sink(settings, pipeline, reports))


async def _lag_sample(
    settings: KappaSettings, admin: AIOKafkaAdminClient, reports: dict[int, VersionReport]
) -> dict[int, tuple[LagSample, dict[str, dict[int, int]]]]:
    topics = sorted({t for r in reports.values() for t in r.input_topics})
    ranges = await offset_ranges(client_options(settings), topics) if topics else {}
    samples = {}
    for version, report in reports.items():
        committed: dict[str, dict[int, int]] = {}
        for tp, position in (await admin.list_consumer_group_offsets(report.prefix)).items():
            committed.setdefault(tp.topic, {})[tp.partition] = position.offset
        lag = {
            topic: partition_lag(committed.get(topic, {}), ranges[topic])
            for topic in report.input_topics
            if topic in ranges
        }
        total = sum(n for partitions in lag.values() for n in partitions.values())
        samples[version] = (LagSample(time.monotonic(), total), lag)
    return samples


async def _ask_workers(report: VersionReport) -> None:
    async def ask(url: str) -> None:
        try:
            report.workers[url] = await asyncio.to_thread(fetch_status, url, 5.0)
        except (OSError, orjson.JSONDecodeError) as exc:
            report.unreachable[url] = failure_reason(exc)

    await asyncio.gather(*(ask(url) for url in report.urls))


def _total(counts: list[int | None]) -> int | None:
    return None if None in counts else sum(c for c in counts if c is not None)
