"""``kappa versions`` as a table: one row per version, then each version's lag per
partition."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from app.version_survey import PipelineSurvey
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
    out = Console()
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
        "version",
        "active",
        "lag",
        "rate (rec/s)",
        "ETA",
        "watermark (UTC)",
        "behind input",
        "keys",
        "open windows",
        "workers",
    )
    for version, report in sorted(found.versions.items()):
        progress = report.progress
        state = report.state()
        watermark = report.watermark()
        workers = [url + ("" if url in report.workers else " (no answer)") for url in report.urls]
        table.add_row(
            f"v{version}",
            "[green]active[/]" if report.active else "",
            f"{progress.lag:,}",
            "?" if progress.rate is None else f"{progress.rate:,.0f}",
            "caught up"
            if progress.eta_s == 0
            else "?"
            if progress.eta_s is None
            else _duration(int(progress.eta_s * 1000)),
            "?" if watermark is None else ms_to_iso(watermark) or "?",
            _duration(report.behind_input_ms(newest)),
            "?" if state is None else f"{state['keys']:,}",
            "?" if state is None else f"{state['open_windows']:,}",
            "\n".join(workers) or f"none ({report.group.state})",
        )
    out.print(table)
    for version, report in sorted(found.versions.items()):
        for topic, partitions in report.lag.items():
            shown = ", ".join(f"{p}: {n:,}" for p, n in sorted(partitions.items()))
            out.print(f"v{version} lag on {topic}: {shown}")
