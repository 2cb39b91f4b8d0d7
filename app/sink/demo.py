"""The PostgreSQL sink in ``kappa demo``: the local server (or KAPPA_POSTGRES_URL), one
``kappa sink postgres`` process for the demo's pipeline, and the rows of its
``<name>_totals`` view read back, to print next to the worker's numbers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pydantic import SecretStr

from agents.spec import PipelineSpec
from app.postgres.local import LocalPostgres
from app.settings import KappaSettings
from app.sink.schema import VersionTables
from app.sink.versions import survey_sink


class DemoSink:
    """The demo's PostgreSQL and its sink process; ``stop`` ends what ``start`` began."""

    def __init__(self, settings: KappaSettings, spec: PipelineSpec, log_path: Path) -> None:
        self.server = None if settings.postgres_url is not None else LocalPostgres(settings)
        self.server_was_running = self.server is not None and self.server.status().running
        url = settings.resolved_postgres_url
        self.settings = settings.model_copy(update={"postgres_url": SecretStr(url)})
        self.spec, self.log_path = spec, log_path
        self.tables = VersionTables(spec.name, spec.version, settings.postgres_schema)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, python: str, spec_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        if self.server is not None:
            self.server.start()
        sink_env = {
            **env,
            "KAPPA_POSTGRES_URL": self.settings.resolved_postgres_url,
            "KAPPA_SINK_METRICS_PORT": "0",
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [python, "-m", "app.cli", "sink", "postgres", str(spec_path)],
                env=sink_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self.proc

    def caught_up(self) -> bool:
        """Whether the version's tables hold every result and key record, as ``kappa
        versions`` counts the sink's lag."""
        version = self.spec.version
        found = asyncio.run(survey_sink(self.settings, self.spec.name, [version]))
        if found is None or found.error is not None or version not in found.lags:
            return False
        return found.lags[version].started and found.lags[version].total == 0

    def view_totals(self, value: str) -> dict[str, tuple[int, Any]]:
        """Each key's count and ``value`` sum, from the pipeline's ``<name>_totals`` view."""
        query = sql.SQL("SELECT key, count, {} FROM {}").format(
            sql.Identifier(f"{value}_sum"),
            sql.Identifier(self.tables.schema, self.tables.totals_view),
        )
        with psycopg.connect(self.settings.resolved_postgres_url, connect_timeout=5) as conn:
            return {str(r[0]): (int(r[1]), r[2]) for r in conn.execute(query).fetchall()}

    def stop(self, keep_postgres: bool) -> bool:
        """Stop the sink, and the local PostgreSQL unless kept or running before; whether
        PostgreSQL was stopped."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.server is None or keep_postgres or self.server_was_running:
            return False
        return self.server.stop()
