"""``kappa replay`` alone: history file -> input topic, in events/s.

    .venv/bin/python -m bench.replay_speed FILE... [--runs 3] [--args "--max-bad-rows 4"]
        [--other PATH [--other-args "..."]]

Each run replays into a fresh pipeline whose topics exist already, as they do while a
worker runs. It reports two rates: by the replay's own clock (from the start of the
replay to Kafka's last acknowledgement: what the progress bar and the report show) and
by the process's wall time (Python's start-up and imports included). ``--other PATH``
also runs the kappa checkout at PATH, interleaved in the same run, for a before/after
on the same machine and load. Medians of ``--runs``; it reports, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from agents.names import PipelineNames
from agents.spec import load_spec
from app.ports import free_port
from app.settings import KappaSettings
from app.topics import ensure_topics
from bench.workers import ROOT, BenchPipeline, broker_running
from bench.workloads import parse_workload

_REPORT = re.compile(r"([\d,]+) events produced .*? \(([\d,]+) events/s\)", re.DOTALL)


def replay_once(
    settings: KappaSettings, work: Path, checkout: Path, data: Path, args: list[str]
) -> tuple[float, float]:
    """(events/s by the replay's report, events/s by the process's wall time)."""
    # The replay writes to the input topic only; the workload only names the spec's window.
    pipeline = BenchPipeline(settings, work, uuid.uuid4().hex[:8], 4, parse_workload("keys1000", 1))
    env = {**pipeline.env(1, free_port(), "replay"), "PYTHONPATH": str(checkout)}
    spec = load_spec(Path(env["KAPPA_PIPELINE"]))
    asyncio.run(ensure_topics(settings.model_copy(update={"partitions": 4}), PipelineNames(spec)))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(data), *args],
        env={**env, "COLUMNS": "200"},
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    report = _REPORT.search(done.stdout)
    if done.returncode != 0 or report is None:
        raise RuntimeError(f"replay of {data} failed:\n{done.stdout}\n{done.stderr}")
    produced, rate = (int(number.replace(",", "")) for number in report.groups())
    return rate, produced / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--args", default="", help="arguments for kappa replay")
    parser.add_argument("--other", type=Path, help="another kappa checkout to measure too")
    parser.add_argument("--other-args", default=None, help="its arguments (default: --args)")
    args = parser.parse_args()
    checkouts = {ROOT: shlex.split(args.args)}
    if args.other:
        other_args = args.args if args.other_args is None else args.other_args
        checkouts[args.other.resolve()] = shlex.split(other_args)

    settings = KappaSettings()
    with broker_running(settings), tempfile.TemporaryDirectory(prefix="kappa-replay-") as tmp:
        for data in args.files:
            results: dict[Path, list[tuple[float, float]]] = {c: [] for c in checkouts}
            for _ in range(args.runs):
                for checkout, extra in checkouts.items():  # interleaved: the same load
                    results[checkout].append(
                        replay_once(settings, Path(tmp), checkout, data.resolve(), extra)
                    )
            for checkout, rates in results.items():
                own = statistics.median(rate for rate, _ in rates)
                wall = statistics.median(rate for _, rate in rates)
                print(
                    f"{data.name}  {checkout}: {own:,.0f} ev/s by the replay's clock, "
                    f"{wall:,.0f} ev/s by wall time (runs: "
                    + ", ".join(f"{rate:,.0f}" for rate, _ in rates)
                    + ")"
                )


if __name__ == "__main__":
    main()
