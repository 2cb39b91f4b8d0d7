"""The CLI as a user runs it: help texts and the errors that stop a replay before it starts."""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.kafka_client import offset_ranges
from app.settings import KappaSettings
from tests.support.worker import kappa_cli

COMMANDS = [
    [],
    ["kafka"],
    ["kafka", "start"],
    ["kafka", "stop"],
    ["kafka", "status"],
    ["worker"],
    ["replay"],
    ["status"],
    ["verify"],
    ["versions"],
    ["promote"],
    ["retire"],
    ["settings"],
    ["postgres", "start"],
    ["postgres", "stop"],
    ["postgres", "status"],
    ["sink", "postgres"],
    ["demo"],
    ["generate"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kappa")
def test_every_command_explains_itself(command: list[str]) -> None:
    done = kappa_cli(os.environ, *command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: " in done.stdout
    # The first docstring line is shown as the description.
    assert len(done.stdout.splitlines()) > 3


def test_settings_lists_every_env_var() -> None:
    done = kappa_cli(os.environ, "settings")
    assert done.returncode == 0
    for name in KappaSettings.model_fields:
        assert f"KAPPA_{name.upper()}" in done.stdout


def test_status_without_a_worker_says_what_to_do() -> None:
    done = kappa_cli(os.environ, "status", "--url", "http://127.0.0.1:9")
    assert done.returncode == 1
    assert "kappa worker" in done.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KAPPA_WEB_PORT", "not-a-port"),
        ("KAPPA_SESSION_TIMEOUT", "2"),  # below the broker's minimum
        ("KAPPA_STANDBY_REPLICAS", "-1"),
        ("KAPPA_FETCH_WAIT_MS", "2000"),  # beyond Faust's own 1500
        ("KAPPA_POSTGRES_SCHEMA", "Robert'); DROP"),
    ],
)
@pytest.mark.parametrize("command", ["settings", "worker"])
def test_invalid_setting_is_named(variable: str, value: str, command: str) -> None:
    done = kappa_cli({**os.environ, variable: value}, command)
    assert done.returncode == 1
    # One line names the variable and its value, the next says what to do.
    error, what_to_do = done.stderr.splitlines()
    assert error.startswith("Error: invalid setting: ")
    assert f"{variable}={value!r}" in error
    assert what_to_do.strip().startswith("what to do: ")


@pytest.mark.broker
@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda d: d / "missing.csv", "missing.csv"),
        (lambda d: _write(d / "events.xlsx", b"customer_id,ts\n"), ".jsonl"),
        (
            lambda d: _write(d / "events.csv", b"customer,ts,amount\nc1,2024-01-01,1\n"),
            "customer_id",
        ),
        (lambda d: _write(d / "events.csv.gz", gzip.compress(b"customer_id,amount\nc1,1\n")), "ts"),
    ],
    ids=["missing file", "unknown format", "header lacks key", "gzip header lacks time"],
)
def test_replay_refuses_bad_files_before_producing_anything(
    make_file: Callable[[Path], Path],
    message: str,
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    env = kappa_env(make_spec())
    good = _write(tmp_path / "good.csv", b"customer_id,ts\nc1,2024-01-01T00:00:00Z\n")
    done = kappa_cli(env, "replay", str(good), str(make_file(tmp_path)))
    assert done.returncode == 1
    assert message in done.stderr
    assert "nothing was produced" in done.stderr
    assert _records_in(kafka_settings, f"test-input-{unique}") == 0


@pytest.mark.parametrize(
    "options",
    [[], ["--order-by-time", "--sort-chunk-rows", "5000"]],
    ids=["checked rows", "sorted runs"],
)
def test_replay_out_of_temporary_space_says_where_and_produces_nothing(
    options: list[str],
    tmp_path: Path,
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
) -> None:
    """The check keeps its rows in temporary files; a full disk under them (here the
    process's file-size limit, which fails writes as a full disk does) is named, with
    TMPDIR as the way out, and the replay run again with room produces every row."""
    rng = random.Random(7)
    lines = [
        f"c{rng.randrange(10**9)},2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:"
        f"{i % 60:02d}Z,{rng.uniform(0, 1e6)!r},{rng.randrange(100)}"
        for i in range(40_000)
    ]
    history = _write(
        tmp_path / "orders.csv",
        ("customer_id,ts,amount,quantity\n" + "\n".join(lines) + "\n").encode(),
    )
    env = kappa_env(make_spec())
    limit = 256 * 1024  # well below the checked rows' compressed size (about 1.5 MB)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", *options, str(history)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert done.returncode == 1, done.stderr
    assert "no room to write the replay's temporary files in" in done.stderr
    assert "nothing was produced" in done.stderr
    assert "set TMPDIR" in done.stderr
    assert "Traceback" not in done.stderr
    assert _records_in(kafka_settings, f"test-input-{unique}") == 0

    again = kappa_cli(env, "replay", *options, str(history))
    assert again.returncode == 0, again.stderr
    assert _records_in(kafka_settings, f"test-input-{unique}") == len(lines)


def test_bad_pipeline_spec_names_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'name = "x"\nversion = 1\ninput_topic = "t"\nkey = "k"\ntime_field = "ts"\n'
        'windows = [{ size = "1h", step = "2h" }]\n'
    )
    env = {**os.environ, "KAPPA_PIPELINE": str(spec), "KAPPA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = kappa_cli(env, "replay", str(spec))
    assert done.returncode == 1
    assert "windows[0].step" in done.stderr


def _records_in(kafka_settings: KappaSettings, topic: str) -> int:
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": kafka_settings.bootstrap}, [topic]))
    return sum(end for _, end in ranges.get(topic, {}).values())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_SPEC = (
    'name = "x"\nversion = 1\ninput_topic = "t"\nkey = "k"\ntime_field = "ts"\n'
    'windows = [{ size = "1h", step = "2h" }]\n'
)


def test_worker_takes_the_pipeline_as_an_argument_over_the_env_var(tmp_path: Path) -> None:
    env = {**os.environ, "KAPPA_PIPELINE": str(tmp_path / "from-env.toml")}
    done = kappa_cli(env, "worker", str(tmp_path / "from-argument.toml"))
    assert done.returncode == 1
    assert "from-argument.toml: no such pipeline spec file" in done.stderr
    assert "from-env.toml" not in done.stderr


def test_worker_still_honours_the_env_var(tmp_path: Path) -> None:
    spec = _write(tmp_path / "bad.toml", BAD_SPEC.encode())
    done = kappa_cli({**os.environ, "KAPPA_PIPELINE": str(spec)}, "worker")
    assert done.returncode == 1
    assert "bad.toml: windows[0].step" in done.stderr


def test_replay_takes_the_pipeline_as_an_option(tmp_path: Path) -> None:
    spec = _write(tmp_path / "bad.toml", BAD_SPEC.encode())
    env = {**os.environ, "KAPPA_PIPELINE": str(tmp_path / "other.toml")}
    done = kappa_cli(env, "replay", "--pipeline", str(spec), str(spec))
    assert done.returncode == 1
    assert "bad.toml: windows[0].step" in done.stderr


@pytest.mark.parametrize(
    "args",
    [["worker", "a.toml", "b.toml"], ["replay"], ["status", "--nope"], ["no-such-command"]],
    ids=" ".join,
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = kappa_cli(os.environ, *args)
    assert done.returncode == 2
    assert "Usage: " in done.stderr


def test_help_lists_the_exit_codes() -> None:
    done = kappa_cli(os.environ, "--help")
    assert "Exit codes" in done.stdout
    for code in ("0", "1", "2", "3", "128+N"):
        assert f"\n  {code} " in done.stdout


def test_replay_help_documents_its_exit_codes() -> None:
    done = kappa_cli(os.environ, "replay", "--help")
    assert done.returncode == 0
    help_text = " ".join(done.stdout.split())
    for code in ["0 replayed", "1 error", "2 bad command line", "3 more bad rows"]:
        assert code in help_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-bad-rows", "ten"], "is not a number of rows (10), a percentage (0.1%)"),
        (["--max-bad-rows", "150%"], "or a fraction below 1 (0.001)"),
        (["--rate", "0"], "--rate"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_a_bad_replay_option_is_exit_code_2(tmp_path: Path, args: list[str], message: str) -> None:
    path = _write(tmp_path / "h.csv", b"customer_id,ts\nc1,2024-01-01T00:00:00Z\n")
    env = {**os.environ, "KAPPA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    done = kappa_cli(env, "replay", str(path), *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())


def test_replay_without_kafka_is_exit_code_1_and_says_nothing_was_produced(
    tmp_path: Path, make_spec: Callable[..., Path]
) -> None:
    path = _write(tmp_path / "h.csv", b"customer_id,ts\nc1,2024-01-01T00:00:00Z\n")
    env = {
        **os.environ,
        "KAPPA_PIPELINE": str(make_spec()),
        "KAPPA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing listens there
    }
    done = kappa_cli(env, "replay", str(path))
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "Kafka failed" in message
    assert "nothing was produced" in message
    assert "kappa kafka start" in message


def test_verify_without_kafka_is_exit_code_1_and_says_what_to_do(
    make_spec: Callable[..., Path],
) -> None:
    env = {**os.environ, "KAPPA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # nothing listens there
    done = kappa_cli(env, "verify", str(make_spec()))
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "Kafka failed" in message
    assert "nothing was compared" in message
    assert "kappa kafka start" in message
    assert "Traceback" not in done.stderr
