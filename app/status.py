"""A worker's ``/api/status``: its partitions, watermarks, lag, state, replays, recovery
and counters, with times in ISO-8601 next to epoch milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust

from agents.pipeline import WiredPipeline
from agents.processor import PartitionProcessor
from app.input_progress import read_input_progress
from app.kafka_client import OffsetQueries
from app.kafka_outage import OUTAGE
from app.recovery_status import recovery_status
from app.replay.tracker import ReplayTracker
from app.settings import KappaSettings
from tables.times import ms_to_iso


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_iso(ms)


def _iso_s(seconds: float | None) -> str | None:
    """A wall-clock time in epoch seconds (``time.time()``) as ISO-8601 UTC."""
    return None if seconds is None else ms_to_iso(int(seconds * 1000))


def event_times(pipeline: WiredPipeline, owned: set[int]) -> dict[int, tuple[int, int]]:
    """(watermark, newest event time), in epoch milliseconds, of each owned partition
    that has seen an event: the watermark is the newest event time minus the lateness."""
    lateness = pipeline.spec.lateness_ms
    return {
        p: (watermark, watermark + lateness)
        for p in sorted(owned)
        if (watermark := pipeline.queries.partition_watermark(p)) is not None
    }


def state_sizes(pipeline: WiredPipeline, owned: set[int]) -> dict[int, dict[str, int | None]]:
    """Keys and open windows (one per key and window instance) of each owned partition
    that this worker has processed events on: its processor keeps the counts."""
    processors = pipeline.batches.processors
    return {
        p: {"keys": processor.key_count, "open_windows": processor.open_window_count()}
        for p in sorted(owned)
        if (processor := processors.get(p)) is not None
    }


def partitions_where(
    pipeline: WiredPipeline, owned: set[int], test: Callable[[PartitionProcessor], bool]
) -> list[int]:
    """The owned partitions whose processor has started and passes ``test``."""
    processors = pipeline.batches.processors
    return [
        p for p in sorted(owned) if (processor := processors.get(p)) is not None and test(processor)
    ]


async def status(
    app: faust.App,
    pipeline: WiredPipeline,
    tracker: ReplayTracker,
    settings: KappaSettings,
    queries: OffsetQueries,
    owned: set[int],
) -> dict[str, Any]:
    progress = await read_input_progress(
        queries,
        pipeline.names,
        pipeline.stats.processed_offsets,
        settings.kafka_query_timeout,
        pipeline.stats.hop_offsets,
    )
    stats = pipeline.stats
    stages = stats.stages
    # The state partitions this worker owns: the input's while the input has N
    # partitions, else those of the repartition hop (assigned with the tables).
    states = pipeline.owned_states()
    watermarks = {str(p): pipeline.queries.partition_watermark(p) for p in sorted(states)}
    times = event_times(pipeline, states)
    return {
        "worker": settings.resolved_worker_name,
        "url": settings.resolved_advertised_url,
        "pipeline": {
            "name": pipeline.spec.name,
            "version": pipeline.spec.version,
            # The names its windows have in the query API and in its results.
            "windows": [w.name for w in pipeline.spec.windows],
            # Those of them that are session windows (the dashboard lists a key's).
            "sessions": [w.name for w in pipeline.config.sessions],
        },
        "uptime_s": round(time.time() - stats.started, 1),
        "partitions": pipeline.partitions,
        "partitions_owned": sorted(owned),
        # From a rebalance's start until the tables of the new assignment are ready.
        "rebalancing": bool(app.rebalancing),
        # False when Kafka did not answer in time: offsets, lag and durable counts are
        # then this worker's own or missing.
        "kafka_answered": progress.kafka_answered,
        # Since when the Kafka client has failed to connect (ISO-8601), or None.
        "kafka_unreachable_since": OUTAGE.since_iso,
        "watermarks": watermarks,
        "watermarks_iso": {p: _iso(ms) for p, ms in watermarks.items()},
        "newest_event_times": {str(p): newest for p, (_, newest) in times.items()},
        # With an idle_timeout: the partitions whose watermark an idle advance moved, until
        # their next record.
        "idle_partitions": partitions_where(pipeline, states, lambda p: p.progress.idle),
        # Those with windows their watermark passed left to close, or closed windows their
        # retention passed left to delete (in steps, PartitionProcessor.close_step; until
        # then queries read a window not closed yet from its panes, not final, and a
        # closed one until it is deleted). A partition is listed in "state" once its
        # processor has started (at its first record, or the first commit interval after
        # it is assigned), and only then here.
        "closing": partitions_where(pipeline, states, lambda p: p.closing),
        "processed_offsets": {str(p): o for p, o in sorted(progress.processed.items())},
        # The repartition hop's aggregate lane: its topic, the state partitions this
        # worker owns, the last offset of each whose effects are stored, the topic's end
        # offsets and the records of the owned partitions still to apply.
        "hop": {
            "topic": pipeline.names.repartition_topic,
            "partitions_owned": sorted(states),
            "processed_offsets": {str(p): o for p, o in sorted(progress.hop_processed.items())},
            "end_offsets": {str(p): o for p, o in sorted((progress.hop_end_offsets or {}).items())},
            "lag": {str(p): n for p, n in progress.hop_lag(sorted(states)).items()},
            "records_sent_since_start": pipeline.batches.hop.sent,
        },
        "end_offsets": {str(p): o for p, o in sorted((progress.end_offsets or {}).items())},
        "lag": {str(p): n for p, n in progress.lag(sorted(owned)).items()},
        "state": {str(p): sizes for p, sizes in state_sizes(pipeline, states).items()},
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
            "filtered_since_start": stats.filtered,
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
        # The longest time the event loop was held at once since start (app/loop_probe.py).
        "event_loop": {"longest_stall_s": round(stats.longest_loop_stall, 3)},
        "latest_dead_letters": list(stats.recent_dead_letters),
        "latest_late_events": list(stats.recent_late),
    }
