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

Sections = dict[str, dict[str, float]]

RATES = [  # (label, figure): events/s, shown with ÷ P_consume and ÷ peer
    ("P_consume (bare aiokafka)", "p_consume_eps"),
    ("P_decode (aiokafka + orjson)", "p_decode_eps"),
    ("naive Faust: topic → Table", "naive_faust_eps"),
    ("Quix Streams: topic → state", "quix_eps"),
    ("kappa: topic → tables", "topic_to_tables_eps"),
    ("kappa replay: file → topic", "replay_eps"),
    ("kappa file → tables (end to end)", "file_to_tables_eps"),
]
MEMORY = [
    ("kappa worker peak RSS (topic)", "topic_to_tables_peak_rss_mb"),
    ("kappa worker peak RSS (replay)", "worker_peak_rss_mb"),
    ("naive Faust peak RSS", "naive_faust_peak_rss_mb"),
    ("Quix Streams peak RSS", "quix_peak_rss_mb"),
    ("replay peak RSS", "replay_peak_rss_mb"),
]
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


def _rate(label: str, value: float, limit: float, peer_eps: float | None) -> str:
    ratio = f"{value / peer_eps:>10.3f}" if peer_eps else f"{'':>10}"
    return f"{label:<36}{value:>10,.0f} ev/s{value / limit:>13.3f}{ratio}"


def print_table(result: Sections, header: str, first: str) -> None:
    """Every figure; rates with their ratio to the section's P_consume and to Quix."""
    print(f"\n{header}")
    print(f"{'measure':<36}{'value':>15}{'÷ P_consume':>13}{'÷ peer':>10}")
    for section, figures in result.items():
        if not section.startswith("keys "):
            continue
        limit, quix = figures["p_consume_eps"], figures["quix_eps"]
        print(f"-- {section}")
        for label, key in RATES:
            print(_rate(label, figures[key], limit, quix))
        for label, key in MEMORY:
            print(f"{label:<36}{figures[key]:>12,.0f} MB")
        share = figures["topic_to_tables_ack_wait_share"]
        print(f"{'kappa: time waiting for acks':<36}{share:>14.1%}")
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
        print(f"{label:<36}{result['scaling'][key]:>12,.0f} MB")
    for section, figures in result.items():
        if section.startswith("latency"):
            print(
                f"-- {section}: {figures['rate_eps']:,.0f} ev/s, {figures['samples']:,.0f} samples"
            )
            for name in ("p50", "p99", "p999"):
                label = f"produce → visible in the API {name}"
                print(f"{label:<36}{figures[name + '_ms']:>12,.1f} ms")


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


def write_json(out: Path, args: dict[str, str], runs: list[Sections], result: Sections) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    body = {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "args": args,
        "runs": runs,
        "medians": result,
    }
    path = out / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    return path
