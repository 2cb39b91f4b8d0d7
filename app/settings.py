"""kappa's one settings object.

Every option is read from an environment variable prefixed ``KAPPA_`` (for example
``KAPPA_WEB_PORT``) and has the default shown here. ``KAFKA_BOOTSTRAP_SERVERS`` is
accepted as well as ``KAPPA_BOOTSTRAP_SERVERS`` because that is the name most Kafka
tooling uses.
"""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOCAL_HOST = "127.0.0.1"


class KappaSettings(BaseSettings):
    """Configuration for the CLI, the worker and the local broker."""

    model_config = SettingsConfigDict(env_prefix="KAPPA_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAPPA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="An existing Kafka cluster (host:port,...). When set, kappa starts no broker.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How to connect to Kafka."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism (with SASL_*)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle (with *SSL).")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    ssl_key_password: SecretStr | None = Field(default=None, description="Client key password.")
    home: Path = Field(
        default=Path("var"),
        description="Runtime directory: local broker data and logs, worker state, pid files.",
    )
    cache_dir: Path = Field(
        default=Path(".cache"),
        description="Where the Apache Kafka jars fetched from Maven Central are kept.",
    )
    kafka_version: str = Field(default="3.9.1", description="Apache Kafka release to run.")
    kafka_port: int = Field(default=19092, ge=1, le=65535, description="Local broker port.")
    kafka_nodes: int = Field(
        default=1, ge=1, le=5, description="Local brokers to run (each is broker+controller)."
    )
    kafka_heap: str = Field(default="768m", description="JVM heap of each local broker.")
    kafka_start_timeout: float = Field(
        default=90.0, gt=0, description="Seconds to wait for the local broker to answer."
    )
    pipeline: Path = Field(
        default=Path("examples/orders.toml"), description="The pipeline spec the worker runs."
    )
    partitions: int = Field(
        default=4, ge=1, description="Partitions of the topics kappa creates for a pipeline."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of the topics kappa creates."
    )
    standby_replicas: int = Field(
        default=0, ge=0, description="Standby table replicas kept by other workers."
    )
    session_timeout: float = Field(
        default=45.0,
        ge=6,
        le=1800,
        description="Seconds without a heartbeat before the group gives a dead worker's "
        "partitions to the others (Kafka's default; the broker allows 6 to 1800).",
    )
    recovery_stall_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a rebalance or table recovery may make no progress before "
        "the worker exits with the reason, rather than hang.",
    )
    kafka_query_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Seconds a status request, a metrics scrape or the dashboard waits for "
        "Kafka's offsets (lag, durable counts); past it they answer without them and say so.",
    )
    promote_max_lag: int = Field(
        default=1000,
        ge=0,
        description="`kappa promote` refuses a version with more input records than this "
        "not yet processed (still catching up).",
    )
    web_host: str = Field(default=LOCAL_HOST, description="HTTP API bind address.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="HTTP API port.")
    advertised_url: str | None = Field(
        default=None,
        description="URL other workers use to reach this one's API (for query routing); "
        "defaults to http://<web_host or hostname>:<web_port>.",
    )
    worker_name: str | None = Field(
        default=None,
        description="Names this worker's state dir; defaults to <hostname>-<web_port>.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Worker log level."
    )
    agents: str = Field(
        default="",
        description="Comma-separated modules of custom agents to load, e.g. "
        "agents.example_big_orders.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="The worker's event loop implementation."
    )
    shutdown_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a clean shutdown may take before the worker exits anyway.",
    )
    fetch_partition_mb: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Most data one fetch takes from a partition (Faust's default is 1 MB). "
        "Larger fetches mean fewer fetch round trips under a backlog, and more memory.",
    )
    fetch_wait_ms: int = Field(
        default=100,
        ge=0,
        le=1500,
        description="Longest time the broker holds a fetch for data to arrive (Faust's is "
        "1500). kappa's fetches go to a broker one at a time: a held one delays the next "
        "for partitions that have data. Shorter means more empty fetches on an idle input.",
    )
    commit_interval_ms: int = Field(
        default=1000,
        ge=1,
        description="Longest time between two stores of a worker's state under a backlog "
        "(and between two offset commits); a caught-up worker stores at once. Longer "
        "means fewer writes of hot keys, and more to re-read after a crash.",
    )
    commit_events: int = Field(
        default=20_000,
        ge=1,
        description="Most events applied before the state is stored (bounds the memory "
        "the unstored changes take).",
    )
    write_back_buffer_mb: int = Field(
        default=64,
        ge=1,
        description="Memory the applied but unstored state changes (decoded key and window "
        "records, closed windows' results) may take: a store is due when they reach it, "
        "as when KAPPA_COMMIT_INTERVAL_MS passes. Less means more, smaller stores.",
    )
    outputs_in_flight_mb: int = Field(
        default=32,
        ge=1,
        description="Memory the output records (window results, late events, dead letters) "
        "queued for the next store may take: a store is due when they reach it.",
    )
    key_cache_mb: float = Field(
        default=0.5,
        ge=0,
        description="Decoded key records, and as many bytes of open-window records, kept in "
        "memory per partition between batches: a hot key is read from RocksDB once, not "
        "once per batch (0.5 MB holds about a thousand records of a two-field pipeline).",
    )
    rocksdb_block_cache_mb: int = Field(
        default=64,
        ge=1,
        description="RocksDB block cache shared by all of the worker's table stores (every "
        "table and partition): data, index and filter blocks read from disk. Less means "
        "more disk reads of keys not in the cache (Faust's default: 2 GiB per store).",
    )
    rocksdb_memtables_mb: int = Field(
        default=64,
        ge=1,
        description="RocksDB memtables (writes not yet flushed to disk) of all of the "
        "worker's table stores together, charged to the block cache: RocksDB takes at "
        "most about this plus KAPPA_ROCKSDB_BLOCK_CACHE_MB. Less means smaller, more "
        "frequent flushes to disk and more compaction.",
    )
    rocksdb_write_buffer_mb: int = Field(
        default=8,
        ge=1,
        description="Size at which one store's memtable is flushed to disk (at most two "
        "per store; all of them together stay within KAPPA_ROCKSDB_MEMTABLES_MB).",
    )

    postgres_url: SecretStr | None = Field(
        default=None,
        description="An existing PostgreSQL server for `kappa sink postgres` "
        "(postgresql://user:password@host:port/db). When unset, kappa uses the local one "
        "that `kappa postgres start` runs.",
    )
    postgres_port: int = Field(
        default=15432, ge=1, le=65535, description="Port of the local PostgreSQL server."
    )
    postgres_schema: str = Field(
        default="kappa",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The schema the sink's tables, views and offsets live in.",
    )
    sink_batch_rows: int = Field(
        default=5000,
        ge=1,
        description="Most Kafka records the sink writes to PostgreSQL in one transaction.",
    )
    sink_max_backoff: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait, in seconds, between two attempts of the sink to reach "
        "PostgreSQL while it is down (the wait doubles from 0.5s up to this).",
    )
    sink_metrics_port: int = Field(
        default=6070,
        ge=0,
        le=65535,
        description="Port of the sink's /metrics (Prometheus); 0 serves none.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def uses_external_cluster(self) -> bool:
        return self.bootstrap_servers is not None

    @cached_property
    def bootstrap(self) -> str:
        """The servers to connect to: the external cluster, or the local broker(s)."""
        if self.bootstrap_servers is not None:
            return self.bootstrap_servers
        return ",".join(f"{LOCAL_HOST}:{self.kafka_port + 2 * i}" for i in range(self.kafka_nodes))

    @property
    def resolved_postgres_url(self) -> str:
        """The server the sink writes to: KAPPA_POSTGRES_URL, or the local one."""
        if self.postgres_url is not None:
            return self.postgres_url.get_secret_value()
        return f"postgresql://kappa@{LOCAL_HOST}:{self.postgres_port}/kappa"

    @property
    def agent_modules(self) -> list[str]:
        return [name.strip() for name in self.agents.split(",") if name.strip()]

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def resolved_advertised_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url
        host = socket.gethostname() if self.web_host in ("0.0.0.0", "::") else self.web_host
        return f"http://{host}:{self.web_port}"

    @property
    def resolved_worker_name(self) -> str:
        return self.worker_name or f"{socket.gethostname()}-{self.web_port}"
