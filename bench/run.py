"""kappa's benchmark: throughput, memory, scaling and live latency, against the
physical limit and a peer (Quix Streams).

    .venv/bin/python -m bench.run --repeat 1   # 100k events on 1k and 100k keys, ~10 min
    .venv/bin/python -m bench.run --smoke      # a tiny run that checks the harness works

It starts the project's local Kafka (or uses KAPPA_BOOTSTRAP_SERVERS) and measures in
one run on this machine, for each key count: the throughput figures of
bench.throughput (P_consume, P_decode, replay, naive Faust, Quix Streams, kappa topic →
tables and file → tables, with peak RSS); then, on the first key count, the scaling
figures of bench.scaling (2 workers; 1 partition) and the live latency of
bench.latency at a fixed rate and at half of kappa's measured topic → tables rate.

It prints a table with each rate's ratio to P_consume and to the peer, and writes JSON
(with the machine: cores, memory, versions) to bench/results/. It reports; it asserts
nothing about time. Quote medians: the machine is shared.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from app.settings import KappaSettings
from bench import latency, report, scaling, throughput
from bench.report import Sections
from bench.workers import ROOT, broker_running


def run_once(settings: KappaSettings, args: argparse.Namespace, work: Path) -> Sections:
    sections: Sections = {}
    for i, keys in enumerate(args.keys):
        data = throughput.dataset(work, args.events, keys)
        figures, pipeline = throughput.run_once(settings, data, args.events, args.partitions, work)
        sections[f"keys {keys}"] = figures
        if i == 0:
            sections["scaling"] = scaling.measure(pipeline, data, args.events)
            half = figures["topic_to_tables_eps"] / 2
            for name, rate in (("fixed", args.live_rate), ("half max", half)):
                sections[f"latency {name}"] = latency.measure(
                    pipeline, rate, keys, args.live_seconds
                )
    return sections


def _key_counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--keys", type=_key_counts, default=[1_000, 100_000], help="comma-separated key counts"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--live-rate", type=float, default=2_000, help="events/s")
    parser.add_argument("--live-seconds", type=float, default=25, help="per latency run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are reported")
    parser.add_argument("--smoke", action="store_true", help="2k events, 1 run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.keys, args.repeat, args.live_seconds = 2_000, [50, 500], 1, 2

    settings = KappaSettings()
    with broker_running(settings), tempfile.TemporaryDirectory(prefix="kappa-bench-") as tmp:
        runs = [run_once(settings, args, Path(tmp)) for _ in range(args.repeat)]

    result = report.medians(runs)
    report.print_table(
        result,
        f"{args.events:,} events, {args.partitions} partitions, median of {len(runs)} run(s)",
        f"keys {args.keys[0]}",
    )
    path = report.write_json(args.out, {k: str(v) for k, v in vars(args).items()}, runs, result)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
