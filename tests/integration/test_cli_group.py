"""The CLI as people use it, on a group of two real workers: the pipeline named on the
command line, `kappa status` for every worker, times in ISO-8601 next to epoch ms, and
exit codes that tell a script whether the whole group answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli, run_kappa

pytestmark = pytest.mark.broker


def utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_pipeline_argument_and_status_of_every_worker(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    unique: str,
    tmp_path: Path,
) -> None:
    spec = make_spec()
    # No KAPPA_PIPELINE anywhere: the command line names the pipeline.
    envs = [kappa_env(spec, partitions=4, KAPPA_WORKER_NAME=name) for name in ("a", "b")]
    for env in envs:
        del env["KAPPA_PIPELINE"]
    a, b = (
        WorkerProcess(env, tmp_path / f"{env['KAPPA_WORKER_NAME']}.log", args=[str(spec)])
        for env in envs
    )
    try:
        a.start().wait_ready(partitions=4)
        b.start()

        def shared() -> bool:
            owned = [set(w.get("/api/status")[1]["partitions_owned"]) for w in (a, b)]
            return all(owned) and owned[0] | owned[1] == {0, 1, 2, 3}

        a.wait_until(shared, 90, "the second worker to take over some partitions")
        history = tmp_path / "history.csv"
        events = list(generate(DatasetShape(events=2_000, keys=30, seed=4)))
        write(iter(events), history)
        run_kappa(envs[0], "replay", "--pipeline", str(spec), str(history))
        wait_processed([a, b], kafka_settings.bootstrap, f"test-input-{unique}")

        done = kappa_cli(envs[0], "status", "--url", a.base, "--json")
        assert done.returncode == 0, done.stderr
        group = json.loads(done.stdout)
        assert set(group["workers"]) == {a.base, b.base}
        assert group["unreachable"] == {}
        for body in group["workers"].values():
            assert body["watermarks"], "each worker owns partitions with events"
            for partition, watermark in body["watermarks"].items():
                iso = body["watermarks_iso"][partition]
                assert datetime.fromisoformat(iso) == utc(watermark)
            last = body["batches"]["last_stored_at"]
            assert datetime.fromisoformat(body["batches"]["last_stored_at_iso"]) == utc(
                int(last * 1000)
            )

        done = kappa_cli(envs[0], "status", "--url", a.base)
        assert done.returncode == 0, done.stderr
        assert "worker a at" in done.stdout
        assert "worker b at" in done.stdout
        watermark = group["workers"][b.base]["watermarks_iso"]
        assert next(iter(watermark.values()))[:16] in done.stdout  # shown to the minute

        key = events[0]["customer_id"]
        status, body = a.get(f"/api/keys/{key}/windows?window=1h")
        assert status == 200, body
        assert body["windows"]
        for window in body["windows"]:
            assert datetime.fromisoformat(window["start"]) == utc(window["start_ms"])
            assert datetime.fromisoformat(window["end"]) == utc(window["end_ms"])

        # A worker gone without a word stays in the group until its session times out:
        # status reaches the others, names the one that did not answer, and exits 3.
        b.kill()
        done = kappa_cli(envs[0], "status", "--url", a.base)
        assert done.returncode == 3, done.stdout + done.stderr
        assert f"worker {b.base} did not answer" in done.stderr
        assert "worker a at" in done.stdout
    finally:
        for worker in (a, b):
            if worker.proc is not None and worker.proc.poll() is None:
                worker.stop()
