"""The ``kappa`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import click
import orjson

from agents.errors import KappaError, Refused
from app import exit_codes
from app.exit_codes import ExitCode
from app.history_formats import FORMATS
from app.settings import KappaSettings

if TYPE_CHECKING:
    from app.broker.local import LocalKafka
    from app.postgres.local import LocalPostgres


def _settings() -> KappaSettings:
    from pydantic import ValidationError

    try:
        return KappaSettings()
    except ValidationError as exc:
        raise click.ClickException(
            str(
                KappaError(
                    "invalid setting: " + invalid_settings(exc),
                    hint="correct or unset that environment variable (README.md, Settings, "
                    "says what each takes); nothing was done",
                )
            )
        ) from None


def invalid_settings(exc: Any) -> str:
    """Each bad KAPPA_* variable of pydantic's ValidationError, with what is wrong, on
    one line."""
    return "; ".join(
        f"{_variable(error['loc'])}={error.get('input')!r}: {error['msg']}"
        for error in exc.errors()
    )


def _variable(loc: tuple[Any, ...]) -> str:
    name = "_".join(map(str, loc)).upper()
    return name if name.startswith(("KAPPA_", "KAFKA_")) else f"KAPPA_{name}"


def _fail(exc: KappaError) -> None:
    if isinstance(exc, Refused):
        raise RefusedExit(str(exc))
    raise click.ClickException(str(exc))


def _with_pipeline(settings: KappaSettings, pipeline: Path | None) -> KappaSettings:
    """The settings, with the pipeline given on the command line over KAPPA_PIPELINE."""
    return settings if pipeline is None else settings.model_copy(update={"pipeline": pipeline})


PIPELINE_HELP = "The pipeline spec (TOML). Default: KAPPA_PIPELINE, else examples/orders.toml."


class KappaGroup(click.Group):
    """``kappa --help`` ends with what each exit code means."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Exit codes (every command)"):
            formatter.write_dl(exit_codes.rows())


