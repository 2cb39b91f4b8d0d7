"""A real Apache Kafka, run locally in KRaft mode for development, tests and the demo.

Each node is a combined broker+controller bound to 127.0.0.1. Node ``i`` listens on
``kafka_port + 2*i`` (clients) and ``kafka_port + 2*i + 1`` (controller). Nothing here
runs when ``KAPPA_BOOTSTRAP_SERVERS`` points at an existing cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from aiokafka import AIOKafkaClient

from agents.errors import BrokerError
from app.broker.jars import kafka_libs, require_tool
from app.settings import LOCAL_HOST, KappaSettings

log = logging.getLogger(__name__)

_LOG4J = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=WARN
"""


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    port: int
    pid: int | None
    running: bool
    log_file: Path


def storage_format_args(cluster_id: str, props: Path) -> list[str]:
    """``StorageTool format``'s arguments. The id goes as ``--cluster-id=…``: a base64
    id starts with ``-`` one time in 64, and as a separate argument the tool's parser
    would take it for an option and fail."""
    return [
        "format",
        f"--cluster-id={cluster_id}",
        "-c",
        str(props.resolve()),
        "--ignore-formatted",
    ]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCAL_HOST, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return f"(no log at {path})"
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


class LocalKafka:
    """Start, stop and inspect the project's local Kafka node(s)."""

    def __init__(self, settings: KappaSettings) -> None:
        if settings.uses_external_cluster:
            raise BrokerError(
                f"KAPPA_BOOTSTRAP_SERVERS={settings.bootstrap_servers} names an existing "
                "cluster, so kappa manages no local broker.",
                hint="unset KAPPA_BOOTSTRAP_SERVERS (and KAFKA_BOOTSTRAP_SERVERS) to use one",
            )
        self.settings = settings
        self.root = settings.home / "kafka"
        self.nodes = settings.kafka_nodes
        # Nodes this object started: until exec completes, a child's cmdline is still
        # Python's, so their liveness is judged by the child process itself.
        self._spawned: dict[int, subprocess.Popen[bytes]] = {}

    # -- layout ---------------------------------------------------------------------
    def port(self, node: int) -> int:
        return self.settings.kafka_port + 2 * node

    def controller_port(self, node: int) -> int:
        return self.port(node) + 1

    def node_dir(self, node: int) -> Path:
        return self.root / f"node-{node}"

    def log_file(self, node: int) -> Path:
        return self.node_dir(node) / "kafka.log"

    def _pid_file(self, node: int) -> Path:
        return self.node_dir(node) / "kafka.pid"

    # -- status ---------------------------------------------------------------------
    def _live_pid(self, node: int) -> int | None:
        """The pid in the pid file, if it is still our Kafka (pids get reused)."""
        try:
            pid = int(self._pid_file(node).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE and "kafka.Kafka" in proc.cmdline()
        except psutil.Error:
            return None
        return pid if alive else None

    def status(self) -> list[NodeStatus]:
        return [
            NodeStatus(
                node_id=node,
                port=self.port(node),
                pid=(pid := self._live_pid(node)),
                running=pid is not None,
                log_file=self.log_file(node),
            )
            for node in range(self.nodes)
        ]

    # -- start ----------------------------------------------------------------------
    def start(self) -> list[NodeStatus]:
        """Start every node that is not running, then wait until the cluster answers."""
        java = require_tool("java", "to run the local Kafka broker (Java 17)")
        libs = kafka_libs(self.settings.cache_dir, self.settings.kafka_version)
        cluster_id = self._cluster_id()
        started = []
        for node in range(self.nodes):
            if self._live_pid(node) is not None:
                continue
            for port in (self.port(node), self.controller_port(node)):
                if not _port_free(port):
                    raise BrokerError(
                        f"port {port} on {LOCAL_HOST} is already in use, so Kafka node {node} "
                        "cannot start.",
                        hint="stop whatever holds it (`kappa kafka stop` if it is an old kappa "
                        "broker with another KAPPA_HOME), or choose another base port with "
                        "KAPPA_KAFKA_PORT",
                    )
            props = self._write_config(node)
            self._format(java, libs, cluster_id, node, props)
            self._spawn(java, libs, node, props)
            started.append(node)
        try:
            self._wait_ready()
        except BrokerError:
            self.stop()
            raise
        return self.status()

    def _cluster_id(self) -> str:
        path = self.root / "cluster.id"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            # KRaft wants a base64 UUID; this is what `StorageTool random-uuid` prints.
            raw = uuid.uuid4().bytes
            import base64

            path.write_text(base64.urlsafe_b64encode(raw).decode().rstrip("="))
        return path.read_text().strip()

    def _write_config(self, node: int) -> Path:
        directory = self.node_dir(node)
        (directory / "data").mkdir(parents=True, exist_ok=True)
        voters = ",".join(f"{i}@{LOCAL_HOST}:{self.controller_port(i)}" for i in range(self.nodes))
        replication = min(3, self.nodes)
        min_isr = 2 if self.nodes >= 3 else 1
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{LOCAL_HOST}:{self.port(node)},"
            f"CONTROLLER://{LOCAL_HOST}:{self.controller_port(node)}",
            "advertised.listeners": f"PLAINTEXT://{LOCAL_HOST}:{self.port(node)}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str((directory / "data").resolve()),
            "num.partitions": "1",
            # kappa creates its topics explicitly with the partition count it needs;
            # auto-created single-partition topics would break co-partitioning.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": str(replication),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "10",
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "-1",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        props = directory / "server.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (directory / "log4j.properties").write_text(
            _LOG4J.format(log=self.log_file(node).resolve())
        )
        return props

    def _format(self, java: str, libs: Path, cluster_id: str, node: int, props: Path) -> None:
        if (self.node_dir(node) / "data" / "meta.properties").exists():
            return
        proc = subprocess.run(
            [
                java,
                "-cp",
                f"{libs.resolve()}/*",
                "kafka.tools.StorageTool",
                *storage_format_args(cluster_id, props),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage for node {node} failed:\n{proc.stdout}{proc.stderr}",
                hint=f"remove {self.node_dir(node)} (it holds only local test data) and retry",
            )

    def _spawn(self, java: str, libs: Path, node: int, props: Path) -> None:
        directory = self.node_dir(node)
        heap = self.settings.kafka_heap
        with self.log_file(node).open("ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xmx{heap}",
                    f"-Xms{heap}",
                    "-XX:+UseG1GC",
                    f"-Dlog4j.configuration=file:{(directory / 'log4j.properties').resolve()}",
                    "-cp",
                    f"{libs.resolve()}/*",
                    "kafka.Kafka",
                    str(props.resolve()),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the shell must not kill the broker
            )
        self._spawned[node] = proc
        self._pid_file(node).write_text(str(proc.pid))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.kafka_start_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            for node in range(self.nodes):
                spawned = self._spawned.get(node)
                exited = spawned.poll() is not None if spawned else self._live_pid(node) is None
                if exited:
                    raise BrokerError(
                        f"Kafka node {node} exited during start-up. Log tail "
                        f"({self.log_file(node)}):\n{log_tail(self.log_file(node))}",
                        hint="read the log above; `kappa kafka stop` then `kappa kafka start` "
                        "retries, and removing KAPPA_HOME/kafka starts from empty storage",
                    )
            try:
                brokers = asyncio.run(_broker_count(self.settings.bootstrap))
            except Exception as exc:  # any connection error means "not ready yet"
                last_error = repr(exc)
            else:
                if brokers >= self.nodes:
                    return
                last_error = f"{brokers} of {self.nodes} brokers registered"
            time.sleep(0.5)
        raise BrokerError(
            f"Kafka did not answer metadata requests within {self.settings.kafka_start_timeout:g}s"
            f" ({last_error}). Log tail ({self.log_file(0)}):\n{log_tail(self.log_file(0))}",
            hint="raise KAPPA_KAFKA_START_TIMEOUT on a slow machine, or read the log for errors",
        )

    # -- stop -----------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> int:
        """Stop every node; idempotent. Returns how many processes were stopped.

        All nodes are signalled before any is waited for: a KRaft node whose peers are
        already gone cannot reach a controller quorum to shut down cleanly.
        """
        nodes = [node for node in range(self.nodes) if self._live_pid(node) is not None]
        self.kill_nodes(nodes, signal.SIGTERM, timeout)
        for node in range(self.nodes):
            self._pid_file(node).unlink(missing_ok=True)
        return len(nodes)

    def kill_nodes(self, nodes: list[int], sig: signal.Signals, timeout: float = 30.0) -> None:
        """Send ``sig`` to the nodes' process groups; SIGKILL what is left after ``timeout``."""
        procs: dict[int, psutil.Process] = {}
        for node in nodes:
            pid = self._live_pid(node)
            if pid is None:
                continue
            try:
                procs[node] = psutil.Process(pid)
                os.killpg(pid, sig)
            except (psutil.NoSuchProcess, ProcessLookupError):
                procs.pop(node, None)
        _, alive = psutil.wait_procs(list(procs.values()), timeout=timeout)
        for proc in alive:
            log.warning("Kafka pid %d did not stop in %.0fs; killing it", proc.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=10)


async def _broker_count(bootstrap: str) -> int:
    # While Kafka starts, refused connections are expected; aiokafka logs each at ERROR.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        return len(metadata.brokers())
    finally:
        await client.close()
