"""A replay that is safe to run again: ``kill -9`` then the same ``--id`` resumes and counts
every row once; a file replayed before is refused unless ``--force``; bad resumes are
refused with nothing produced."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datagen import generate, write
from app.exit_codes import ExitCode
from app.kafka_client import offset_ranges
from tests.support.datasets import CRASH, HOURLY
from tests.support.harness import Harness
from tests.support.invariant import assert_equals_batch
from tests.support.kafka import produce_raw, read_all
from tests.support.worker import kappa_cli, run_kappa

pytestmark = pytest.mark.broker


def _records_in(bootstrap: str, topic: str) -> int:
    ranges = asyncio.run(offset_ranges({"bootstrap_servers": bootstrap}, [topic]))
    return sum(end - begin for begin, end in ranges.get(topic, {}).values())


def _ledger(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    """The newest ledger record of each replay, read with plain aiokafka."""
    return {
        r.key.decode().removeprefix("replay:"): orjson.loads(r.value)
        for r in asyncio.run(read_all(bootstrap, topic))
        if r.value is not None and r.key.startswith(b"replay:")
    }


def _start_replay(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "replay", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _as_parquet(events: list[dict[str, Any]], path: Path) -> Path:
    """The events as Parquet, in row groups, shuffled so that --order-by-time sorts them."""
    shuffled = list(events)
    random.Random(4).shuffle(shuffled)
    pq.write_table(pa.Table.from_pylist(shuffled), path, row_group_size=1000)
    return path


@pytest.mark.parametrize("kind", ["csv.gz", "parquet --order-by-time"])
def test_kill_minus_nine_replay_then_resume_counts_every_row_once(
    kind: str, kappa: Harness
) -> None:
    events: list[dict[str, Any]] = list(generate(CRASH))
    csv_path = kappa.tmp_path / "history.csv.gz"  # what the batch computation reads
    write(iter(events), csv_path)
    sorted_parquet = kind.startswith("parquet")
    path = _as_parquet(events, kappa.tmp_path / "history.parquet") if sorted_parquet else csv_path
    flags = ["--order-by-time", "--sort-chunk-rows", "3000"] if sorted_parquet else []
    env = kappa.env(kappa.make_spec(windows='{ size = "1h" }', retention="30d"), partitions=2)
    bootstrap, topic = kappa.settings.bootstrap, kappa.topic
    worker = kappa.start_worker(env)
    worker.wait_ready(partitions=2)

    log = kappa.tmp_path / "replay.log"
    first = _start_replay(env, log, str(path), *flags, "--id", "r1", "--rate", "3000")
    deadline = time.monotonic() + 120
    while _records_in(bootstrap, topic) < 0.3 * len(events):
        assert first.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the replay produced too little"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    written = _records_in(bootstrap, topic)
    assert 0.3 * len(events) <= written < len(events), "killed mid-replay"
    control = f"kappa.t{kappa.unique}.control"
    assert _ledger(bootstrap, control)["r1"]["state"] == "running"

    # A resume with other options would put the rows in another order: refused.
    other_flags = [] if sorted_parquet else ["--order-by-time"]
    other = kappa_cli(env, "replay", str(path), "--id", "r1", *other_flags)
    assert other.returncode == ExitCode.REFUSED, other.stderr
    assert "--order-by-time" in other.stderr
    assert "cannot be resumed" in other.stderr
    assert _records_in(bootstrap, topic) == written

    # The sort's chunk size does not change the order: it is not an option that differs.
    resume_flags = ["--order-by-time", "--sort-chunk-rows", "7000"] if sorted_parquet else []
    out = kappa_cli(env, "replay", str(path), "--id", "r1", *resume_flags)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resumed" in out.stdout
    # Independently of kappa: the topic holds each row once, numbered without a gap.
    records = asyncio.run(read_all(bootstrap, topic))
    assert len(records) == len(events)
    per_partition: dict[int, list[int]] = {}
    for record in records:
        headers = dict(record.headers)
        assert headers["kappa.replay"] == b"r1"
        per_partition.setdefault(record.partition, []).append(int(headers["kappa.seq"]))
    for seqs in per_partition.values():
        assert seqs == list(range(1, len(seqs) + 1))

    entry = _ledger(bootstrap, control)["r1"]
    assert entry["state"] == "complete"
    assert entry["resumes"] == 1
    assert entry["rows"]["good"] == len(events)
    assert entry["rows"]["skipped"] == written
    assert entry["files"][0]["path"] == str(path)
    assert len(entry["files"][0]["sha256"]) == 64
    assert entry["files"][0]["size"] == path.stat().st_size

    again = kappa_cli(env, "replay", str(path), "--id", "r1", *resume_flags)
    assert again.returncode == ExitCode.REFUSED
    assert "replay r1 is complete" in again.stderr
    assert_equals_batch([worker], bootstrap, kappa.unique, csv_path, events, HOURLY)


def test_a_file_replayed_before_is_refused_unless_force(kappa: Harness, tmp_path: Path) -> None:
    events = [
        {"customer_id": f"c{i % 7}", "ts": f"2024-01-01T00:{i % 60:02d}:00Z", "amount": "1.1"}
        for i in range(50)
    ]
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    copy = tmp_path / "renamed.jsonl"
    copy.write_bytes(path.read_bytes())
    env = kappa.env(kappa.make_spec(), partitions=2)
    bootstrap, topic = kappa.settings.bootstrap, kappa.topic

    run_kappa(env, "replay", str(path), "--id", "first")
    assert _records_in(bootstrap, topic) == len(events)

    refused = kappa_cli(env, "replay", str(copy))  # the same bytes under another name
    assert refused.returncode == ExitCode.REFUSED
    assert "already replayed" in refused.stderr
    assert "replay first" in refused.stderr
    assert "--force" in refused.stderr
    twice = kappa_cli(env, "replay", str(path), str(copy), "--force", "--id", "dup-in-one")
    assert twice.returncode == 0, twice.stderr
    assert _records_in(bootstrap, topic) == 3 * len(events)
    both = kappa_cli(env, "replay", str(path), str(copy), "--id", "dup-again")
    assert both.returncode == ExitCode.REFUSED
    assert _records_in(bootstrap, topic) == 3 * len(events)

    # A ledger record that cannot be read: no resume under its id, no hash check without it.
    control = f"kappa.t{kappa.unique}.control"
    asyncio.run(produce_raw(bootstrap, control, [(b"replay:broken", b"{not json")]))
    resume = kappa_cli(env, "replay", str(path), "--id", "broken")
    assert resume.returncode == ExitCode.ERROR
    assert "cannot be read" in resume.stderr
    other = tmp_path / "other.jsonl"
    other.write_bytes(path.read_bytes().replace(b"1.1", b"2.3"))
    unsure = kappa_cli(env, "replay", str(other))
    assert unsure.returncode == ExitCode.ERROR
    assert "cannot tell whether" in unsure.stderr
    assert _records_in(bootstrap, topic) == 3 * len(events)
    run_kappa(env, "replay", str(other), "--force")
    assert _records_in(bootstrap, topic) == 4 * len(events)
