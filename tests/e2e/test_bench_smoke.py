"""The benchmark harness runs end to end on a tiny dataset, so it cannot rot.

It asserts that the harness produced every figure, never how fast anything was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.settings import KappaSettings

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke(kafka_settings: KappaSettings, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAPPA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = tmp_path.glob("bench-*.json")
    body = orjson.loads(result.read_bytes())
    for key in (
        "p_consume_eps",
        "p_decode_eps",
        "naive_faust_eps",
        "topic_to_tables_eps",
        "topic_to_tables_peak_rss_mb",
        "replay_eps",
        "file_to_tables_eps",
        "worker_peak_rss_mb",
        "replay_peak_rss_mb",
    ):
        assert body["medians"][key] > 0
    assert body["machine"]["cores"] >= 1
    assert "P_consume" in done.stdout
