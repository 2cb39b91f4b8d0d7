"""docker/ checked statically, since no Docker engine runs here: the compose file's
services, images, KAPPA_* variables, command lines, ports and scrape targets agree with
what kappa's settings and click commands accept."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from app.cli import main
from app.settings import KappaSettings

ROOT = Path(__file__).parents[3]
DOCKER = ROOT / "docker"
COMPOSE: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
KAPPA = {name: s for name, s in SERVICES.items() if s.get("image") == "kappa:local"}
WORKERS = {name: s for name, s in KAPPA.items() if s["command"][0] == "worker"}


def parse_kappa(args: list[str]) -> click.Context:
    """Parse ``kappa <args>`` as the CLI would, without running it: raises click's
    UsageError (or BadParameter) for an unknown command, option or a bad value."""
    command: click.Command = main
    name = "kappa"
    while isinstance(command, click.Group):
        with command.make_context(name, [], resilient_parsing=True) as ctx:
            if not args:
                raise click.UsageError(f"{name} needs a command")
            name, *args = args
            found = command.get_command(ctx, name)
        if found is None:
            raise click.UsageError(f"no such command {name!r}")
        command = found
    return command.make_context(name, list(args))


def settings_env_names() -> set[str]:
    names = {f"KAPPA_{field.upper()}" for field in KappaSettings.model_fields}
    return names | {"KAFKA_BOOTSTRAP_SERVERS"}  # the alias settings.py accepts


def dockerfile_env() -> dict[str, str]:
    """The runtime stage's ENV (KEY=VALUE pairs, possibly continued over lines)."""
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime") :]
    env: dict[str, str] = {}
    for block in re.findall(r"^ENV ((?:.*\\\n)*.*)$", runtime, flags=re.MULTILINE):
        env.update(re.findall(r"(\w+)=(\S+)", block))
    return env


def service_env(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in service.get("environment", {}).items()}


def test_the_services_are_kafka_workers_a_replay_job_and_prometheus() -> None:
    assert set(SERVICES) == {"kafka", "worker-1", "worker-2", "replay", "prometheus"}
    assert set(WORKERS) == {"worker-1", "worker-2"}
    assert KAPPA["replay"]["command"][0] == "replay"
    assert KAPPA["replay"]["profiles"] == ["tools"]  # a job: `run`, not `up`


def test_kafka_is_the_apache_image_in_kraft_mode_at_kappas_version() -> None:
    kafka = SERVICES["kafka"]
    version = KappaSettings.model_fields["kafka_version"].default
    assert kafka["image"] == f"apache/kafka:{version}"
    env = service_env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"]
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # kappa creates its topics


@pytest.mark.parametrize("name", sorted(KAPPA))
def test_kappa_variables_are_real_settings_with_valid_values(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dockerfile_env() | service_env(KAPPA[name])
    unknown = {key for key in env if key.startswith("KAPPA_")} - settings_env_names()
    assert not unknown, f"{name} sets variables kappa does not read: {unknown}"
    for key in list(os.environ):
        if key.startswith(("KAPPA_", "KAFKA_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = KappaSettings()  # raises on a value of the wrong type or range
    assert settings.bootstrap_servers == "kafka:19092"
    # Relative paths resolve against the image's WORKDIR, where examples/ is copied.
    assert "COPY examples/ examples/" in DOCKERFILE
    assert (ROOT / settings.pipeline).is_file()


def test_kappa_reaches_kafka_on_an_advertised_listener() -> None:
    listeners = service_env(SERVICES["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    advertised = {entry.split("://", 1)[1] for entry in listeners.split(",")}
    for name, service in KAPPA.items():
        assert service_env(service)["KAPPA_BOOTSTRAP_SERVERS"] in advertised, name
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name


@pytest.mark.parametrize("name", sorted(KAPPA))
def test_command_lines_are_accepted_by_the_cli(name: str) -> None:
    command = KAPPA[name]["command"]
    context = parse_kappa(command)
    assert context.command.name == command[0]
    for value in context.params.values():  # history files and specs exist in the image
        for path in value if isinstance(value, tuple) else [value]:
            if isinstance(path, Path):
                assert (ROOT / path).is_file(), f"{name}: {path} is not in examples/"


def test_the_image_runs_kappa_and_its_default_command_parses() -> None:
    assert 'ENTRYPOINT ["kappa"]' in DOCKERFILE
    (default,) = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, flags=re.MULTILINE)
    parse_kappa(yaml.safe_load(default))


@pytest.mark.parametrize(
    "args",
    [["worker", "a.toml", "b.toml"], ["replay"], ["replay", "--rate", "0", "f.csv"], ["nope"]],
)
def test_the_command_check_refuses_what_kappa_refuses(args: list[str]) -> None:
    with pytest.raises(click.UsageError):
        parse_kappa(args)


def test_workers_form_one_group_and_publish_their_api_on_localhost() -> None:
    envs = {name: service_env(service) for name, service in WORKERS.items()}
    pipelines = {env.get("KAPPA_PIPELINE") for env in envs.values()}
    commands = {tuple(WORKERS[name]["command"][1:]) for name in WORKERS}
    # One pipeline, so one consumer group.
    assert len(pipelines) == 1
    assert len(commands) == 1
    assert len({env["KAPPA_WORKER_NAME"] for env in envs.values()}) == len(WORKERS)
    for name, env in envs.items():
        port = env["KAPPA_WEB_PORT"]
        # The same port inside and out, so what a worker reports about itself holds.
        assert WORKERS[name]["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert env["KAPPA_ADVERTISED_URL"] == f"http://{name}:{port}"
    published = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published)
    assert len({p.split(":")[1] for p in published}) == len(published)


def test_prometheus_scrapes_every_worker_on_its_web_port() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    want = {f"{name}:{service_env(s)['KAPPA_WEB_PORT']}" for name, s in WORKERS.items()}
    assert targets == want
    mounted = SERVICES["prometheus"]["volumes"][0].split(":")
    assert mounted[:2] == ["./prometheus.yml", "/etc/prometheus/prometheus.yml"]


def test_named_volumes_are_declared() -> None:
    used = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == set(COMPOSE["volumes"])
