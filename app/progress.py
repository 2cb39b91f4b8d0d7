"""What the CLI shows people: the replay progress bar and report, and worker status."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app.group_status import GroupStatus
from app.replay.run import ReplayReport
from tables.times import ms_to_iso

console = Console(stderr=True)


class RichProgress:
    """Bytes read drive the bar and the ETA (row counts are unknown up front). A replay
    runs in two passes (a check of the files, then the replay of what the check kept),
    so the bar counts both, each in bytes of the files."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("replay"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[events]:,} events{task.fields[resumed]}"),
            TextColumn("{task.fields[rate]:,.0f} events/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: Any = None

    def start(self, total_bytes: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            "replay", total=total_bytes, events=0, rate=0.0, resumed=""
        )

    def advance(self, bytes_done: int, events: int) -> None:
        task = self._progress.tasks[self._task]
        elapsed = task.elapsed or 0.0
        rate = events / elapsed if elapsed > 0 else 0.0
        self._progress.update(self._task, completed=bytes_done, events=events, rate=rate)

    def resuming(self, rows: int) -> None:
        """A resumed replay: the rows it wrote before, which it skips now."""
        self._progress.console.print(f"resuming: {rows:,} rows were written before; skipping them")
        self._progress.update(self._task, resumed=f" (+{rows:,} resumed)")

    def warn(self, message: str) -> None:
        self._progress.console.print(f"[bold yellow]warning:[/] {message}")

    def stop(self) -> None:
        self._progress.stop()


def print_replay_report(report: ReplayReport, *, dry_run: bool = False) -> None:
    out = Console()
    if dry_run:
        out.print(
            f"checked [bold]{len(report.files)}[/] file(s) in {report.seconds:.1f}s: "
            f"{report.rows - report.bad_rows:,} good rows, {report.bad_rows:,} bad rows; "
            "nothing was produced (--dry-run)"
        )
    else:
        rate = report.produced / report.seconds if report.seconds > 0 else 0.0
        out.print(
            f"replay [bold]{report.replay_id}[/]: {report.produced:,} events produced from "
            f"{len(report.files)} file(s) in {report.seconds:.1f}s ({rate:,.0f} events/s); "
            f"{report.bad_rows:,} bad rows sent to the dead-letter topic"
        )
        if report.resumed:
            out.print(
                f"resumed: {report.skipped:,} rows written before the replay stopped were "
                "skipped, not sent again"
            )
    if report.seam is not None:
        seam = report.seam
        out.print(
            f"history of the cut {seam.to_json()['cut']}: {seam.rows:,} events before it "
            f"went to {seam.history_topic} (not the input topic); {seam.after_cut:,} rows "
            "at or after it were skipped (the live topic holds those); the history is "
            "sealed"
        )
    if report.would_be_late:
        out.print(f"{report.would_be_late:,} events are late for the pipeline's lateness")
    print_bad_rows(report)


def print_bad_rows(report: ReplayReport) -> None:
    """The first bad rows, with their reasons, and the count of each reason."""
    if not report.bad_rows:
        return
    out = Console()
    table = Table("file", "row", "reason", "detail", title="bad rows")
    for row in report.first_bad_rows:
        table.add_row(row.file, str(row.row_number), row.reason, row.detail)
    out.print(table)
    if report.bad_rows > len(report.first_bad_rows):
        out.print(f"... and {report.bad_rows - len(report.first_bad_rows):,} more")
    out.print("by reason: " + ", ".join(f"{k}={v}" for k, v in report.bad_by_reason.items()))


def print_group_status(group: GroupStatus) -> None:
    """Every worker of the group, the partitions each owns, then each one's details."""
    out = Console()
    first = next(iter(group.workers.values()))
    pipeline = first["pipeline"]
    out.print(
        f"pipeline [bold]{pipeline['name']}[/] v{pipeline['version']}: "
        f"{len(group.workers)} worker(s) answered, {first['partitions']} partitions"
    )
    for url, partitions in sorted(first.get("owners", {}).items()):
        out.print(f"  {url} owns {partitions}")
    for url, why in sorted(group.unreachable.items()):
        out.print(f"[red]  {url} did not answer: {why}[/]")
    for url, body in group.workers.items():
        out.print()
        _print_worker(out, url, body)


def _catch_up_line(catch_up: dict[str, Any]) -> str:
    """The worker's version whole: active or not, lag, rate and ETA (`kappa versions`
    shows every version)."""
    active = catch_up["active"]
    role = (
        "no version promoted yet"
        if active is None
        else "active"
        if active
        else f"not active (v{catch_up['active_version']} is)"
    )
    lag = catch_up["lag_total"]
    rate = catch_up["rate_per_s"]
    return (
        f"version v{catch_up['version']}, {role}: "
        + ("lag unknown" if lag is None else f"lag {lag:,} records")
        + ("" if rate is None else f", {rate:,.0f} records/s")
        + ("" if catch_up["eta"] is None or not lag else f", caught up at {catch_up['eta']}")
    )


def _print_worker(out: Console, url: str, body: dict[str, Any]) -> None:
    out.print(f"worker [bold]{body['worker']}[/] at {url} (up {body['uptime_s']}s)")
    out.print(f"partitions owned: {body['partitions_owned']} of {body['partitions']}")
    if (catch_up := body.get("catch_up")) is not None:
        out.print(_catch_up_line(catch_up))
    table = Table("partition", "watermark (UTC)", "watermark (ms)", "processed offset")
    for partition in sorted({*body["watermarks"], *body["processed_offsets"]}, key=int):
        watermark = body["watermarks"].get(partition)
        table.add_row(
            partition,
            "" if watermark is None else ms_to_iso(watermark) or "",
            str(watermark),
            str(body["processed_offsets"].get(partition)),
        )
    out.print(table)
    recovery = body["recovery"]
    if recovery["in_progress"]:
        eta = "unknown" if recovery["eta_s"] is None else f"{recovery['eta_s']}s"
        out.print(
            f"[yellow]rebuilding state from changelogs: {recovery['remaining_records']:,} "
            f"records left (ETA {eta})[/]"
        )
    for replay in body["replays"]:
        done = "processed" if replay["processed_by_this_worker"] else "in progress"
        # Replays before the check pass recorded no late count.
        late = replay.get("would_be_late")
        out.print(
            f"replay {replay['id']}: {replay['state']}, {replay['produced']:,} events, "
            f"{replay['bad_rows']:,} bad rows"
            + (f", {late:,} late for the lateness" if late else "")
            + f"; {done} by this worker"
        )
    # A count is null when the cluster did not answer for it.
    counts = body["counts"]
    by_reason = counts.get("dead_letters_by_reason_since_start") or {}
    out.print(
        "counts: "
        + ", ".join(
            f"{k}={v if v is None else format(v, ',')}"
            for k, v in counts.items()
            if not isinstance(v, dict)
        )
    )
    if by_reason:
        out.print(
            "dead letters since start by reason: "
            + ", ".join(f"{reason}={n:,}" for reason, n in by_reason.items())
        )
