"""The sink's Prometheus metrics, served at ``/metrics`` on ``KAPPA_SINK_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from app.settings import KappaSettings

LABELS = ("pipeline", "version")


class SinkMetrics:
    def __init__(self, pipeline: str, version: int) -> None:
        self.registry = CollectorRegistry()
        self._labels = {"pipeline": pipeline, "version": str(version)}
        r = self.registry
        self.rows = Counter(
            "kappa_sink_rows_written",
            "Rows upserted into PostgreSQL, by table (windows, totals)",
            [*LABELS, "table"],
            registry=r,
        )
        self.dead_letters = Counter(
            "kappa_sink_dead_letters",
            "Records written to the dead-letter table",
            LABELS,
            registry=r,
        )
        self.transactions = Histogram(
            "kappa_sink_transaction_seconds",
            "Time of one PostgreSQL transaction of rows and offsets",
            LABELS,
            registry=r,
        )
        self.lag = Gauge(
            "kappa_sink_lag_records",
            "Records of a topic partition not yet written to PostgreSQL",
            [*LABELS, "topic", "partition"],
            registry=r,
        )
        self.up = Gauge(
            "kappa_sink_postgres_up",
            "1 while PostgreSQL accepts the sink's writes",
            LABELS,
            registry=r,
        )
        self.retries = Counter(
            "kappa_sink_postgres_retries", "Failed attempts to reach PostgreSQL", LABELS, registry=r
        )

        # Every series exists from the start, at 0: a retry counter that appears only
        # after the first failure cannot be rated or alerted on before it.
        for table in ("windows", "totals"):
            self.rows.labels(**self._labels, table=table)
        self.dead_letters.labels(**self._labels)
        self.retries.labels(**self._labels)

    def serve(self, settings: KappaSettings) -> None:
        if settings.sink_metrics_port:
            start_http_server(settings.sink_metrics_port, settings.web_host, registry=self.registry)

    def wrote(self, windows: int, totals: int, dead_letters: int, seconds: float) -> None:
        self.rows.labels(**self._labels, table="windows").inc(windows)
        self.rows.labels(**self._labels, table="totals").inc(totals)
        self.dead_letters.labels(**self._labels).inc(dead_letters)
        self.transactions.labels(**self._labels).observe(seconds)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(**self._labels, topic=topic, partition=str(partition)).set(lag)

    def set_up(self, up: bool) -> None:
        self.up.labels(**self._labels).set(1 if up else 0)

    def retried(self) -> None:
        self.retries.labels(**self._labels).inc()
