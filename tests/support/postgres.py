"""A real PostgreSQL for the sink's tests, the sink as a subprocess, and its tables read
back in the batch computation's shape (tests/support/oracle.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pydantic import SecretStr

from app.settings import KappaSettings
from app.sink.versions import survey_sink

VALUES = ("amount", "quantity")
METRICS = ("sum", "min", "max", "mean")


class SinkProcess:
    """``kappa sink postgres`` with ``env`` (its KAPPA_PIPELINE names the version)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SinkProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "sink", "postgres"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.proc.wait(timeout=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def sink_lag(url: str, schema: str, bootstrap: str, pipeline: str, version: int) -> int | None:
    """Records of the version's results and ``keys`` changelog not yet in PostgreSQL, as
    ``kappa versions`` counts them; None until the sink has created the views."""
    settings = KappaSettings().model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "postgres_url": SecretStr(url),
            "postgres_schema": schema,
        }
    )
    found = asyncio.run(survey_sink(settings, pipeline, [version]))
    if found is None or found.error is not None:
        return None
    return found.lags[version].total


def wait_sink_caught_up(
    url: str, schema: str, bootstrap: str, pipeline: str, version: int, sink: SinkProcess,
    timeout: float = 180, max_lag: int = 0,
) -> None:  # fmt: skip
    """Until the sink's lag is at most ``max_lag`` (above 0 while live traffic goes on)."""
    deadline = time.monotonic() + timeout
    while (lag := sink_lag(url, schema, bootstrap, pipeline, version)) is None or lag > max_lag:
        assert sink.alive(), f"the sink exited:\n{sink.log_tail()}"
        assert time.monotonic() < deadline, f"sink lag {lag} after {timeout}s:\n{sink.log_tail()}"
        time.sleep(0.5)


def _shape(row: tuple[Any, ...]) -> dict[str, Any]:
    count, *metrics = row
    values = {
        v: dict(zip(METRICS, metrics[4 * i : 4 * i + 4], strict=True)) for i, v in enumerate(VALUES)
    }
    return {"count": count, "values": values}


def _metric_columns() -> sql.Composable:
    names = ["count", *(f"{v}_{m}" for v in VALUES for m in METRICS)]
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def totals_in(url: str, schema: str, relation: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT key, {} FROM {}").format(
                _metric_columns(), sql.Identifier(schema, relation)
            )
        ).fetchall()
    return {row[0]: _shape(row[1:]) for row in rows}


def windows_in(url: str, schema: str, relation: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL('SELECT key, "window", start_ms, {} FROM {}').format(
                _metric_columns(), sql.Identifier(schema, relation)
            )
        ).fetchall()
    return {(row[0], row[1], row[2]): _shape(row[3:]) for row in rows}


def tables_of(url: str, schema: str) -> set[str]:
    """The tables (not views) in ``schema``, but the shared offsets table."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_type = 'BASE TABLE' AND table_name <> 'sink_offsets'",
            [schema],
        ).fetchall()
    return {str(row[0]) for row in rows}
