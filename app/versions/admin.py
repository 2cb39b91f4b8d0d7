"""``kappa promote`` and ``kappa retire``: the rules that refuse, and what they change.

The rules are pure functions of a version's report (app.versions.survey), so that a
refusal changes nothing: the command checks first and acts only when no rule objects.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code

from agents.errors import KappaError, Refused
from agents.names import version_prefix
from app.kafka_client import client_options
from app.settings import KappaSettings
from app.versions.group_members import delete_group
from app.versions.survey import VersionReport


def promotion_refusal(pipeline: str, report: VersionReport, max_lag: int) -> Refused | None:
    """Why ``report``'s version cannot be made active now (every reason), or None."""
    version = report.version
    problems: list[str] = []
    hints: list[str] = []
    if not report.group.members:
        problems.append("it has no running workers, so none could answer queries for it")
        hints.append(f"start its workers (`kappa worker` with the v{version} spec)")
    progress = report.progress
    if progress is None:
        problems.append("its lag is unknown: no input topic of the pipeline was found")
        hints.append("name the pipeline by its spec path, which names the input topic")
    elif progress.lag > max_lag:
        pace = (
            f"at {progress.rate:,.0f} records/s it needs about {progress.eta_s:,.0f}s more"
            if progress.rate and progress.eta_s is not None
            else "it is not getting closer right now"
        )
        problems.append(
            f"it is still catching up: {progress.lag:,} input records not processed, more "
            f"than KAPPA_PROMOTE_MAX_LAG={max_lag:,} ({pace})"
        )
        hints.append(f"wait until it has caught up, watching `kappa versions {pipeline}`")
    if not problems:
        return None
    return Refused(
        f"v{version} of {pipeline} cannot be promoted: " + "; ".join(problems),
        hint=", then ".join(hints) + ", and promote again",
    )


def retire_refusal(pipeline: str, report: VersionReport, force: bool) -> Refused | None:
    """Why ``report``'s version cannot be retired now, or None."""
    version = report.version
    if report.active:
        return Refused(
            f"v{version} is the active version of {pipeline}: readers are sent to it",
            hint=f"promote another version first (`kappa promote {pipeline} N`), then retire "
            f"v{version}",
        )
    if report.group.members and not force:
        urls = ", ".join(report.urls) or f"{len(report.group.members)} member(s)"
        return Refused(
            f"v{version} of {pipeline} still has running workers ({urls})",
            hint="stop them (SIGTERM or Ctrl-C) and wait until they have left the group "
            "(up to KAPPA_SESSION_TIMEOUT), or pass --force to delete anyway",
        )
    return None


def run_verify(pipeline: str, version: int) -> int:
    """``kappa verify PIPELINE --version N``'s exit code: the one place ``promote
    --verify`` calls the verifier."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "verify", pipeline, "--version", str(version)],
        check=False,
    )
    return done.returncode


@dataclass(frozen=True)
class Retired:
    topics: list[str]
    group_deleted: bool
    state_dir: Path | None  # removed, or None when there was none here


async def retire(settings: KappaSettings, pipeline: str, report: VersionReport) -> Retired:
    """Delete the version's topics, consumer group and local state directory."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        if report.topics:
            response = await admin.delete_topics(report.topics)
            failed = [
                f"{topic}: {for_code(code).__name__}"
                for topic, code, *_ in response.topic_error_codes
                if code
            ]
            if failed:
                raise KappaError(
                    "Kafka did not delete every topic: " + "; ".join(failed),
                    hint="check the broker allows topic deletion (delete.topic.enable) and "
                    "run `kappa retire` again",
                )
        # Kafka keeps a group with members (--force): it goes with a later retire.
        group_deleted = not report.group.members and await delete_group(admin, report.group.group)
    finally:
        await admin.close()
    state_dir = settings.state_dir / version_prefix(pipeline, report.version)
    if state_dir.exists():
        shutil.rmtree(state_dir)
        return Retired(report.topics, group_deleted, state_dir)
    return Retired(report.topics, group_deleted, None)
