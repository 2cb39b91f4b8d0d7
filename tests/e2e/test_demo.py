"""``kappa demo`` end to end, on the test's broker and PostgreSQL: it succeeds, and the
rows of its ``<name>_totals`` view in PostgreSQL equal a plain Python fold over the
example history and the demo's live events."""

from __future__ import annotations

import csv
import gzip
import math
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.demo import EXAMPLE_HISTORY, live_events
from app.settings import KappaSettings
from tests.conftest import ROOT

pytestmark = pytest.mark.broker


def _good(row: dict[str, str]) -> bool:
    """The example history's bad rows: no key, a time that is none, an amount that is text."""
    try:
        datetime.fromisoformat(row["ts"])
        float(row["amount"] or 0)
    except ValueError:
        return False
    return bool(row["customer_id"])


def _fold(rows: list[dict[str, str]]) -> dict[str, tuple[int, float | None]]:
    counts: dict[str, int] = defaultdict(int)
    amounts: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        counts[row["customer_id"]] += 1
        if row["amount"]:
            amounts[row["customer_id"]].append(float(row["amount"]))
    # SQL's sum: NULL for a key whose amounts are all empty.
    return {
        key: (n, math.fsum(amounts[key]) if key in amounts else None) for key, n in counts.items()
    }


def test_the_demo_fills_the_postgres_view_with_the_batch_folds_numbers(
    kafka_settings: KappaSettings, postgres_url: str, tmp_path: Path, unique: str
) -> None:
    schema = f"t{unique}"
    env = {
        "PATH": "/usr/bin:/bin",
        "KAPPA_HOME": str(tmp_path),
        "KAPPA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap,
        "KAPPA_POSTGRES_URL": postgres_url,
        "KAPPA_POSTGRES_SCHEMA": schema,
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "equal the worker's totals" in done.stdout

    with gzip.open(ROOT / EXAMPLE_HISTORY, "rt", newline="") as handle:
        history = [row for row in csv.DictReader(handle) if _good(row)]
    live = [{k: "" if v is None else str(v) for k, v in e.items()} for e in live_events()]
    want = _fold(history + live)
    with psycopg.connect(postgres_url) as conn:
        (view,) = conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = %s "
            "AND table_name LIKE '%%\\_totals'",
            [schema],
        ).fetchone() or (None,)
        rows = conn.execute(
            sql.SQL("SELECT key, count, amount_sum FROM {}").format(sql.Identifier(schema, view))
        ).fetchall()
    assert {str(r[0]): (r[1], r[2]) for r in rows} == want
