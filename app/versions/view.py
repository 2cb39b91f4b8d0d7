"""``kappa versions`` as a table: one row per version, then each version's lag per
partition."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Column, Table

from app.sink.schema import VersionTables
from app.versions.catch_up import CatchUp
from app.versions.survey import PipelineSurvey
from tables.times import ms_to_iso


def _duration(ms: int | None) -> str:
    if ms is None:
        return "?"
    seconds = ms / 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def print_versions(found: PipelineSurvey) -> None:
    # Written to a file or a pipe, the table is not cut to rich's default 80 columns.
    out = Console(width=None if sys.stdout.isatty() else 120)
    newest = found.input_newest()
    active = found.active
    out.print(
        f"pipeline [bold]{found.pipeline}[/]: "
        + (
            f"active version v{active.version} since {ms_to_iso(active.promoted_at_ms)} "
            f"(results: {active.results_topic})"
            if active
            else "no version promoted yet (each worker answers for its own version)"
        )
    )
    if newest:
        out.print(f"newest input event: {ms_to_iso(max(newest.values()))}")
    table = Table(
        Column("version", no_wrap=True),
        "lag",
        "rec/s",
        "ETA",
        Column("watermark (UTC)", no_wrap=True),
        "behind",
        "keys",
        "windows",
        "sink lag",
    )
    for version, report in sorted(found.versions.items()):
        progress = report.progress
        state = report.state()
        watermark = report.watermark()
        table.add_row(
            f"v{version}" + (" [green](active)[/]" if report.active else ""),
            "?" if progress is None else f"{progress.lag:,}",
            "?" if progress is None or progress.rate is None else f"{progress.rate:,.0f}",
            _eta(progress),
            "?" if watermark is None else ms_to_iso(watermark) or "?",
            _duration(report.behind_input_ms(newest)),
            _count(state, "keys"),
            _count(state, "open_windows"),
            _sink_lag(found, version),
        )
    out.print(table)
    if found.sink is not None:
        views = VersionTables(found.pipeline, 0, "")
        out.print(
            f"sink: PostgreSQL does not answer ({found.sink.error})"
            if found.sink.error
            else f"sink: the views {views.windows_view} and {views.totals_view} show "
            f"v{found.sink.views_version}"
        )
    for version, report in sorted(found.versions.items()):
        if (seam := report.seam()) is not None:
            _print_seam(out, version, seam)
    for version, report in sorted(found.versions.items()):
        workers = [url + ("" if url in report.workers else " (no answer)") for url in report.urls]
        out.print(
            f"v{version} workers: "
            + (", ".join(workers) or f"none (consumer group {report.group.state})")
        )
        for topic, partitions in report.lag.items():
            shown = ", ".join(f"{p}: {n:,}" for p, n in sorted(partitions.items()))
            out.print(f"v{version} lag on {topic}: {shown}")


def _print_seam(out: Console, version: int, seam: dict[str, Any]) -> None:
    states = ", ".join(f"{p}: {state}" for p, state in seam["states"].items())
    firsts = ", ".join(
        f"{p}: {'-' if offset is None else offset}"
        for p, offset in seam["first_live_offsets"].items()
    )
    out.print(
        f"v{version} seam: cut {seam['cut']}, "
        + ("history sealed" if seam["sealed"] else "waiting for its history (replay it)")
        + f"; {seam['rows_taken_from_history']:,} rows from history, "
        f"{seam['live_skipped_before_cut']:,} live records skipped before the cut; "
        f"partitions {states}; first live offsets {firsts}"
    )
    for line in seam["gap_explanation"]:
        out.print(f"[bold red]v{version} GAP AFTER THE CUT:[/] {line}")


def _sink_lag(found: PipelineSurvey, version: int) -> str:
    """Records of the version's results and totals not yet in PostgreSQL; ``-`` without
    a sink, ``?`` when PostgreSQL does not answer or no sink has started it."""
    if found.sink is None:
        return "-"
    lag = found.sink.lags.get(version)
    return "?" if lag is None or not lag.started else f"{lag.total:,}"


def _eta(progress: CatchUp | None) -> str:
    if progress is None or progress.eta_s is None:
        return "?"
    return "caught up" if progress.eta_s == 0 else _duration(int(progress.eta_s * 1000))


def _count(state: dict[str, int | None] | None, name: str) -> str:
    """A state count, or ? (no worker answered, or one still counts its stored keys)."""
    count = None if state is None else state[name]
    return "?" if count is None else f"{count:,}"
