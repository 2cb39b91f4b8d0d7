"""``kappa kafka``: idempotent stop, and clear errors when the broker cannot start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import KappaSettings
from tests.support.worker import kappa_cli


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KAPPA_") and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    return {**env, "KAPPA_HOME": str(tmp_path / "home"), **extra}


def test_stop_and_status_when_nothing_runs(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_KAFKA_PORT="39092")
    done = kappa_cli(env, "kafka", "stop")
    assert done.returncode == 0
    assert "no local kafka was running" in done.stdout
    assert kappa_cli(env, "kafka", "stop").returncode == 0  # idempotent
    done = kappa_cli(env, "kafka", "status")
    assert done.returncode == 1
    assert "stopped" in done.stdout


def test_missing_java_says_what_to_install(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_KAFKA_PORT="39092", PATH=str(tmp_path))
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 1
    assert "`java` is not on PATH" in done.stderr
    assert "KAPPA_BOOTSTRAP_SERVERS" in done.stderr


@pytest.mark.broker
def test_port_in_use_is_reported(kafka_settings: KappaSettings, tmp_path: Path) -> None:
    if kafka_settings.uses_external_cluster:
        pytest.fail("this test needs the project's own broker (unset KAPPA_BOOTSTRAP_SERVERS)")
    env = _env(
        tmp_path,
        KAPPA_KAFKA_PORT=str(kafka_settings.kafka_port),
        KAPPA_CACHE_DIR=str(kafka_settings.cache_dir.resolve()),
    )
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 1
    assert f"port {kafka_settings.kafka_port}" in done.stderr
    assert "KAPPA_KAFKA_PORT" in done.stderr


def test_external_cluster_starts_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path, KAPPA_BOOTSTRAP_SERVERS="kafka.example:9092")
    done = kappa_cli(env, "kafka", "start")
    assert done.returncode == 0
    assert "using the existing cluster at kafka.example:9092" in done.stdout
