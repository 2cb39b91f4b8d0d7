"""Two versions of one pipeline on the real broker, with real workers: `kappa versions`
shows both with their lag and which one is active, `kappa promote` switches what a v1
worker answers to v2's windows, and `kappa retire` removes a version's topics, group
and state, and refuses the active one."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.datagen import DatasetShape, generate, write
from app.settings import KappaSettings
from tests.support.kafka import cluster_names, produce_events
from tests.support.oracle import batch_results
from tests.support.results import wait_processed
from tests.support.worker import WorkerProcess, kappa_cli

pytestmark = pytest.mark.broker

HALF_HOUR = 1_800_000


def _versions(env: dict[str, str], name: str) -> dict[str, Any]:
    done = kappa_cli(env, "versions", name, "--json", "--sample", "0.5")
    assert done.returncode == 0, done.stdout + done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def _by_version(survey: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {v["version"]: v for v in survey["versions"]}


def _settled(env: dict[str, str], name: str, lags: dict[int, int]) -> dict[str, Any]:
    """The survey once each version's lag is as given: lag counts from the group's
    committed offsets, which trail what a worker has stored by up to a commit interval."""
    deadline = time.monotonic() + 30
    while True:
        survey = _versions(env, name)
        found = _by_version(survey)
        if all(found[v]["lag_total"] == lag for v, lag in lags.items()):
            return survey
        assert time.monotonic() < deadline, f"lags {lags} never seen: {found}"
        time.sleep(0.5)


def _answered_by(worker: WorkerProcess, path: str) -> tuple[int, str | None]:
    """The status of ``worker``'s answer to ``path`` and the version that gave it."""
    try:
        with urllib.request.urlopen(worker.base + path, timeout=10) as response:
            return response.status, response.headers.get("X-Kappa-Version")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("X-Kappa-Version")


