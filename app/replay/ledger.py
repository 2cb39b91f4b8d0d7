"""The replay ledger: what was replayed into which topic, so a replay can be resumed and a
file is not counted twice.

The ledger lives in the pipeline's compacted control topic, ``kappa.<name>.control``, one
record per replay keyed ``replay:<id>`` (the topic holds other keys too, such as the
active version; ``app/replay/ledger_topic.py`` reads it). A record names the target topic, the files
(path, sha256 of the bytes, size), the options that decide the row order, the row counts,
the state (``running``, ``complete``, ``failed``), where the replay's records start or had
been acknowledged in each target partition (``checkpoint``), and who runs it (host, pid).

This module is the pure part: folding the topic into a ``Ledger`` and deciding, before
anything is produced, whether a replay starts, resumes, or is refused.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from agents.errors import Refused, ReplayError
from agents.spec import PipelineSpec

KEY_PREFIX = b"replay:"
# How long a running replay on another host counts as alive after its last record; it
# writes one every few seconds (app/replay/run.py's CONTROL_EVERY_S).
STALE_AFTER_S = 30.0


def ledger_key(replay_id: str) -> bytes:
    return KEY_PREFIX + replay_id.encode()


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def describe_file(path: Path) -> FileEntry:
    """The file's identity: the sha256 of its bytes (compressed, as stored), and its size."""
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return FileEntry(str(path), digest, path.stat().st_size)


def parsing_fingerprint(spec: PipelineSpec) -> str:
    """What of the spec decides which rows are good and what their keys and times are."""
    parsing = {
        "key": spec.key,
        "time_field": spec.time_field,
        "time_format": spec.time_format,
        "values": spec.values,
        "null_values": spec.null_values,
        "max_record_bytes": spec.max_record_bytes,
    }
    return hashlib.sha256(orjson.dumps(parsing)).hexdigest()[:16]


@dataclass(frozen=True)
class RowOrder:
    """Everything that decides which record a replay sends n-th to each partition: a
    resume skips rows by that order, so it must be the same as the first run's."""

    files: tuple[str, ...]  # sha256 of each file, in the order replayed
    fmt: str | None
    order_by_time: bool
    partitions: int
    parsing: str

    def as_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "format": self.fmt,
            "order_by_time": self.order_by_time,
            "partitions": self.partitions,
            "parsing": self.parsing,
        }

    @classmethod
    def from_json(cls, value: Any) -> RowOrder:
        return cls(
            files=tuple(str(f) for f in value["files"]),
            fmt=value["format"],
            order_by_time=bool(value["order_by_time"]),
            partitions=int(value["partitions"]),
            parsing=str(value["parsing"]),
        )

    def differences(self, earlier: RowOrder) -> list[str]:
        """What differs from ``earlier``, in words."""
        out = []
        if self.files != earlier.files:
            out.append("the files (by content) or their order")
        if self.fmt != earlier.fmt:
            out.append(f"--format ({earlier.fmt or 'detected'} then, {self.fmt or 'detected'} now)")
        if self.order_by_time != earlier.order_by_time:
            out.append(f"--order-by-time ({'on' if earlier.order_by_time else 'off'} then)")
        if self.partitions != earlier.partitions:
            out.append(
                f"the partitions of the target ({earlier.partitions} then, {self.partitions} now)"
            )
        if self.parsing != earlier.parsing:
            out.append("the pipeline spec's key, time or value fields or null markers")
        return out


# Per partition: (offset, rows of this replay before that offset).
Checkpoint = dict[int, tuple[int, int]]


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, list[int]]:
    return {str(p): [offset, rows] for p, (offset, rows) in sorted(checkpoint.items())}


def checkpoint_from_json(value: Any) -> Checkpoint:
    return {int(p): (int(pair[0]), int(pair[1])) for p, pair in (value or {}).items()}


