"""The CPU seconds ``watch`` counts for a worker, against a real process and scripted
progress (no broker): they start before the worker's first event, however its count of
events reads in between."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.workers import Seen, Worker, watch

# Waits for the file named by its argument, burns about half a CPU second (its
# "events"), then waits to be stopped.
BURN = """
import pathlib, sys, time
go = pathlib.Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
time.sleep(60)
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cpu_counts_from_before_the_first_event_when_the_count_reads_zero_later(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", BURN, str(go)])
    process = psutil.Process(proc.pid)
    polls = 0

    def progress(_bodies: Sequence[Any | None]) -> Seen:
        """Idle at the first poll; at the second, once the worker has burnt its CPU, 5
        events; at the third a count of 0 though the first event was reported (as the
        hop's reads while Kafka does not answer); then all 10 events."""
        nonlocal polls
        polls += 1
        if polls == 1:
            return Seen(0, None, None)
        if polls == 2:
            go.touch()
            while _cpu(process) < 0.45:
                pass
            return Seen(5, 1.0, 1.5)
        return Seen(0, 1.0, 2.0) if polls == 3 else Seen(10, 1.0, 2.0)

    worker = Worker(["burn"], {}, _closed_port(), tmp_path / "log")
    try:
        timed = watch([worker], [proc], "/api/status", progress, 10)
    finally:
        proc.kill()
        proc.wait()
    assert polls == 4
    assert timed.seconds == 1.0
    (cpu_s,) = timed.cpu_s
    assert cpu_s >= 0.3
    assert timed.figures("w", 10)["w_events_per_cpu_s"] <= 10 / 0.3


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
