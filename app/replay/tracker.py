"""Follows the pipeline's control topic, where ``kappa replay`` reports its progress.

Each worker reads the whole topic (it is small and compacted) without a consumer
group, so every worker knows every replay and can tell whether it has processed its
partitions up to where the replay ended. Successive reports of a running replay give
its rate, and, when they carry ``bytes_read`` and ``bytes_total``, its ETA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from agents.names import PipelineNames
from agents.seam_record import SEAM_KEY, SeamRecord
from app.control_follower import ControlTopicFollower
from app.settings import KappaSettings

log = logging.getLogger(__name__)


class ReplayTracker(ControlTopicFollower):
    def __init__(
        self,
        settings: KappaSettings,
        names: PipelineNames,
        on_seam: Callable[[SeamRecord], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, names.control_topic, **kwargs)
        # The seam record that seals a cut version's history is no replay: it goes here.
        self.on_seam = on_seam
        self.replays: dict[str, dict[str, Any]] = {}

    def on_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        if key == SEAM_KEY:
            try:
                seam = SeamRecord.decode(value)
            except ValueError as exc:
                log.warning("ignoring a malformed seam record: %s", exc)
                return
            if self.on_seam is not None:
                self.on_seam(seam)
            return
        try:
            report = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("ignoring a malformed control record with key %r", key)
            return
        if isinstance(report, dict):
            replay_id = key.decode(errors="replace")
            self.replays[replay_id] = with_rates(self.replays.get(replay_id), report)

    def status(self, processed: dict[int, int], owned: set[int]) -> list[dict[str, Any]]:
        """Each replay with, for the partitions this worker owns, whether it caught up."""
        out = []
        for replay_id, report in sorted(self.replays.items()):
            ends = {int(p): int(o) for p, o in (report.get("end_offsets") or {}).items()}
            behind = {
                p: end - 1 - processed.get(p, -1)
                for p, end in ends.items()
                if p in owned and processed.get(p, -1) < end - 1
            }
            done = report.get("state") == "complete"
            out.append(
                {
                    **report,
                    "id": replay_id,
                    "processed_by_this_worker": done and not behind,
                    "records_behind": behind,
                }
            )
        return out


def _report_time(report: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(report["updated_at"])).timestamp()
    except (KeyError, ValueError):
        return None


def report_number(report: dict[str, Any], field: str) -> float | None:
    value = report.get(field)
    return float(value) if isinstance(value, int | float) else None


COUNTS = {"rows_per_second": "produced", "bytes_per_second": "bytes_read"}


def with_rates(previous: dict[str, Any] | None, report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with ``rows_per_second``, ``bytes_per_second`` and ``eta_s``, each None
    when unknown: a finished replay's averages; a running one's rates since its previous
    report, and its time left at that rate for the bytes it has still to read."""
    rates: dict[str, float | None] = dict.fromkeys(COUNTS)
    seconds = report_number(report, "seconds")
    if report.get("state") != "running":
        for rate, field in COUNTS.items():
            if seconds and (count := report_number(report, field)) is not None:
                rates[rate] = count / seconds
        return {**report, **rates, "eta_s": None}
    if previous is not None:
        rates = {rate: previous.get(rate) for rate in COUNTS}  # until the clock moves
        now, then = _report_time(report), _report_time(previous)
        if now is not None and then is not None and now > then:
            for rate, field in COUNTS.items():
                after, before = report_number(report, field), report_number(previous, field)
                if after is not None and before is not None:
                    rates[rate] = (after - before) / (now - then)
    total, read = report_number(report, "bytes_total"), report_number(report, "bytes_read")
    byte_rate = rates["bytes_per_second"]
    eta = None if total is None or read is None or not byte_rate else (total - read) / byte_rate
    return {**report, **rates, "eta_s": eta}
