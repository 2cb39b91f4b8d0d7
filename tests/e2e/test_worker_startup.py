"""What a new user meets first with `kappa worker`: a start that fails says why in two
lines (`Error: ...`, `what to do: ...`), exits 1 and leaves nothing on the cluster; a
running worker says where its API is, and a Kafka that goes away and comes back makes a
few log lines, not hundreds a second."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from pathlib import Path

import pytest

from app.ports import free_port
from tests.support.cluster import own_cluster
from tests.support.harness import Harness
from tests.support.kafka import cluster_names
from tests.support.worker import kappa_cli, worker_env

ROOT = Path(__file__).resolve().parents[2]

# A log line as the worker writes it: "[time] [pid] [LEVEL] message".
LOG_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[(?P<level>[A-Z]+)\] (?P<message>.*)$")


def _two_lines(stderr: str) -> tuple[str, str]:
    """The error and what to do, the only lines a failed start prints."""
    error, what_to_do = stderr.splitlines()
    assert error.startswith("Error: "), stderr
    assert what_to_do.startswith("  what to do: "), stderr
    return error, what_to_do


def _assert_nothing_on_the_cluster(kappa: Harness) -> None:
    topics, groups = asyncio.run(cluster_names(kappa.settings.bootstrap))
    assert not [t for t in topics if kappa.unique in t]
    assert not [g for g in groups if kappa.unique in g]


def test_kafka_down_at_start(kappa_cli_env: dict[str, str]) -> None:
    nothing_there = f"127.0.0.1:{free_port()}"
    done = kappa_cli({**kappa_cli_env, "KAPPA_BOOTSTRAP_SERVERS": nothing_there}, "worker")
    assert done.returncode == 1
    error, what_to_do = _two_lines(done.stderr)
    assert f"Kafka failed at {nothing_there}" in error
    assert "kappa kafka start" in what_to_do


def test_a_bad_spec(kappa_cli_env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "orders"\nversion = 1\n')
    done = kappa_cli(kappa_cli_env, "worker", str(spec))
    assert done.returncode == 1
    # One line per problem of the spec, then what to do; no traceback.
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"Error: {spec}: ")
    assert all(line.startswith(f"{spec}: ") for line in lines[1:-1])
    assert lines[-1].startswith("  what to do: fix the spec")


@pytest.fixture
def kappa_cli_env(tmp_path: Path) -> dict[str, str]:
    """A worker's environment that needs no broker (for the failures before Kafka)."""
    spec = ROOT / "examples" / "orders.toml"
    return worker_env(
        {
            "KAPPA_HOME": str(tmp_path / "home"),
            "KAPPA_PIPELINE": str(spec),
            "KAPPA_WEB_PORT": str(free_port()),
            "PYTHONPATH": str(ROOT),
        }
    )


@pytest.mark.broker
def test_port_in_use_leaves_nothing_on_the_cluster(kappa: Harness) -> None:
    env = kappa.env(kappa.make_spec())
    port = int(env["KAPPA_WEB_PORT"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = kappa_cli(env, "worker")
    assert done.returncode == 1
    error, what_to_do = _two_lines(done.stderr)
    assert f"127.0.0.1:{port}" in error
    assert "KAPPA_WEB_PORT" in what_to_do
    _assert_nothing_on_the_cluster(kappa)


@pytest.mark.broker
def test_a_state_dir_it_cannot_write_leaves_nothing_on_the_cluster(kappa: Harness) -> None:
    home = kappa.tmp_path / "not-a-directory"
    home.write_text("a file where KAPPA_HOME should be a directory")
    done = kappa_cli(kappa.env(kappa.make_spec(), KAPPA_HOME=str(home)), "worker")
    assert done.returncode == 1
    error, what_to_do = _two_lines(done.stderr)
    assert str(home) in error
    assert "KAPPA_HOME" in what_to_do
    _assert_nothing_on_the_cluster(kappa)


def _levels_and_messages(log: str) -> list[tuple[str, str]]:
    return [
        (match["level"], match["message"])
        for line in log.splitlines()
        if (match := LOG_LINE.match(line))
    ]


@pytest.mark.broker
def test_kafka_stopped_under_a_running_worker_logs_a_few_lines(kappa: Harness) -> None:
    # Its own cluster, which the test stops; below the ephemeral ports, in the range of
    # the suite's broker port (see own_cluster).
    port = kappa.settings.kafka_port + 50
    with own_cluster(kappa.settings, kappa.tmp_path, nodes=1, port=port) as (cluster, bootstrap):
        worker = kappa.start_worker(kappa.env(kappa.make_spec(), KAPPA_BOOTSTRAP_SERVERS=bootstrap))
        worker.wait_ready(partitions=1)
        worker.wait_for_log(f"ready: the API answers at {worker.base}", timeout=60)
        # A first start on a new cluster: the coordinator is not there yet, which is
        # expected, and no ERROR.
        started = _levels_and_messages(worker.log_path.read_text())
        assert not [m for level, m in started if level == "ERROR"], started
        lines_before = len(started)

        cluster.stop()

        def unreachable() -> bool:
            status, body = worker.get("/api/status")
            return status == 200 and body["kafka_unreachable_since"] is not None

        worker.wait_until(unreachable, 60, "the worker to find Kafka unreachable")
        _, body = worker.get("/api/status")
        since = body["kafka_unreachable_since"]
        with urllib.request.urlopen(worker.base + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert f'since="{since}"' in metrics
        # One summary after 30 s: by then aiokafka has failed thousands of times.
        worker.wait_for_log("Kafka still unreachable", timeout=90)
        cluster.start()
        worker.wait_for_log("Kafka is reachable again", timeout=120)
        worker.wait_until(
            lambda: worker.get("/api/status")[1]["kafka_unreachable_since"] is None,
            30,
            "the status to say Kafka is back",
        )
        during = _levels_and_messages(worker.log_path.read_text())[lines_before:]
        messages = [message for _, message in during]
        assert sum(m.startswith("Kafka is unreachable: ") for m in messages) == 1, messages
        assert sum(m.startswith("Kafka still unreachable") for m in messages) >= 1, messages
        assert sum(m.startswith("Kafka is reachable again") for m in messages) == 1, messages
        assert not [m for level, m in during if level == "ERROR"], during
        # The stop, the outage's lines and Faust's own few on losing and finding its
        # group: a few dozen at most, where aiokafka alone wrote about 200 a second.
        assert len(during) < 60, messages
        assert worker.stop() == 0
