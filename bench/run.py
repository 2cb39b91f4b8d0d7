"""kappa's benchmark: throughput, memory, scaling and live latency, against the
physical limit and a peer (Quix Streams).

    .venv/bin/python -m bench.run --repeat 1   # the 5 default workloads, ~18 min
    .venv/bin/python -m bench.run --workloads keys16 --repeat 1   # one workload
    .venv/bin/python -m bench.run --smoke      # a tiny run that checks the harness works
    .venv/bin/python -m bench.run --workloads sessions100 --throughput-only

It starts the project's local Kafka (or uses KAPPA_BOOTSTRAP_SERVERS) and measures in
one run on this machine, for each workload (bench.workloads: the keys, and the window):
the throughput figures of bench.throughput (P_consume, P_decode, replay, naive Faust,
Quix Streams, kappa topic → tables with its per-stage breakdown, file → tables, peak
RSS, and DuckDB's single-thread time for the same aggregation); then, on the first
workload, the scaling figures of bench.scaling (2 workers; 1 partition) and the live
latency of bench.latency at a fixed rate and at half of kappa's measured topic → tables
rate.

It prints a table with each rate's ratio to P_consume and to the peer, and kappa's
file → tables time over DuckDB's, and writes JSON (with the machine: cores, memory,
versions) to bench/results/. It reports; it asserts nothing about time. Quote medians:
the machine is shared.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from app.settings import KappaSettings
from bench import latency, report, scaling, throughput
from bench.report import Sections
from bench.workers import ROOT, broker_running
from bench.workloads import DEFAULT, SMOKE, parse_workloads


def run_once(settings: KappaSettings, args: argparse.Namespace, work: Path) -> Sections:
    sections: Sections = {}
    for i, workload in enumerate(args.workloads):
        data = throughput.dataset(work, workload.events, workload.keys, workload.wide)
        figures, pipeline = throughput.run_once(
            settings, workload, data, args.partitions, work, args.baseline
        )
        sections[workload.name] = figures
        if i == 0 and not args.throughput_only:
            sections["scaling"] = scaling.measure(pipeline, data, workload.events)
            half = figures["topic_to_tables_eps"] / 2
            for name, rate in (("fixed", args.live_rate), ("half max", half)):
                sections[f"latency {name}"] = latency.measure(pipeline, rate, args.live_seconds)
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=100_000, help="per workload, unless it says @<events>"
    )
    parser.add_argument(
        "--workloads",
        default=DEFAULT,
        help=f"comma-separated: keys<N> (1h tumbling), hopping<N> (1d every 1h) or wide<N> "
        f"(1h tumbling, 20-field records) on N keys, "
        f"N with an optional k or m, and optionally @<events>; scaling and latency run on "
        f"the first (default {DEFAULT})",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--live-rate", type=float, default=2_000, help="events/s")
    parser.add_argument("--live-seconds", type=float, default=25, help="per latency run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="measure the workloads' throughput figures only: no scaling, no latency runs",
    )
    parser.add_argument(
        "--smoke", action="store_true", help=f"2k events, 1 run, 2 s latency runs, {SMOKE}"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another kappa tree (e.g. `git archive <commit> | tar -x -C DIR`) whose worker "
        "is measured topic → tables on the keyed input too, in the same run",
    )
    args = parser.parse_args()
    if args.smoke:
        args.events, args.repeat, args.live_seconds = 2_000, 1, 2
        args.workloads = SMOKE
    try:
        args.workloads = parse_workloads(args.workloads, args.events)
    except ValueError as error:
        parser.error(str(error))
    if args.baseline is not None and not (args.baseline / "app" / "cli.py").is_file():
        parser.error(f"--baseline {args.baseline} is not a kappa tree (no app/cli.py in it)")

    settings = KappaSettings()
    with broker_running(settings), tempfile.TemporaryDirectory(prefix="kappa-bench-") as tmp:
        runs = [run_once(settings, args, Path(tmp)) for _ in range(args.repeat)]

    result = report.medians(runs)
    report.print_table(
        result,
        f"{args.partitions} partitions, median of {len(runs)} run(s)",
        args.workloads,
    )
    options = {k: str(v) for k, v in vars(args).items()}
    options["workloads"] = ",".join(f"{w.name}@{w.events}" for w in args.workloads)
    path = report.write_json(args.out, options, args.workloads, runs, result)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