@dataclass(frozen=True)
class LedgerEntry:
    replay_id: str
    record: dict[str, Any]

    @property
    def state(self) -> str:
        return str(self.record.get("state"))

    @property
    def target(self) -> str:
        return str(self.record.get("target"))

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.record.get("files") or [])

    @property
    def row_order(self) -> RowOrder:
        return RowOrder.from_json(self.record["row_order"])

    def checkpoint(self, topic: str) -> Checkpoint:
        return checkpoint_from_json((self.record.get("checkpoint") or {}).get(topic))

    @property
    def when(self) -> str:
        return str(self.record.get("finished_at") or self.record.get("updated_at"))


@dataclass
class Ledger:
    """The newest record of every replay, and the records that could not be read."""

    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)  # replay id -> offset

    @classmethod
    def fold(cls, records: Iterable[tuple[bytes | None, bytes | None, int]]) -> Ledger:
        """The ledger from the topic's (key, value, offset) records, oldest first; records
        under other keys than ``replay:<id>`` are not the ledger's."""
        ledger = cls()
        for key, value, offset in records:
            if key is None or not key.startswith(KEY_PREFIX):
                continue
            replay_id = key[len(KEY_PREFIX) :].decode(errors="replace")
            ledger.entries.pop(replay_id, None)
            ledger.unreadable.pop(replay_id, None)
            if value is None:
                continue  # a tombstone: the replay was forgotten
            try:
                record = orjson.loads(value)
                RowOrder.from_json(record["row_order"])
                ok = isinstance(record.get("files"), list) and "target" in record
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                ok = False
            if ok:
                ledger.entries[replay_id] = LedgerEntry(replay_id, record)
            else:
                ledger.unreadable[replay_id] = offset
        return ledger

    def replays_of(self, sha256: str, target: str, other_than: str) -> list[LedgerEntry]:
        """Other replays into ``target`` that hold a file with this content."""
        return [
            entry
            for entry in self.entries.values()
            if entry.replay_id != other_than
            and entry.target == target
            and any(f.get("sha256") == sha256 for f in entry.files)
        ]


@dataclass(frozen=True)
class Owner:
    """Who runs a replay, so that a resume does not run beside a replay still alive."""

    host: str
    pid: int

    @classmethod
    def me(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid())

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid}


class AlreadyReplayed(ReplayError, Refused):
    """A file was replayed into this target before; nothing was produced."""


class ResumeRefused(ReplayError, Refused):
    """A replay id that cannot be resumed: complete, alive, or with other files or options."""


class LedgerUnreadable(ReplayError):
    """The ledger could not be read, so a replay cannot know what it may skip or refuse."""


@dataclass(frozen=True)
class Plan:
    """What a replay does: start afresh, or resume ``earlier``."""

    earlier: LedgerEntry | None

    @property
    def resumes(self) -> bool:
        return self.earlier is not None


def plan(
    ledger: Ledger,
    *,
    replay_id: str,
    target: str,
    files: list[FileEntry],
    order: RowOrder,
    force: bool,
    now: datetime,
    here: Owner,
    pid_alive: Callable[[int], bool],
) -> Plan:
    """Decide before producing anything; raise with what to do when the replay may not run."""
    if replay_id in ledger.unreadable:
        raise LedgerUnreadable(
            f"the ledger's record of replay {replay_id} (offset "
            f"{ledger.unreadable[replay_id]}) cannot be read, so it cannot be resumed; "
            "nothing was produced",
            hint="replay under a new --id into a new pipeline version, or fix the record",
        )
    earlier = ledger.entries.get(replay_id)
    if earlier is not None:
        _check_resumable(earlier, target, order)
        if earlier.state == "running" and _alive(earlier.record, now, here, pid_alive):
            owner = earlier.record.get("owner") or {}
            raise ResumeRefused(
                f"replay {replay_id} is still running (pid {owner.get('pid')} on "
                f"{owner.get('host')}, last heard {earlier.record.get('updated_at')}); "
                "nothing was produced",
                hint="wait for it, or stop it; a replay on another host counts as stopped "
                f"{STALE_AFTER_S:.0f}s after its last record",
            )
    if not force:
        _refuse_replayed(ledger, replay_id, target, files)
    return Plan(earlier)


