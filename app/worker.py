"""Build the Faust app for a pipeline and run it as a long-lived worker."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, cast

import faust
import mode.loop

from agents import consumer
from agents.custom import CustomAgentContext
from agents.names import PipelineNames
from agents.pipeline import PipelineOptions, WiredPipeline
from agents.spec import PipelineSpec, load_spec
from agents.stages.flush import CommitPolicy
from app import codecs, kafka_outage, loop_probe, recovery_watchdog
from app.dashboard import register_dashboard
from app.kafka_client import OffsetQueries, client_options, on_kafka
from app.metrics import register_metrics
from app.replay.tracker import ReplayTracker
from app.security import faust_credentials
from app.settings import KappaSettings
from app.startup_checks import check_port_free, check_state_dir, quiet
from app.topics import ensure_topics
from app.versions.active import ActiveVersionTracker
from app.versions.input_tail import InputTail
from app.versions.status import VersionStatus
from app.web import errors_as_json, register_views, version_header
from tables.pipeline_tables import MB, STORE_URL, StoreOptions

log = logging.getLogger(__name__)


def create_app(settings: KappaSettings, spec: PipelineSpec, partitions: int) -> WiredPipeline:
    codecs.register()
    names = PipelineNames(spec)
    datadir = state_dir(settings, names)
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        names.app_id,
        broker=[f"{consumer.SCHEME}://{server}" for server in settings.bootstrap.split(",")],
        store=STORE_URL,
        datadir=str(datadir),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout,
        # Kafka's rule of thumb: a third of the session timeout.
        broker_heartbeat_interval=settings.session_timeout / 3,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.resolved_advertised_url,
        broker_credentials=faust_credentials(settings),
        value_serializer=codecs.CODEC,
        key_serializer=codecs.CODEC,
        consumer_auto_offset_reset="earliest",
        # kappa creates its topics itself (app.topics); Faust only declares changelogs.
        topic_allow_declare=True,
        # Faust commits only what its streams acknowledge (custom agents'); the aggregation
        # commits what it has stored itself (agents.stages.flush).
        broker_commit_interval=1.0,
        # With Faust's 1 MB, a worker busy applying a fetch waited about 0.5 s for each
        # next one in side runs; 4 MB fetched 300k records 13 times faster.
        consumer_max_fetch_size=settings.fetch_partition_mb * 1024 * 1024,
        # aiokafka's default is 5 minutes: a group leader that assigned partitions from
        # metadata taken just before a topic (a table's changelog, which Faust creates at
        # start-up) showed up would leave its partitions unassigned that long. A refresh
        # that shows new partitions makes the leader rebalance.
        consumer_metadata_max_age_ms=10_000,
        producer_linger_ms=5,
        web_in_thread=False,
        web_application_options={"middlewares": [version_header(spec.version), errors_as_json]},
    )
    consumer.limit_fetch_wait(app, settings.fetch_wait_ms)
    pipeline = WiredPipeline(app, spec, pipeline_options(settings), partitions)
    seam = pipeline.seam
    tracker = ReplayTracker(settings, names, on_seam=None if seam is None else seam.seal)
    # Faust types this for a Service class, but it starts instances too
    # (App.on_init_extra_service accepts either).
    app.service(cast(Any, tracker))
    queries = OffsetQueries(client_options(settings))
    app.service(cast(Any, queries))  # stopped with the app, which closes its clients
    active = ActiveVersionTracker(settings, spec.name)
    app.service(cast(Any, active))
    tail = InputTail(client_options(settings), pipeline.parser, names.input_topic)
    app.service(cast(Any, tail))
    versions = VersionStatus(
        spec.name,
        spec.version,
        active,
        queries,
        tail,
        names.input_topic,
        settings.kafka_query_timeout,
        tuple(w.name for w in spec.windows),
    )
    register_views(app, pipeline, tracker, settings, queries, versions)
    batches = register_metrics(app, pipeline, tracker, settings, queries)
    pipeline.stats.batch_observer = batches.observe_batch
    register_dashboard(app)
    recovery_watchdog.install(app, settings.recovery_stall_timeout)
    loop_probe.install(app, pipeline.stats)
    kafka_outage.watch(app, settings.bootstrap)
    for module in settings.agent_modules:
        # Custom agents register themselves on import (see agents/example_big_orders.py).
        importlib.import_module(module).register(app, CustomAgentContext(pipeline))
    return pipeline


def state_dir(settings: KappaSettings, names: PipelineNames) -> Path:
    return settings.state_dir / names.prefix / settings.resolved_worker_name


def pipeline_options(settings: KappaSettings) -> PipelineOptions:
    return PipelineOptions(
        kafka=client_options(settings),
        store=StoreOptions(
            block_cache_mb=settings.rocksdb_block_cache_mb,
            memtables_mb=settings.rocksdb_memtables_mb,
            write_buffer_mb=settings.rocksdb_write_buffer_mb,
        ),
        key_cache_bytes=int(settings.key_cache_mb * MB),
        commit=CommitPolicy(
            interval_s=settings.commit_interval_ms / 1000,
            events=settings.commit_events,
            buffer_bytes=settings.write_back_buffer_mb * MB,
            outputs_bytes=settings.outputs_in_flight_mb * MB,
        ),
    )


class KappaWorker(faust.Worker):
    """Faust's worker with a bounded shutdown.

    The first SIGTERM or Ctrl-C stops the worker cleanly: the current batch is written,
    the producer flushed and offsets committed. mode ignores further signals while it
    stops, so a stuck shutdown could only be killed; here a second signal, or a clean
    stop that outlasts ``KAPPA_SHUTDOWN_TIMEOUT``, exits at once. Nothing is lost by
    that: uncommitted events are redelivered and the per-key fences skip what was
    already applied.
    """

    def __init__(
        self, pipeline: WiredPipeline, *args: Any, shutdown_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(pipeline.app, *args, **kwargs)
        self.kappa_pipeline = pipeline
        self.kappa_shutdown_timeout = shutdown_timeout
        # Faust's terminal spinner sets the root logger to DEBUG at levels >= WARNING,
        # so every debug call in aiokafka would build a log record: a worker is a
        # service, not an interactive terminal.
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        kafka_outage.install_filter(logger)

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        url = str(self.kappa_pipeline.app.conf.canonical_url).rstrip("/")
        log.info("ready: the API answers at %s (dashboard %s/dashboard)", url, url)

    async def on_stop(self) -> None:
        # Before Faust stops its consumer and closes the tables: store what is applied.
        await self.kappa_pipeline.batches.on_stop()
        await super().on_stop()

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._signal_stop_time:
            self._force_exit(f"second {signal.name} during shutdown", signal)
        self.loop.call_later(
            self.kappa_shutdown_timeout,
            self._force_exit,
            f"shutdown took longer than {self.kappa_shutdown_timeout:g}s",
            signal,
        )
        super()._schedule_shutdown(signal)

    def _force_exit(self, why: str, signal: signal.Signals) -> None:
        log.warning("%s: exiting now, without a clean shutdown", why)
        logging.shutdown()
        os._exit(128 + signal.value)


# How often the worker collects reference cycles itself (see take_over_garbage_collection).
GC_INTERVAL_S = 30.0


def take_over_garbage_collection(app: faust.App) -> None:
    """Collect reference cycles on a timer instead of on allocation counts.

    A batch allocates millions of short-lived containers (decoded records, events,
    groups, aggregates), and Python starts a collection every 700 of them, whose older
    generations walk every live object: with many keys' state in memory that was most
    of the worker's time (profiled: 3 times the cost of a batch on 100k keys, 10 times
    on hopping windows over 1M keys). The hot path frees its objects by reference
    counting and makes no cycles; the cycles that libraries make (exceptions with their
    tracebacks, futures) are collected every ``GC_INTERVAL_S``. The objects alive at
    start-up (the app, Faust, the libraries) are frozen out of every collection.
    """
    gc.freeze()
    gc.disable()

    async def collect_cycles() -> None:
        started = time.perf_counter()
        found = gc.collect()
        log.debug("collected %d objects in cycles in %.3fs", found, time.perf_counter() - started)

    app.timer(GC_INTERVAL_S, name="kappa.collect-cycles")(collect_cycles)


def run_worker(settings: KappaSettings) -> None:
    if settings.event_loop == "uvloop":
        # Before any loop exists: Faust and aiokafka then run on libuv.
        mode.loop.use("uvloop")
    spec = load_spec(settings.pipeline)
    names = PipelineNames(spec)
    # What can fail on this machine first, then Kafka once: a failed start leaves no
    # topics and no consumer group behind (app.startup_checks).
    check_state_dir(state_dir(settings, names))
    check_port_free(settings.web_host, settings.web_port)
    with quiet("aiokafka"):  # the error says it: aiokafka's log lines would repeat it
        partitions = on_kafka(settings, ensure_topics(settings, names), "The worker did not start.")
    pipeline = create_app(settings, spec, partitions)
    take_over_garbage_collection(pipeline.app)
    worker = KappaWorker(
        pipeline,
        loglevel=settings.log_level.upper(),
        quiet=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    worker.execute_from_commandline()
