"""The soak (``make soak``): many keys through one processor under a memory limit.

Runs ``bench.memory_run`` (one partition's processor on real RocksDB tables, the
worker's default budgets, tumbling 1h plus 1d-every-1h windows, one event per key by
default) as a process inside a memory cgroup of its own limited to ``--limit-mb``
(1 GB): the kernel kills it if its memory goes past the limit. It passes when the run
finishes and its sample keys' totals and closed windows equal a plain Python fold.
Prints the rate and the peak RSS. Needs root and a cgroup v1 or v2 memory controller
(a container's own cgroup will do when it is writable); says so otherwise.

    python -m bench.soak --keys 10m
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from bench.memory_run import ROOT

MB = 2**20
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


class Cgroup:
    """A memory cgroup of its own, with a limit, the processes put in it, and its peak."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    def limit(self, limit_bytes: int) -> None:
        name = "memory.max" if self.v2 else "memory.limit_in_bytes"
        (self.path / name).write_text(str(limit_bytes))

    def join(self) -> None:
        """Put the calling process in the group (run in the child before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        found = self.path / name
        return int(found.read_text()) if found.exists() else None

    def killed(self) -> bool:
        """Whether the kernel killed a process of the group for going past its limit."""
        if self.v2:
            events = (self.path / "memory.events").read_text().split()
            return (
                dict(zip(events[::2], map(int, events[1::2]), strict=True)).get("oom_kill", 0) > 0
            )
        control = (self.path / "memory.oom_control").read_text().split()
        pairs = dict(zip(control[::2], map(int, control[1::2]), strict=True))
        return pairs.get("oom_kill", 0) > 0


@contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[Cgroup]:
    """A fresh memory cgroup limited to ``limit_bytes``, removed afterwards."""
    v2 = (CGROUP_V2 / "cgroup.controllers").exists()
    parent = CGROUP_V2 if v2 else CGROUP_V1
    path = parent / f"kappa-soak-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as exc:
        raise SystemExit(
            f"Error: cannot make a memory cgroup under {parent} ({exc}).\n"
            "what to do: run make soak as root on a machine (or a container) whose cgroup "
            "memory controller is writable."
        ) from None
    group = Cgroup(path, v2)
    try:
        group.limit(limit_bytes)
        yield group
    finally:
        path.rmdir()


def parse_count(text: str) -> int:
    """``10m``, ``300k`` or ``5000``."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(text[:-1] if scale > 1 else text) * scale


def soak(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or args.keys
    with tempfile.TemporaryDirectory(prefix="kappa-soak-") as datadir:
        command = [
            sys.executable,
            "-m",
            "bench.memory_run",
            f"--keys={args.keys}",
            f"--events={events}",
            f"--windows={args.windows}",
            f"--hours={args.hours}",
            f"--datadir={datadir}",
            f"--sample={args.sample}",
            "--progress",
        ]
        with memory_cgroup(args.limit_mb * MB) as group:
            run = subprocess.run(
                command, cwd=ROOT, stdout=subprocess.PIPE, preexec_fn=group.join, check=False
            )
            killed, cgroup_peak = group.killed(), group.peak_bytes()
    report: dict[str, Any] = {
        "keys": args.keys,
        "events": events,
        "windows": args.windows,
        "limit_mb": args.limit_mb,
        "exit_code": run.returncode,
        "killed_over_limit": killed,
        "cgroup_peak_mb": None if cgroup_peak is None else cgroup_peak / MB,
    }
    if run.returncode == 0:
        report.update(orjson.loads(run.stdout.splitlines()[-1]))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=parse_count, default=10_000_000, help="e.g. 10m, 300k")
    parser.add_argument("--events", type=parse_count, default=0, help="default: one per key")
    parser.add_argument("--windows", choices=("tumbling", "hopping"), default="hopping")
    parser.add_argument("--hours", type=int, default=48, help="event-time span")
    parser.add_argument("--limit-mb", type=int, default=1024)
    parser.add_argument("--sample", type=int, default=100, help="keys checked against a fold")
    report = soak(parser.parse_args())
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    passed = report["exit_code"] == 0 and report.get("mismatches") == 0
    if passed:
        print(
            f"soak passed: {report['events']:,} events on {report['keys']:,} keys at "
            f"{report['events_per_s']:,.0f} events/s, peak RSS {report['peak_rss_mb']:,.0f} MB "
            f"(limit {report['limit_mb']:,} MB), {report['sample_keys']} sample keys exact"
        )
    else:
        print("soak FAILED: see the report above", file=sys.stderr)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