def _alive(
    record: dict[str, Any], now: datetime, here: Owner, pid_alive: Callable[[int], bool]
) -> bool:
    """Whether the process that wrote a running replay's record may still be producing."""
    owner = record.get("owner") or {}
    if owner.get("host") == here.host and isinstance(owner.get("pid"), int):
        return bool(owner["pid"] != here.pid and pid_alive(owner["pid"]))
    try:
        age = (now - datetime.fromisoformat(str(record.get("updated_at")))).total_seconds()
    except ValueError:
        return False
    return age < STALE_AFTER_S


def _check_resumable(earlier: LedgerEntry, target: str, order: RowOrder) -> None:
    rid = earlier.replay_id
    if earlier.state == "complete":
        raise ResumeRefused(
            f"replay {rid} is complete (finished {earlier.when}); it is not run again",
            hint="to replay other files, give a new --id (or none); a file already replayed "
            "is refused unless --force",
        )
    if earlier.target != target:
        raise ResumeRefused(
            f"replay {rid} went to {earlier.target}, this one would go to {target}; "
            "nothing was produced",
            hint="resume it with the same --pipeline, or give a new --id",
        )
    differences = order.differences(earlier.row_order)
    if differences:
        raise ResumeRefused(
            f"replay {rid} cannot be resumed: {', '.join(differences)} differ from the first "
            "run, so its rows would come in another order and the rows it already wrote "
            "cannot be skipped; nothing was produced",
            hint=f"run `kappa replay --id {rid}` with the same files and options "
            f"({_options_text(earlier)}), or give a new --id",
        )


def _options_text(entry: LedgerEntry) -> str:
    order = entry.row_order
    paths = " ".join(str(f.get("path")) for f in entry.files)
    flags = [f"--format {order.fmt}"] if order.fmt else []
    flags += ["--order-by-time"] if order.order_by_time else []
    return " ".join([paths, *flags])


def _refuse_replayed(ledger: Ledger, replay_id: str, target: str, files: list[FileEntry]) -> None:
    if ledger.unreadable:
        raise LedgerUnreadable(
            f"{len(ledger.unreadable)} ledger record(s) cannot be read (replay ids "
            f"{', '.join(sorted(ledger.unreadable))}), so kappa cannot tell whether these "
            "files were replayed before; nothing was produced",
            hint="fix or delete those records, or replay with --force if you know the "
            "files are new to the target",
        )
    seen: dict[str, str] = {}
    for entry in files:
        if entry.sha256 in seen:
            raise AlreadyReplayed(
                f"{entry.path} has the same content as {seen[entry.sha256]} (sha256 "
                f"{entry.sha256[:12]}); replaying both counts every row twice; nothing was "
                "produced",
                hint="name each file once, or replay with --force to count it twice",
            )
        seen[entry.sha256] = entry.path
        earlier = ledger.replays_of(entry.sha256, target, other_than=replay_id)
        if earlier:
            first = earlier[0]
            raise AlreadyReplayed(
                f"{entry.path} (sha256 {entry.sha256[:12]}) was already replayed into "
                f"{target} by replay {first.replay_id} ({first.state}, {first.when}); "
                "replaying it again counts every row twice; nothing was produced",
                hint=_replayed_hint(first),
            )


def _replayed_hint(first: LedgerEntry) -> str:
    if first.state == "complete":
        return "leave it out, or replay with --force to count it again"
    return (
        f"that replay did not finish: resume it with `kappa replay --id {first.replay_id}` "
        "and the same files, or replay with --force to count the file again"
    )