def test_versions_promote_and_retire(
    kafka_settings: KappaSettings,
    make_spec: Callable[..., Path],
    kappa_env: Callable[..., dict[str, str]],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    unique: str,
    tmp_path: Path,
) -> None:
    name = f"t{unique}"
    topic = f"test-input-{unique}"
    v1_spec = make_spec(windows='{ size = "1h" }', version=1)
    v2_spec = make_spec(windows='{ size = "30m" }', version=2)
    v1_env = kappa_env(v1_spec, partitions=2, KAPPA_WORKER_NAME="v1")
    v2_env = kappa_env(v2_spec, partitions=2, KAPPA_WORKER_NAME="v2", KAPPA_PROMOTE_MAX_LAG="100")
    a = start_worker(v1_env)
    b = start_worker(v2_env)
    a.wait_ready(partitions=2)
    b.wait_ready(partitions=2)

    events = list(generate(DatasetShape(events=2_000, keys=25, seed=31)))
    first, second = events[:1_500], events[1_500:]
    bootstrap = kafka_settings.bootstrap
    asyncio.run(produce_events(bootstrap, topic, first, "customer_id"))
    wait_processed([a], bootstrap, topic)
    wait_processed([b], bootstrap, topic)

    # Both versions, caught up, each with its worker; none promoted yet.
    survey = _settled(v1_env, name, {1: 0, 2: 0})
    assert survey["active"] is None
    found = _by_version(survey)
    assert set(found) == {1, 2}
    keys = {e["customer_id"] for e in first}
    for version, worker in ((1, a), (2, b)):
        report = found[version]
        assert report["lag_total"] == 0
        assert sum(report["lag"][topic].values()) == 0
        assert [w["url"] for w in report["workers"]] == [worker.base]
        assert report["state"]["keys"] == len(keys)
        assert report["active"] is False
        assert report["behind_input_ms"] == 0
    newest = max(e["ts"] for e in first)
    assert survey["input_newest_event_time_iso"][:19] == newest[:19]

    # v2 stops; v1 reads 500 more events: v2 is 500 records behind, with no workers.
    assert b.stop() == 0
    asyncio.run(produce_events(bootstrap, topic, second, "customer_id"))
    wait_processed([a], bootstrap, topic)
    found = _by_version(_settled(v1_env, name, {1: 0}))
    assert found[1]["lag_total"] == 0
    assert found[2]["lag_total"] == len(second)
    assert found[2]["workers"] == []
    text = kappa_cli(v1_env, "versions", name, "--sample", "0")
    assert text.returncode == 0, text.stderr
    assert "v1" in text.stdout
    assert "v2" in text.stdout
    assert f"{len(second)}" in text.stdout

    refused = kappa_cli(v2_env, "promote", name, "2")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "no running workers" in refused.stderr
    assert f"still catching up: {len(second)} input records" in refused.stderr
    assert a.get("/api/active")[1]["active"] is None

    # v2 back: it catches up and is promoted; the v1 worker now answers with v2's windows.
    b = start_worker(v2_env)
    b.wait_ready(partitions=2)
    wait_processed([b], bootstrap, topic)
    key = first[0]["customer_id"]
    status, before = a.get(f"/api/keys/{key}/windows")
    assert status == 200
    assert {w["window"] for w in before["windows"]} == {"1h"}
    assert _answered_by(a, f"/api/keys/{key}/windows") == (200, "1")
    promoted = kappa_cli(v2_env, "promote", str(v2_spec), "2")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    a.wait_until(
        lambda: (a.get("/api/active")[1]["active"] or {}).get("version") == 2,
        30,
        "the v1 worker to follow the promotion",
    )
    active = a.get("/api/active")[1]["active"]
    assert active["results_topic"] == f"kappa.{name}.v2.window-results"
    # Readers learn the windows changed: /api/active names them, and every forwarded
    # answer says which version gave it.
    assert active["windows"] == ["30m"]
    assert a.get("/api/active")[1]["this_worker_windows"] == ["1h"]
    assert _answered_by(a, f"/api/keys/{key}/windows") == (200, "2")
    assert _answered_by(a, f"/api/keys/{key}/windows?window=1h") == (400, "2")

    history = tmp_path / "all.csv"
    write(iter(events), history)
    totals, windows = batch_results(history, [("30m", HALF_HOUR, HALF_HOUR)])
    status, body = a.get(f"/api/keys/{key}/windows")
    assert status == 200, body
    got = {
        (key, w["window"], w["start_ms"]): {"count": w["count"], "values": w["values"]}
        for w in body["windows"]
    }
    want = {k: v for k, v in windows.items() if k[0] == key}
    assert got == want
    status, body = a.get(f"/api/keys/{key}")
    assert status == 200
    assert body["totals"]["count"] == totals[key]["count"]
    survey = _versions(v1_env, name)
    assert survey["active"]["version"] == 2
    assert {v["version"]: v["active"] for v in survey["versions"]} == {1: False, 2: True}
    status_a = a.get("/api/status")[1]["catch_up"]
    assert status_a["version"] == 1
    assert status_a["active"] is False
    assert status_a["active_version"] == 2
    assert status_a["lag_total"] == 0
    shown = kappa_cli(v1_env, "status", "--url", a.base)
    assert shown.returncode == 0, shown.stderr
    assert "version v1, not active (v2 is): lag 0 records" in shown.stdout

    # Bad input: nothing changes.
    unknown = kappa_cli(v1_env, "promote", name, "7")
    assert unknown.returncode == 1
    assert "no version 7" in unknown.stderr
    nobody = kappa_cli(v1_env, "versions", f"nothing-{unique}")
    assert nobody.returncode == 1
    assert "no version of pipeline" in nobody.stderr
    kept = kappa_cli(v1_env, "retire", name, "2", "--yes")
    assert kept.returncode == 4
    assert "is the active version" in kept.stderr
    running = kappa_cli(v1_env, "retire", name, "1", "--yes")
    assert running.returncode == 4
    assert "still has running workers" in running.stderr
    topics, groups = asyncio.run(cluster_names(bootstrap))
    assert f"kappa.{name}.v1.window-results" in topics
    assert f"kappa.{name}.v1" in groups

    # Retire v1 once its worker stopped: topics, group and state dir go; v2 stays.
    state_dir = Path(v1_env["KAPPA_HOME"]) / "state" / f"kappa.{name}.v1"
    assert state_dir.is_dir()
    assert a.stop() == 0
    declined = kappa_cli(v1_env, "retire", name, "1", answer="n\n")
    assert declined.returncode == 1, declined.stdout + declined.stderr
    assert f"topic kappa.{name}.v1.window-results" in declined.stdout
    assert "Aborted" in declined.stderr
    assert state_dir.is_dir()
    done = kappa_cli(v1_env, "retire", name, "1", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not state_dir.exists()

    def v1_gone() -> bool:
        topics, groups = asyncio.run(cluster_names(bootstrap))
        return not any(t.startswith(f"kappa.{name}.v1") for t in topics) and (
            f"kappa.{name}.v1" not in groups
        )

    b.wait_until(v1_gone, 60, "v1's topics and group to be deleted")
    assert set(_by_version(_versions(v2_env, name))) == {2}
    assert b.get(f"/api/keys/{key}")[1]["totals"]["count"] == totals[key]["count"]
