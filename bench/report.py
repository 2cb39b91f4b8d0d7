"""The benchmark's outputs: one printed table and a JSON file with the machine."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import peer
from bench.workloads import Workload

Sections = dict[str, dict[str, float]]

RATES = [  # (label, figure): events/s, shown with ÷ P_consume and ÷ peer
    ("P_consume (bare aiokafka)", "p_consume_eps"),
    ("P_decode (aiokafka + orjson)", "p_decode_eps"),
    ("P_results (bare producer, results)", "p_results_eps"),
    ("naive Faust: topic → Table", "naive_faust_eps"),
    ("Quix Streams: topic → state", "quix_eps"),
    ("kappa: topic → tables", "topic_to_tables_eps"),
    ("kappa: unkeyed topic → tables (hop)", "hop_topic_to_tables_eps"),
    ("Quix Streams: unkeyed, group_by", "quix_unkeyed_eps"),
    ("kappa replay: file → topic", "replay_eps"),
    ("kappa file → tables (end to end)", "file_to_tables_eps"),
]
MEMORY = [
    ("kappa worker peak RSS (topic)", "topic_to_tables_peak_rss_mb"),
    ("kappa worker peak RSS (unkeyed, hop)", "hop_topic_to_tables_peak_rss_mb"),
    ("kappa worker peak RSS (replay)", "worker_peak_rss_mb"),
    ("naive Faust peak RSS", "naive_faust_peak_rss_mb"),
    ("Quix Streams peak RSS", "quix_peak_rss_mb"),
    ("Quix Streams peak RSS (unkeyed)", "quix_unkeyed_peak_rss_mb"),
    ("replay peak RSS", "replay_peak_rss_mb"),
]
STALLS = [  # (label, figure): the longest the worker's event loop was held at once
    ("kappa worker longest stall (replay)", "file_to_tables_longest_stall_s"),
    ("kappa worker longest stall (topic)", "topic_to_tables_longest_stall_s"),
]
STAGES = [  # (label, share of the topic → tables run, from the worker's counters)
    ("fetch: waiting for the next batch", "topic_to_tables_fetch_share"),
    ("decode and validate", "topic_to_tables_decode_share"),
    ("aggregate", "topic_to_tables_aggregate_share"),
    ("store: outputs, state, commits", "topic_to_tables_store_share"),
    ("  of which waiting for acks", "topic_to_tables_ack_wait_share"),
]
# With --baseline: the same keyed run by another tree's worker.
BASELINE = [
    ("baseline kappa: topic → tables", "baseline_topic_to_tables_eps"),
    ("baseline kappa peak RSS (topic)", "baseline_topic_to_tables_peak_rss_mb"),
]
# The stages that do not overlap; the rest of the run is in none of them.
DISJOINT_STAGES = ("fetch", "decode", "aggregate", "store")
SCALING_RATES = [
    ("kappa: 1 worker, replay → tables", "one_worker_eps"),
    ("kappa: 2 workers, replay → tables", "two_workers_eps"),
    ("kappa: 1 worker, 1 partition", "one_partition_eps"),
]
SCALING_MEMORY = [
    ("kappa 1 worker: peak RSS", "one_worker_peak_rss_mb"),
    ("kappa 2 workers: larger peak RSS", "two_workers_peak_rss_mb"),
    ("kappa 1 partition: peak RSS", "one_partition_peak_rss_mb"),
]


def medians(runs: list[Sections]) -> Sections:
    return {
        section: {k: statistics.median(run[section][k] for run in runs) for k in figures}
        for section, figures in runs[0].items()
    }


def ratios(figures: dict[str, float]) -> dict[str, float]:
    """A workload's ratios, of its (median) figures: every rate ÷ P_consume and ÷ Quix,
    kappa's file → tables time ÷ DuckDB's, and the share of the topic → tables run in no
    stage."""
    result = {"file_to_tables_over_duckdb": figures["file_to_tables_s"] / figures["duckdb_s"]}
    for _, key in RATES:
        for name, limit in (("p_consume", "p_consume_eps"), ("quix", "quix_eps")):
            if key != limit:
                result[f"{key}_over_{name}"] = figures[key] / figures[limit]
    # The physical limit: a worker must both read every event and send every result.
    result["topic_to_tables_eps_over_p_results"] = (
        figures["topic_to_tables_eps"] / figures["p_results_eps"]
    )
    staged = sum(figures[f"topic_to_tables_{stage}_share"] for stage in DISJOINT_STAGES)
    result["topic_to_tables_other_share"] = 1 - staged
    result["hop_over_direct"] = figures["hop_topic_to_tables_eps"] / figures["topic_to_tables_eps"]
    result["hop_over_quix_unkeyed"] = (
        figures["hop_topic_to_tables_eps"] / figures["quix_unkeyed_eps"]
    )
    per_cpu = "events_per_cpu_s"
    result["topic_to_tables_over_quix_per_cpu"] = (
        figures[f"topic_to_tables_{per_cpu}"] / figures[f"quix_{per_cpu}"]
    )
    if "baseline_topic_to_tables_eps" in figures:
        result["topic_to_tables_over_baseline"] = (
            figures["topic_to_tables_eps"] / figures["baseline_topic_to_tables_eps"]
        )
        # Steadier than the rates on a shared machine: CPU time does not count the
        # time another process held the cores.
        result["topic_to_tables_over_baseline_per_cpu"] = (
            figures[f"topic_to_tables_{per_cpu}"] / figures[f"baseline_topic_to_tables_{per_cpu}"]
        )
    return result


def _rate(label: str, value: float, limit: float, peer_eps: float | None) -> str:
    ratio = f"{value / peer_eps:>10.3f}" if peer_eps else f"{'':>10}"
    return f"{label:<36}{value:>10,.0f} ev/s{value / limit:>13.3f}{ratio}"


def _workload(workload: Workload, figures: dict[str, float]) -> None:
    limit, quix = figures["p_consume_eps"], figures["quix_eps"]
    print(f"-- {workload.name}: {workload.description}")
    for label, key in RATES:
        print(_rate(label, figures[key], limit, quix))
    for label, key in MEMORY:
        print(f"{label:<36}{figures[key]:>12,.0f} MB")
    if BASELINE[0][1] in figures:
        (rate_label, rate), (rss_label, rss) = BASELINE
        print(_rate(rate_label, figures[rate], limit, quix))
        print(f"{rss_label:<36}{figures[rss]:>12,.0f} MB")
    for label, key in STALLS:
        print(f"{label:<36}{figures[key]:>13.3f} s")
    unanswered = figures["file_to_tables_unanswered_status"]
    print(f"{'status requests unanswered in 10 s':<36}{unanswered:>12,.0f}")
    print("kappa worker, share of topic → tables:")
    for label, key in STAGES:
        print(f"  {label:<34}{figures[key]:>14.1%}")
    derived = ratios(figures)
    print(f"  {'in no stage':<34}{derived['topic_to_tables_other_share']:>14.1%}")
    print(f"{'DuckDB, 1 thread: file → results':<36}{figures['duckdb_s']:>13.3f} s")
    print(f"{'kappa file → tables':<36}{figures['file_to_tables_s']:>13.3f} s")
    over = derived["file_to_tables_over_duckdb"]
    print(f"{'kappa file → tables ÷ DuckDB':<36}{over:>13.1f} x")
    print(f"{'window results per event':<36}{figures['results_per_event']:>13.2f}")
    print(f"{'P_produce (bare producer)':<36}{figures['p_produce_rps']:>10,.0f} records/s")
    if workload.sessions:
        print(
            f"sessions equal to DuckDB's: kappa {figures['sessions_kappa_checked']:,.0f} "
            f"(sample keys, all), Quix {figures['sessions_quix_checked']:,.0f} (all keys, "
            f"closed), of {figures['sessions_total']:,.0f}"
        )


def _summary(result: Sections, workloads: list[Workload]) -> None:
    """The headline figures of every workload side by side."""
    print("-- kappa per workload")
    print(
        f"{'workload':<16}{'topic → tables':>20}{'÷ P_consume':>13}{'÷ P_results':>13}"
        f"{'÷ Quix':>9}{'file → tables ÷ DuckDB':>25}"
    )
    for workload in workloads:
        figures = result[workload.name]
        derived = ratios(figures)
        print(
            f"{workload.name:<16}{figures['topic_to_tables_eps']:>15,.0f} ev/s"
            f"{derived['topic_to_tables_eps_over_p_consume']:>13.3f}"
            f"{derived['topic_to_tables_eps_over_p_results']:>13.3f}"
            f"{derived['topic_to_tables_eps_over_quix']:>9.2f}"
            f"{derived['file_to_tables_over_duckdb']:>24.1f}x"
        )


LANES = [  # (lane, kappa's rate and peak RSS, Quix's rate and peak RSS)
    ("keyed", "topic_to_tables", "quix"),
    ("unkeyed", "hop_topic_to_tables", "quix_unkeyed"),
    ("baseline", "baseline_topic_to_tables", "quix"),
]


def _lanes(result: Sections, workloads: list[Workload]) -> None:
    """Keyed input (kappa's direct lane) beside unkeyed input (its hop), each with
    Quix on the same events: rates, events per CPU second (the steadier figure on a
    shared machine) and every process's peak RSS."""
    print("-- keyed input (direct lane) and unkeyed input (hop), topic → tables")
    print(
        f"{'workload':<16}{'input':<10}{'kappa':>15}{'per CPU s':>11}{'RSS':>9}"
        f"{'Quix':>15}{'per CPU s':>11}{'RSS':>9}{'÷ Quix':>8}{'÷ keyed':>9}{'per CPU s':>11}"
    )
    for workload in workloads:
        figures = result[workload.name]
        keyed = figures["topic_to_tables_eps"]
        keyed_cpu = figures["topic_to_tables_events_per_cpu_s"]
        for lane, kappa, peer_name in LANES:
            if f"{kappa}_eps" not in figures:
                continue
            rate, quix = figures[f"{kappa}_eps"], figures[f"{peer_name}_eps"]
            per_cpu = figures[f"{kappa}_events_per_cpu_s"]
            print(
                f"{workload.name:<16}{lane:<10}{rate:>10,.0f} ev/s{per_cpu:>11,.0f}"
                f"{figures[f'{kappa}_peak_rss_mb']:>6,.0f} MB"
                f"{quix:>10,.0f} ev/s{figures[f'{peer_name}_events_per_cpu_s']:>11,.0f}"
                f"{figures[f'{peer_name}_peak_rss_mb']:>6,.0f} MB"
                f"{rate / quix:>8.2f}{rate / keyed:>9.2f}{per_cpu / keyed_cpu:>11.2f}"
            )


def _scaling(result: Sections, first: str) -> None:
    """The scaling figures, measured on the ``first`` workload."""
    base = result[first]
    scaling = result["scaling"]
    print(f"-- scaling ({first}; 4 partitions, unless said; 1 partition ÷ topic → tables)")
    for label, key in SCALING_RATES:
        print(_rate(label, scaling[key], base["p_consume_eps"], None))
    two_over_one = scaling["two_workers_eps"] / scaling["one_worker_eps"]
    print(f"{'2 workers ÷ 1 worker':<36}{two_over_one:>15.2f}")
    print(
        f"{'1 partition ÷ 4 partitions':<36}"
        f"{scaling['one_partition_eps'] / base['topic_to_tables_eps']:>15.2f}"
    )
    for label, key in SCALING_MEMORY:
        print(f"{label:<36}{scaling[key]:>12,.0f} MB")


def print_table(result: Sections, header: str, workloads: list[Workload]) -> None:
    """Every figure; rates with their ratio to the workload's P_consume and to Quix.
    Scaling and latency ran on the first workload (unless the run left them out)."""
    print(f"\n{header}")
    print(f"{'measure':<36}{'value':>15}{'÷ P_consume':>13}{'÷ peer':>10}")
    for workload in workloads:
        _workload(workload, result[workload.name])
    if "scaling" in result:
        _scaling(result, workloads[0].name)
    for section, figures in result.items():
        if section.startswith("latency"):
            print(
                f"-- {section}: {figures['rate_eps']:,.0f} ev/s, {figures['samples']:,.0f} samples"
            )
            for name in ("p50", "p99", "p999"):
                label = f"produce → visible in the API {name}"
                print(f"{label:<36}{figures[name + '_ms']:>12,.1f} ms")
    _summary(result, workloads)
    _lanes(result, workloads)


def machine() -> dict[str, Any]:
    versions = {
        name: metadata.version(name)
        for name in ("faust-streaming", "aiokafka", "rocksdict", "orjson")
    }
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "quixstreams": peer.quix_version(),
    }


def write_json(
    out: Path,
    args: dict[str, str],
    workloads: list[Workload],
    runs: list[Sections],
    result: Sections,
) -> Path:
    """Every run's figures, their medians, and each workload's ratios of the medians."""
    out.mkdir(parents=True, exist_ok=True)
    body = {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "args": args,
        "workloads": {workload.name: workload.description for workload in workloads},
        "runs": runs,
        "medians": result,
        "ratios": {workload.name: ratios(result[workload.name]) for workload in workloads},
    }
    path = out / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    return path