@click.group(
    cls=KappaGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    """kappa: one code path for replayed history and live Kafka events.

    Settings come from KAPPA_* environment variables (see `kappa settings`).
    """


# -- kafka ------------------------------------------------------------------------------
@main.group()
def kafka() -> None:
    """Run a real local Apache Kafka (KRaft) for development, tests and the demo.

    The jars of the pinned release are fetched once from Maven Central with mvn into
    KAPPA_CACHE_DIR. Nothing is started when KAPPA_BOOTSTRAP_SERVERS names a cluster.
    """


def _local_kafka(action: str) -> LocalKafka | None:
    """The local broker, or None (after saying so) when an existing cluster is used."""
    from app.broker.local import LocalKafka

    settings = _settings()
    if settings.uses_external_cluster:
        click.echo(f"using the existing cluster at {settings.bootstrap}; nothing to {action}")
        return None
    return LocalKafka(settings)


@kafka.command("start")
def kafka_start() -> None:
    """Start the local broker(s) and wait until they answer metadata requests."""
    broker = _local_kafka("start")
    if broker is None:
        return
    try:
        nodes = broker.start()
    except KappaError as exc:
        _fail(exc)
    for node in nodes:
        click.echo(
            f"kafka node {node.node_id} running: pid {node.pid}, "
            f"127.0.0.1:{node.port}, log {node.log_file}"
        )
    click.echo(f"bootstrap servers: {broker.settings.bootstrap}")


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the local broker(s). Safe to run when nothing is running."""
    broker = _local_kafka("stop")
    if broker is None:
        return
    stopped = broker.stop()
    click.echo(f"stopped {stopped} kafka node(s)" if stopped else "no local kafka was running")


@kafka.command("status", epilog="Exits 0 when every node runs, 3 when some do, 1 when none does.")
def kafka_status() -> None:
    """Show whether the local broker(s) run."""
    broker = _local_kafka("check")
    if broker is None:
        return
    nodes = broker.status()
    for node in nodes:
        state = f"running (pid {node.pid})" if node.running else "stopped"
        click.echo(f"kafka node {node.node_id} on 127.0.0.1:{node.port}: {state}")
    running = sum(node.running for node in nodes)
    if running < len(nodes):
        sys.exit(ExitCode.PARTIAL if running else ExitCode.ERROR)


# -- worker -----------------------------------------------------------------------------
@main.command(
    epilog="Exits 0 after a clean stop, 1 when it stops on an error, 128+N when a second "
    "signal N or KAPPA_SHUTDOWN_TIMEOUT cuts its shutdown short."
)
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
def worker(pipeline: Path | None) -> None:
    """Run a long-lived worker for PIPELINE (a TOML spec; default: KAPPA_PIPELINE).

    It consumes the pipeline's input topic (live and replayed events alike), keeps its
    state in RocksDB tables backed by changelog topics, and serves the query API on
    KAPPA_WEB_HOST:KAPPA_WEB_PORT. SIGTERM or Ctrl-C stops it cleanly.
    """
    from app.worker import run_worker

    try:
        run_worker(_with_pipeline(_settings(), pipeline))
    except KappaError as exc:
        _fail(exc)


# -- postgres and the sink -----------------------------------------------------------------
@main.group()
def postgres() -> None:
    """Run a real local PostgreSQL for the sink's development, tests and the demo.

    It runs Debian's PostgreSQL server binaries (apt-get install postgresql) with its data
    under KAPPA_HOME/postgres, on 127.0.0.1:KAPPA_POSTGRES_PORT, user and database `kappa`.
    Nothing is started when KAPPA_POSTGRES_URL names a server.
    """


def _local_postgres(action: str) -> LocalPostgres | None:
    from app.postgres.local import LocalPostgres

    settings = _settings()
    if settings.postgres_url is not None:
        click.echo(f"using the server in KAPPA_POSTGRES_URL; nothing to {action}")
        return None
    return LocalPostgres(settings)


@postgres.command("start")
def postgres_start() -> None:
    """Create the local server on first use, start it, and wait until it accepts
    connections."""
    server = _local_postgres("start")
    if server is None:
        return
    try:
        state = server.start()
    except KappaError as exc:
        _fail(exc)
    click.echo(f"postgres running: pid {state.pid}, 127.0.0.1:{state.port}, log {state.log_file}")
    click.echo(f"url: {server.settings.resolved_postgres_url}")


@postgres.command("stop")
def postgres_stop() -> None:
    """Stop the local server. Safe to run when nothing is running."""
    server = _local_postgres("stop")
    if server is None:
        return
    try:
        stopped = server.stop()
    except KappaError as exc:
        _fail(exc)
    click.echo("stopped the local postgres" if stopped else "no local postgres was running")


@postgres.command("status", epilog="Exits 0 when it runs, 1 when it does not.")
def postgres_status() -> None:
    """Show whether the local server runs."""
    server = _local_postgres("check")
    if server is None:
        return
    state = server.status()
    click.echo(
        f"postgres on 127.0.0.1:{state.port}: "
        + (f"running (pid {state.pid})" if state.running else "stopped")
    )
    if not state.running:
        sys.exit(ExitCode.ERROR)


@main.group()
def sink() -> None:
    """Write a version's results where applications read them ([docs/sinks.md])."""


@sink.command(
    "postgres",
    epilog="Exits 0 after a clean stop (SIGTERM or Ctrl-C), 1 on an error at start (a bad "
    "spec or setting). PostgreSQL down is not an error: it retries, with a doubling wait.",
)
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
def sink_postgres(pipeline: Path | None) -> None:
    """Write PIPELINE's version (a TOML spec; default: KAPPA_PIPELINE) into PostgreSQL,
    exactly once: its final window results into <name>_v<N>_windows and each key's totals
    into <name>_v<N>_totals, in KAPPA_POSTGRES_SCHEMA, with the Kafka offsets in the
    same transaction.

    Run as many as you like: they share the version's partitions, like workers. The
    views <name>_windows and <name>_totals point at the first version written, then at
    the one `kappa promote` makes active. Metrics on KAPPA_SINK_METRICS_PORT.
    """
    from agents.spec import load_spec
    from app.sink.run import run_sink

    settings = _with_pipeline(_settings(), pipeline)
    try:
        run_sink(settings, load_spec(settings.pipeline))
    except KappaError as exc:
        _fail(exc)


# -- replay -----------------------------------------------------------------------------
# `kappa replay`'s exit codes, also in its --help, the README and docs/replay.md.
EXIT_TOO_MANY_BAD_ROWS = ExitCode.PARTIAL  # nothing was produced: see exit_codes


EXIT_REFUSED = ExitCode.REFUSED  # already replayed, a complete id, a resume that differs


class TooManyBadRowsExit(click.ClickException):
    exit_code = EXIT_TOO_MANY_BAD_ROWS


class RefusedExit(click.ClickException):
    exit_code = EXIT_REFUSED


def _bad_row_limit(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from app.replay.check import BadRowLimit

    try:
        return BadRowLimit.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Override the format detected from the file suffix.",
)
@click.option(
    "--order-by-time",
    is_flag=True,
    help="Produce in event-time order (external sort: bounded memory, temp files).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Limit to this many events per second.",
)
@click.option(
    "--sort-chunk-rows",
    default=200_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --order-by-time: rows sorted in memory per run before spilling to disk.",
)
@click.option(
    "--max-bad-rows",
    default="0",
    show_default=True,
    callback=_bad_row_limit,
    help="Bad rows to accept: a count (10), a percentage (0.1%) or a fraction below 1 "
    "(0.001) of the rows read. With more, nothing is produced (exit code 3).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only check the files: count bad rows and late events, produce nothing.",
)
@click.option(
    "--id",
    "replay_id",
    help="Name this replay (default: a timestamped id). An id that was started before and "
    "did not complete is resumed: the rows it wrote are skipped, not sent twice.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replay files even if the ledger says they were replayed into the topic before "
    "(their rows are then counted again).",
)
@click.option(
    "--allow-gap",
    is_flag=True,
    help="With a [history] cut: replay although the live topic's oldest retained event is "
    "after the cut (the events in between are lost).",
)
@click.option(
    "--pipeline",
    "-p",
    type=click.Path(dir_okay=False, path_type=Path),
    help=PIPELINE_HELP,
)
def replay(
    files: tuple[Path, ...],
    fmt: str | None,
    order_by_time: bool,
    rate: float | None,
    sort_chunk_rows: int,
    max_bad_rows: Any,
    dry_run: bool,
    replay_id: str | None,
    force: bool,
    allow_gap: bool,
    pipeline: Path | None,
) -> None:
    """Replay history FILES (CSV, JSON Lines, Parquet; .gz too) into the pipeline.

    Every file is read once, in two passes. The first checks every row and produces
    nothing, keeping the rows in temporary files (TMPDIR) for the second: if
    more rows are bad than --max-bad-rows accepts (none by default), the replay stops
    there. Unless --order-by-time, it also warns when events would come out late for
    the pipeline's lateness, and says how many. The second pass produces the good rows
    to the input topic, keyed like live events and stamped with their event time, and
    the bad rows to the dead-letter topic; they are listed at the end.

    Each replay into the input topic is recorded in a ledger (the compacted topic
    kappa.<name>.control): its files with their sha256, row counts, state and times.
    A file already replayed into the input topic is refused unless --force. A replay
    that was stopped, even with kill -9, resumes when run again with the same --id,
    files and options: every record carries the replay id and its row number, so the
    rows already in Kafka are skipped and every row is counted once.

    For a spec with a [history] cut, the rows before the cut go to the version's own
    history topic instead (the running versions never see them), the rows at or after
    it are skipped and counted (the live topic holds those), and a seam record then
    seals the history: the version's workers read it, then the live topic. A sealed
    history, or a cut the live topic's retention has left a gap after, is refused.

    \b
    Exit codes:
      0  replayed (or checked, with --dry-run); bad rows within --max-bad-rows
      1  error: a bad file, spec or setting, Kafka failed, the ledger cannot be
         read, or (with a cut) a sealed history or a gap; the message says what
         to do and whether anything was produced
      2  bad command line (an unknown option, a bad value)
      3  more bad rows than --max-bad-rows accepts; nothing was produced
      4  refused, nothing produced: a file already replayed (use --force), the
         id of a complete replay, or a resume with other files or options
    """
    from agents.spec import load_spec
    from app.history_formats import Format
    from app.progress import RichProgress, print_bad_rows, print_replay_report
    from app.replay.run import ReplayOptions, TooManyBadRows
    from app.replay.run import replay as run_replay

    settings = _with_pipeline(_settings(), pipeline)
    try:
        spec = load_spec(settings.pipeline)
        options = ReplayOptions(
            files=list(files),
            fmt=cast(Format | None, fmt),
            order_by_time=order_by_time,
            rate=rate,
            sort_chunk_rows=sort_chunk_rows,
            replay_id=replay_id,
            max_bad_rows=max_bad_rows,
            dry_run=dry_run,
            force=force,
            allow_gap=allow_gap,
        )
        report = asyncio.run(run_replay(settings, spec, options, RichProgress()))
    except TooManyBadRows as exc:
        print_bad_rows(exc.report)
        raise TooManyBadRowsExit(str(exc)) from None
    except KappaError as exc:
        _fail(exc)
    print_replay_report(report, dry_run=dry_run)


# -- status -----------------------------------------------------------------------------
@main.command(
    epilog="Exits 0 when every worker answered, 3 when some did not, 1 when the first "
    "did not (then nothing is known of the others)."
)
@click.option("--url", help="A worker's base URL (default: KAPPA_WEB_HOST:KAPPA_WEB_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw answers as JSON.")
def status(url: str | None, as_json: bool) -> None:
    """The status of every worker of the group: partitions, watermarks, replays, counts.

    It asks the worker at --url, then every other worker that one lists as owning
    partitions, at their KAPPA_ADVERTISED_URL. With --json it prints
    {"workers": {url: status}, "unreachable": {url: reason}}.
    """
    from app.group_status import group_status

    settings = _settings()
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    try:
        group = group_status(base)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(
            f"no worker answered at {base} ({exc}); start one with `kappa worker`, or pass "
            "--url / set KAPPA_WEB_PORT"
        ) from None
    if as_json:
        click.echo(orjson.dumps(group.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        from app.progress import print_group_status

        print_group_status(group)
    for where, why in sorted(group.unreachable.items()):
        click.echo(
            f"worker {where} did not answer ({why}); is it running, and is its "
            "KAPPA_ADVERTISED_URL reachable from here?",
            err=True,
        )
    sys.exit(group.exit_code)


# -- verify -----------------------------------------------------------------------------
@main.command(
    epilog="Exits 0 when equal, 5 on any difference, 3 when a version still catching up "
    "was equal on what it had processed, 1 when it cannot compare (unknown pipeline or "
    "version, no running worker, Kafka or a worker unreachable)."
)
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    help="The version to verify (default: the spec's). PIPELINE must describe its logic.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def verify(pipeline: Path | None, version: int | None, as_json: bool) -> None:
    """Check a version of PIPELINE (a TOML spec; default: KAPPA_PIPELINE) against an
    independent batch answer.

    It reads the records the version consumes (the input topic's retained records; for
    a version with a history seam, its history topic and then the live records from the
    cut), decodes them with the pipeline's rules, computes totals and windows with
    DuckDB SQL under the same lateness, and compares them with the version's tables
    (through its workers' API) and its window-results topic. It prints what it
    compared and the first differences (key, window, field, expected, actual). A
    version still catching up is compared as far as it has processed, and said so.
    """
    from agents.spec import load_spec
    from app.verify.progress import VerifyProgress
    from app.verify.run import verify as run_verify

    settings = _with_pipeline(_settings(), pipeline)
    progress = VerifyProgress(enabled=not as_json)
    try:
        spec = load_spec(settings.pipeline)
        with progress:
            report = asyncio.run(run_verify(settings, spec, version, progress.update))
    except KappaError as exc:
        _fail(exc)
    if as_json:
        click.echo(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(report.summary())
    sys.exit(report.exit_code)


# -- versions, promote, retire ------------------------------------------------------------
VERSIONS_PIPELINE_HELP = (
    "PIPELINE is a spec (TOML) path or a pipeline's name; default: KAPPA_PIPELINE."
)


def _pipeline_target(settings: KappaSettings, pipeline: str | None) -> tuple[str, str | None]:
    """(pipeline name, input topic or None) from a spec path or a bare name."""
    from agents.spec import load_spec

    if pipeline is None or pipeline.endswith(".toml") or Path(pipeline).is_file():
        spec = load_spec(settings.pipeline if pipeline is None else Path(pipeline))
        return spec.name, spec.input_topic
    return pipeline, None


@main.command(
    epilog=VERSIONS_PIPELINE_HELP + " Exits 0 when listed, 1 when the pipeline has no version."
)
@click.argument("pipeline", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the survey as JSON.")
@click.option(
    "--sample",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between the two lag samples the rate and ETA come from (0: no rate).",
)
def versions(pipeline: str | None, as_json: bool, sample: float) -> None:
    """Every version of PIPELINE on the cluster: lag, catch-up rate and ETA, watermark,
    how far behind the input, state size, workers, and which version is active.

    Versions are found by their topics and consumer groups (kappa.<name>.v<N>...). Lag
    is per input partition, from each version's committed offsets; the rate is how fast
    the lag shrank between two samples --sample seconds apart. Watermarks, state sizes
    and the input's newest event time come from the versions' running workers.
    """
    from app.kafka_client import on_kafka
    from app.versions.survey import survey

    settings = _settings()
    try:
        name, input_topic = _pipeline_target(settings, pipeline)
        found = on_kafka(settings, survey(settings, name, input_topic, sample_s=sample))
    except KappaError as exc:
        _fail(exc)
    if as_json:
        click.echo(orjson.dumps(found.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    from app.versions.view import print_versions

    print_versions(found)


@main.command(
    epilog=VERSIONS_PIPELINE_HELP
    + " Exits 0 when promoted (or already active), 4 when refused (behind, no workers, or"
    " --verify failed), 1 on an error; nothing is changed then."
)
@click.argument("pipeline")
@click.argument("version", type=click.IntRange(min=1))
@click.option(
    "--verify",
    is_flag=True,
    help="Run `kappa verify PIPELINE --version VERSION` first and promote only if it exits "
    "0; PIPELINE must then be VERSION's spec path.",
)
def promote(pipeline: str, version: int, verify: bool) -> None:
    """Make VERSION the active version of PIPELINE: every worker of the pipeline then
    answers /api/keys/... with its numbers, and readers of window results find its
    results topic in /api/active and in the control topic kappa.<name>.control.

    Refused while VERSION is still catching up (more input records not processed than
    KAPPA_PROMOTE_MAX_LAG) or has no running workers. When the pipeline has a PostgreSQL
    sink, also refused while VERSION's tables are more than KAPPA_PROMOTE_MAX_LAG records
    behind; then the views <name>_windows and <name>_totals switch to VERSION's tables in
    one transaction.
    """
    from app.kafka_client import on_kafka
    from app.sink.versions import promotion_sink_refusal, switch_to
    from app.versions.active import write_active
    from app.versions.admin import promotion_refusal, run_verify
    from app.versions.survey import survey

    settings = _settings()
    if verify and not Path(pipeline).is_file():
        raise click.BadParameter(
            f"{pipeline!r} is not a spec file; --verify needs the spec of v{version}, which "
            "says how to compute the batch answer",
            param_hint="PIPELINE",
        )
    try:
        name, input_topic = _pipeline_target(settings, pipeline)
        found = on_kafka(settings, survey(settings, name, input_topic, only=version))
        report = found.get(version)
        if report.active:
            click.echo(f"v{version} of {name} is already the active version; nothing to do")
            return
        refusal = promotion_refusal(name, report, settings.promote_max_lag) or (
            promotion_sink_refusal(name, version, found.sink, settings.promote_max_lag)
        )
        if refusal is not None:
            _fail(refusal)
        if verify and (code := run_verify(pipeline, version)) != 0:
            _fail(
                Refused(
                    f"`kappa verify {pipeline} --version {version}` failed (exit code "
                    f"{code}); v{version} was not promoted",
                    hint="read its report above, fix the pipeline or its input, and retry",
                )
            )
        if found.sink is not None:  # the views first: a failure after them is retried
            asyncio.run(switch_to(settings, name, version))
        record = on_kafka(settings, write_active(settings, name, version, report.windows()))
    except KappaError as exc:
        _fail(exc)
    if found.sink is not None:
        click.echo(f"the sink's views now show v{version}'s tables")
    click.echo(
        f"v{version} of {name} is active since {record.as_json()['promoted_at']}; its "
        f"window results are in {record.results_topic}"
    )


@main.command(
    epilog=VERSIONS_PIPELINE_HELP
    + " Exits 0 when retired, 4 when refused, 1 when not confirmed or on an error; nothing"
    " is changed then."
)
@click.argument("pipeline")
@click.argument("version", type=click.IntRange(min=1))
@click.option(
    "--yes",
    is_flag=True,
    help="Do not ask for confirmation, and delete the version's dead letters and late "
    "events with it (those not exported).",
)
@click.option("--force", is_flag=True, help="Retire even while the version has running workers.")
@click.option(
    "--export",
    "export_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="First write the version's dead letters and late events to DIR, one JSON Lines "
    "file per topic, with their reasons.",
)
def retire(pipeline: str, version: int, yes: bool, force: bool, export_dir: Path | None) -> None:
    """Delete VERSION of PIPELINE: its topics (dead letters, late events, window results,
    its control and history topics, its tables' changelogs), its consumer group, and its
    state directories under KAPPA_HOME/state on this machine.

    Refuses the active version, and a version whose workers still run unless --force.
    Its dead-letter and late topics are the only copy of its bad records (a replay's
    bad rows too) and late events: they are listed with their counts by reason, and
    while they hold records retire refuses unless --export DIR keeps them or --yes
    deletes them. With a PostgreSQL sink, it also drops VERSION's tables
    <name>_v<N>_windows, _totals and _dead_letters, and refuses the version the sink's
    views show.
    """
    from app.kafka_client import on_kafka
    from app.sink.schema import VersionTables
    from app.sink.versions import drop_tables, retire_sink_refusal
    from app.versions import kept_records
    from app.versions.admin import retire as run_retire
    from app.versions.admin import retire_refusal
    from app.versions.survey import survey

    settings = _settings()
    try:
        name, input_topic = _pipeline_target(settings, pipeline)
        found = on_kafka(settings, survey(settings, name, input_topic, sample_s=0, only=version))
        report = found.get(version)
        refusal = retire_refusal(name, report, force) or retire_sink_refusal(
            name, version, found.sink
        )
        if refusal is not None:
            _fail(refusal)
        kept = on_kafka(settings, kept_records.survey(settings, report.topics))
        click.echo(f"retiring v{version} of {name} deletes:")
        for topic in report.topics:
            click.echo(f"  topic {topic}")
        click.echo(f"  consumer group {report.group.group}")
        click.echo(f"  state under {settings.state_dir}/{report.prefix}")
        if found.sink is not None:
            tables = VersionTables(name, version, settings.postgres_schema)
            click.echo(
                f"  PostgreSQL tables {tables.schema}.{tables.windows}, {tables.totals} and "
                f"{tables.dead_letters}, and their offsets"
            )
        at_risk = [topic for topic in kept if topic.records]
        for kept_topic in at_risk:
            click.echo(f"  with {kept_records.describe(kept_topic)}")
        if export_dir is not None:
            kept_records.export_directory(export_dir)
        if at_risk and export_dir is None and not yes:
            _fail(
                Refused(
                    f"v{version} of {name} holds "
                    + " and ".join(f"{t.records:,} {t.kind}" for t in at_risk)
                    + ", the only copy of them",
                    hint="keep them with --export DIR (one JSON Lines file per topic, with "
                    "their reasons), or pass --yes to delete them with the version",
                )
            )
        if not yes:
            click.confirm("delete them?", abort=True)
        if export_dir is not None:
            for path, count in on_kafka(settings, kept_records.export(settings, kept, export_dir)):
                click.echo(f"exported {count:,} records to {path}")
        done = on_kafka(settings, run_retire(settings, name, report))
        if found.sink is not None:
            asyncio.run(drop_tables(settings, name, version))
    except KappaError as exc:
        _fail(exc)
    click.echo(
        f"retired v{version} of {name}: {len(done.topics)} topic(s) deleted, consumer group "
        + ("deleted" if done.group_deleted else "kept (it has members or no offsets)")
        + (f", {done.state_dir} removed" if done.state_dir else ", no local state here")
    )


@main.command()
@click.argument("out", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--events",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many events.",
)
@click.option(
    "--keys",
    default=200,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many distinct customers.",
)
@click.option(
    "--days", default=3.0, show_default=True, type=click.FloatRange(min=0), help="Event-time span."
)
@click.option(
    "--disorder",
    default="5m",
    show_default=True,
    help="How far out of order events may be (keep it under the lateness).",
)
@click.option(
    "--bad-every",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Insert a bad row after every N good ones (0: none).",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed.")
@click.option(
    "--values",
    type=click.Choice(["orders", "adversarial"]),
    default="orders",
    show_default=True,
    help="orders: amounts in dollars and cents, mostly tens of dollars, up to 3,000, "
    "and 1-12 items. adversarial: decimals from 0.0001 to about a billion, which make "
    "an inexact sum show (what the tests use).",
)
def generate(
    out: Path,
    events: int,
    keys: int,
    days: float,
    disorder: str,
    bad_every: int,
    seed: int,
    values: str,
) -> None:
    """Write example order events to OUT (.csv or .jsonl, optionally .gz)."""
    from agents.durations import parse_duration
    from app.datagen import DatasetShape, generate, with_bad_rows, write

    try:
        disorder_ms = parse_duration(disorder)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--disorder") from None
    shape = DatasetShape(
        events=events,
        keys=keys,
        span_ms=int(days * 86_400_000),
        disorder_ms=disorder_ms,
        seed=seed,
        values=cast(Literal["orders", "adversarial"], values),
    )
    try:
        written = write(with_bad_rows(generate(shape), bad_every), out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="OUT") from None
    click.echo(f"wrote {written:,} rows to {out}")


# -- settings & demo --------------------------------------------------------------------
@main.command("settings")
def show_settings() -> None:
    """Print every setting, its environment variable and its current value."""
    settings = _settings()
    for name, info in KappaSettings.model_fields.items():
        env = f"KAPPA_{name.upper()}"
        click.echo(f"{env:<32} {getattr(settings, name)!s:<28} {info.description or ''}")


@main.command(
    epilog="Exits 1 if any step fails, or if the worker's totals differ from the fold or "
    "the PostgreSQL view's rows from the worker's totals."
)
@click.option(
    "--keep-kafka",
    is_flag=True,
    help="Leave the local broker and the local PostgreSQL running afterwards.",
)
def demo(keep_kafka: bool) -> None:
    """Start Kafka and a worker, replay example history, add live events, print results;
    then start PostgreSQL (local, or KAPPA_POSTGRES_URL) and the sink, and print rows of
    the pipeline's <name>_totals view next to the worker's numbers."""
    from app.demo import run_demo

    try:
        run_demo(_settings(), keep_kafka=keep_kafka, python=sys.executable, env=dict(os.environ))
    except KappaError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
