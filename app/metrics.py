"""A worker's Prometheus metrics, served at ``/metrics`` by prometheus-client.

Two kinds of collector answer a scrape:

- ``WorkerCollector`` reads the worker's live objects when it is scraped: the pipeline's
  counters, its processors (watermarks, keys, open windows), the replay tracker, Faust's
  recovery and rebalance state, and the input's offsets from Kafka (read just before,
  bounded by ``KAPPA_KAFKA_QUERY_TIMEOUT``, so a scrape during a rebalance or a recovery
  answers, with ``kappa_rebalancing``, ``kappa_recovering`` and ``kappa_kafka_answered``
  saying what is going on);
- ``BatchMetrics`` holds the histograms that the hot path observes once per batch.

Every series carries the ``pipeline`` and ``version`` labels, and per-partition series a
``partition`` label, for the partitions this worker owns. docs/metrics.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterator

import faust
from faust.web import Request, Response, View
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from agents.pipeline import WiredPipeline
from app.input_progress import InputProgress, read_input_progress
from app.kafka_client import OffsetQueries
from app.kafka_outage import OUTAGE
from app.replay.tracker import ReplayTracker, report_number
from app.settings import KappaSettings
from app.status import event_times, state_sizes
from tables.faust_store import remaining_by_changelog, standby_remaining

LABELS = ("pipeline", "version")
# A batch is a few milliseconds to a few seconds (a broker that is slow to acknowledge).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Up to KAPPA_BATCH_MAX events (1000 by default).
SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def pipeline_labels(pipeline: WiredPipeline) -> tuple[str, str]:
    return pipeline.spec.name, str(pipeline.spec.version)


class BatchMetrics:
    """Histograms of the batches, observed once per batch by the pipeline."""

    def __init__(self, pipeline: WiredPipeline) -> None:
        self.duration = Histogram(
            "kappa_batch_duration_seconds",
            "Time to apply a fetch of input records, and to store them when a flush is due",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.size = Histogram(
            "kappa_batch_size_events",
            "Input records per batch, a fetch (good, bad and duplicate)",
            LABELS,
            buckets=SIZE_BUCKETS,
            registry=None,
        )
        labels = pipeline_labels(pipeline)
        self._duration = self.duration.labels(*labels)
        self._size = self.size.labels(*labels)

    def observe_batch(self, seconds: float, events: int) -> None:
        self._duration.observe(seconds)
        self._size.observe(events)

    def collect(self) -> Iterator[Metric]:
        yield from self.duration.collect()
        yield from self.size.collect()


class WorkerCollector:
    """Everything but the histograms, read from the worker's objects at scrape time."""

    def __init__(
        self,
        app: faust.App,
        pipeline: WiredPipeline,
        tracker: ReplayTracker,
        settings: KappaSettings,
        progress: InputProgress,
    ) -> None:
        self.app = app
        self.pipeline = pipeline
        self.tracker = tracker
        self.settings = settings
        self.progress = progress
        self.base = list(pipeline_labels(pipeline))

    def _counter(
        self, name: str, doc: str, value: float, labels: tuple[str, ...] = (), *values: str
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(name, doc, labels=[*LABELS, *labels])
        family.add_metric([*self.base, *values], value)
        return family

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*LABELS, *labels])

    def _single(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = self._gauge(name, doc)
        family.add_metric(self.base, value)
        return family

    def collect(self) -> Iterator[Metric]:
        yield from self._identity()
        yield from self._counters()
        yield from self._partitions()
        yield from self._hop()
        yield from self._recovery()
        yield from self._replays()

    def _identity(self) -> Iterator[Metric]:
        info = InfoMetricFamily(
            "kappa_worker", "The worker, and the pipeline version it runs", labels=LABELS
        )
        info.add_metric(
            self.base,
            {
                "worker": self.settings.resolved_worker_name,
                "url": self.settings.resolved_advertised_url,
            },
        )
        yield info
        yield self._single(
            "kappa_rebalancing",
            "1 from the start of a consumer-group rebalance until the tables of the new "
            "assignment are ready",
            float(bool(self.app.rebalancing)),
        )
        yield self._single(
            "kappa_recovering",
            "1 while tables are rebuilt from their changelogs",
            float(bool(self.app.in_recovery)),
        )
        yield self._single(
            "kappa_kafka_answered",
            "1 when Kafka answered this scrape's offset queries in time; when 0, the lag, "
            "end offsets and topic record counts are missing",
            float(self.progress.kafka_answered),
        )
        since = OUTAGE.since
        yield self._single(
            "kappa_kafka_unreachable_since_seconds",
            "When this worker's Kafka client started failing to connect (Unix time); 0 "
            "while Kafka is reachable",
            since or 0.0,
        )
        if since is not None:
            unreachable = InfoMetricFamily(
                "kappa_kafka_unreachable",
                "Kafka is unreachable from this worker, since (ISO-8601)",
                labels=LABELS,
            )
            unreachable.add_metric(self.base, {"since": OUTAGE.since_iso or ""})
            yield unreachable
        yield self._single(
            "kappa_partitions", "Partitions of the input topic", self.pipeline.partitions
        )
        yield self._single(
            "kappa_partitions_owned",
            "Input partitions assigned to this worker",
            len(self.pipeline.owned_partitions()),
        )

    def _counters(self) -> Iterator[Metric]:
        stats = self.pipeline.stats
        counter = self._counter
        yield counter(
            "kappa_events_processed_total",
            "Events applied to the tables since the worker started",
            stats.events,
        )
        yield counter(
            "kappa_late_events_total",
            "Events behind the watermark since the worker started: counted in the totals, "
            "kept out of windows, written to the late topic",
            stats.late,
        )
        dead = CounterMetricFamily(
            "kappa_dead_letters_total",
            "Records sent to the dead-letter topic since the worker started, by reason",
            labels=[*LABELS, "reason"],
        )
        for reason, count in sorted(stats.dead_letters_by_reason.items()):
            dead.add_metric([*self.base, reason], count)
        yield dead
        yield counter(
            "kappa_events_filtered_total",
            "Events the pipeline's where left out since the worker started (not dead letters)",
            stats.filtered,
        )
        yield counter(
            "kappa_duplicates_skipped_total",
            "Redelivered records skipped since the worker started (already applied)",
            stats.duplicates,
        )
        yield counter(
            "kappa_window_results_total",
            "Final window results emitted since the worker started",
            stats.window_results,
        )
        yield counter(
            "kappa_gap_records_read_total",
            "Input records that did not come through the stream and were read back from Kafka",
            stats.gap_records_read,
        )
        yield counter(
            "kappa_flushes_total",
            "Stores of the applied state and outputs (when caught up, or per commit interval)",
            stats.flushes,
        )
        stages = CounterMetricFamily(
            "kappa_stage_seconds_total",
            "Time spent in each stage of the batches: fetch (waiting for and taking the next "
            "fetch), decode, aggregate, store",
            labels=[*LABELS, "stage"],
        )
        for stage in ("fetch", "decode", "aggregate", "store"):
            stages.add_metric([*self.base, stage], getattr(stats.stages, stage))
        yield stages
        yield self._single(
            "kappa_event_loop_longest_stall_seconds",
            "The longest time the event loop was held at once since the worker started "
            "(requests are answered only between)",
            stats.longest_loop_stall,
        )
        yield counter(
            "kappa_ack_wait_seconds_total",
            "Time spent waiting for Kafka to acknowledge the batches' outputs and state",
            self.pipeline.sender.waited_s,
        )
        for name, doc, records in (
            ("kappa_late_topic_records", "Records in the late topic", self.progress.late_events),
            (
                "kappa_dead_letter_topic_records",
                "Records in the dead-letter topic (the worker's and replays' bad records)",
                self.progress.dead_letters,
            ),
        ):
            if records is not None:
                yield self._single(name, doc, records)

    def _partitions(self) -> Iterator[Metric]:
        pipeline, progress = self.pipeline, self.progress
        owned = sorted(pipeline.owned_partitions())
        yield from self._offsets(
            ("kappa_input_processed_offset", "The last input offset whose effects are stored"),
            ("kappa_input_end_offset", "The input partition's next offset (Kafka's)"),
            ("kappa_consumer_lag_records", "Input records after the last processed one"),
            progress.processed,
            progress.end_offsets,
            progress.lag(owned),
            owned,
        )
        partition = ("partition",)
        watermark = self._gauge(
            "kappa_watermark_timestamp_seconds",
            "The partition's watermark: its newest event time minus the allowed lateness",
            partition,
        )
        newest = self._gauge(
            "kappa_newest_event_timestamp_seconds",
            "The newest event time seen on the partition",
            partition,
        )
        keys = self._gauge(
            "kappa_state_keys",
            "Keys in the partition's state (partitions that processed events since start)",
            partition,
        )
        windows = self._gauge(
            "kappa_state_open_windows",
            "Stored panes of open windows in the partition's state: one per key and"
            " tumbling window, one per key and pane of hopping windows",
            partition,
        )
        # State partitions: the input's while it has N partitions, else the hop's.
        states = pipeline.owned_states()
        sizes = state_sizes(pipeline, states)
        times = event_times(pipeline, states)
        for p in sorted(states):
            labels = [*self.base, str(p)]
            if p in times:
                watermark.add_metric(labels, times[p][0] / 1000)
                newest.add_metric(labels, times[p][1] / 1000)
            # Unknown (None) while a restarted partition's stored keys are counted.
            if (key_count := sizes.get(p, {}).get("keys")) is not None:
                keys.add_metric(labels, key_count)
            if (window_count := sizes.get(p, {}).get("open_windows")) is not None:
                windows.add_metric(labels, window_count)
        yield from (watermark, newest, keys, windows)

    def _hop(self) -> Iterator[Metric]:
        """The repartition hop's two ends: what this worker sent on, and how far the
        state partitions it owns are through the repartition topic."""
        progress = self.progress
        states = sorted(self.pipeline.owned_states())
        yield self._counter(
            "kappa_hop_records_sent_total",
            "Input records sent on through the repartition hop since the worker started",
            self.pipeline.batches.hop.sent,
        )
        yield from self._offsets(
            (
                "kappa_hop_processed_offset",
                "The last repartition offset whose effects are stored",
            ),
            ("kappa_hop_end_offset", "The repartition partition's next offset (Kafka's)"),
            ("kappa_hop_lag_records", "Repartition records after the last stored one"),
            progress.hop_processed,
            progress.hop_end_offsets,
            progress.hop_lag(states),
            states,
        )

    def _offsets(
        self,
        processed_doc: tuple[str, str],
        end_doc: tuple[str, str],
        lag_doc: tuple[str, str],
        processed: dict[int, int],
        ends: dict[int, int] | None,
        lags: dict[int, int],
        partitions: list[int],
    ) -> Iterator[Metric]:
        """A topic's processed offset, end offset and lag, per partition of ``partitions``
        that has them."""
        partition = ("partition",)
        families = [self._gauge(*doc, partition) for doc in (processed_doc, end_doc, lag_doc)]
        for family, values in zip(families, (processed, ends or {}, lags), strict=True):
            for p in partitions:
                if p in values:
                    family.add_metric([*self.base, str(p)], values[p])
        yield from families

    def _recovery(self) -> Iterator[Metric]:
        yield self._single(
            "kappa_recovery_records_remaining",
            "Changelog records still to read before this worker's partitions are ready",
            sum(remaining_by_changelog(self.app).values()),
        )
        yield self._single(
            "kappa_recovery_standby_records_remaining",
            "Changelog records still to read for this worker's standby replicas",
            standby_remaining(self.app),
        )

    def _replays(self) -> Iterator[Metric]:
        replay = ("replay",)
        rows = CounterMetricFamily(
            "kappa_replay_rows_produced_total",
            "History rows a replay has produced to the input topic",
            labels=[*LABELS, *replay],
        )
        bad = CounterMetricFamily(
            "kappa_replay_bad_rows_total",
            "History rows a replay sent to the dead-letter topic",
            labels=[*LABELS, *replay],
        )
        read = CounterMetricFamily(
            "kappa_replay_read_bytes_total",
            "Bytes of its files a replay has read (when the replay reports them)",
            labels=[*LABELS, *replay],
        )
        size = self._gauge(
            "kappa_replay_size_bytes",
            "Bytes of a replay's files (when the replay reports them)",
            replay,
        )
        rate = self._gauge(
            "kappa_replay_rows_per_second",
            "A running replay's rate since its previous report, or a finished one's average",
            replay,
        )
        running = self._gauge("kappa_replay_running", "1 while a replay produces", replay)
        done = self._gauge(
            "kappa_replay_processed",
            "1 once a replay is complete and this worker has processed its partitions up to "
            "where it ended",
            replay,
        )
        behind = self._gauge(
            "kappa_replay_records_behind",
            "Records of a complete replay that this worker has still to process",
            (*replay, "partition"),
        )
        owned = self.pipeline.owned_partitions()
        for report in self.tracker.status(self.progress.processed, owned):
            labels = [*self.base, str(report["id"])]
            rows.add_metric(labels, report_number(report, "produced") or 0)
            bad.add_metric(labels, report_number(report, "bad_rows") or 0)
            for family, field in ((read, "bytes_read"), (size, "bytes_total")):
                if (value := report_number(report, field)) is not None:
                    family.add_metric(labels, value)
            if report["rows_per_second"] is not None:
                rate.add_metric(labels, report["rows_per_second"])
            running.add_metric(labels, float(report.get("state") == "running"))
            done.add_metric(labels, float(report["processed_by_this_worker"]))
            for p, records in sorted(report["records_behind"].items()):
                behind.add_metric([*labels, str(p)], records)
        yield from (rows, bad, read, size, rate, running, done, behind)


def register_metrics(
    app: faust.App,
    pipeline: WiredPipeline,
    tracker: ReplayTracker,
    settings: KappaSettings,
    queries: OffsetQueries,
) -> BatchMetrics:
    """Serve ``/metrics``; returns the histograms for the pipeline to observe."""
    # A ``_created`` series per histogram is noise in the text format (Prometheus
    # ignores it) and doubles the families a reader sees.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    batches = BatchMetrics(pipeline)
    process = ProcessCollector(registry=None)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            progress = await read_input_progress(
                queries,
                pipeline.names,
                pipeline.stats.processed_offsets,
                settings.kafka_query_timeout,
                pipeline.stats.hop_offsets,
            )
            registry = CollectorRegistry()
            registry.register(WorkerCollector(app, pipeline, tracker, settings, progress))
            registry.register(batches)
            registry.register(process)
            encode, content_type = choose_encoder(request.headers.get("Accept", ""))
            return self.bytes(encode(registry), headers={"Content-Type": content_type})

    return batches
