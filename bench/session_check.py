"""The sessions workload's cross-check: kappa and Quix Streams did the same work.

A rate compares two engines only if they computed the same sessions. After the timed
runs, each session (first and last event time, event count, the sums of both values)
must be the same in kappa, in Quix and in DuckDB (bench.anchor's ``lag()`` rule):

- kappa: every session, open or final, of a sample of keys, from its query API;
- Quix: every closed session it wrote to its output topic. Quix closes a session when
  its partition's event time (the newest event of the partition) passes the session's
  last event plus two gaps plus the grace, so Quix is compared, for every key, on the
  sessions whose last event is before that, in the key's partition (Kafka's default
  partitioner, as the replay's).

Sums are compared to a relative 1e-9: DuckDB and Quix add in their own orders, kappa
rounds correctly. A sum over only missing values is ``null`` in kappa and DuckDB (as in
SQL) and 0 in Quix: all read as 0 here.
"""

from __future__ import annotations

import asyncio
import math
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.durations import format_duration
from agents.partitions import expected_partition
from app.kafka_client import offset_ranges
from bench.anchor import VALUES, load_events, numbered_sessions
from bench.workers import Worker, get_json
from bench.workloads import Workload

SAMPLE_KEYS = 20
GRACE_MS = 600_000  # the bench's lateness in kappa, grace in Quix


@dataclass(frozen=True)
class Session:
    """A session as the three engines are compared on it."""

    first: int
    last: int
    count: int
    sums: tuple[float, ...]

    def same(self, other: Session) -> bool:
        if (self.first, self.last, self.count) != (other.first, other.last, other.count):
            return False
        return all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
            for a, b in zip(self.sums, other.sums, strict=True)
        )


# Each key's sessions, by first event time.
Sessions = dict[str, list[Session]]


def _sums(values: Sequence[float | None]) -> tuple[float, ...]:
    return tuple(0.0 if v is None else float(v) for v in values)


def expected(data: Path, workload: Workload) -> Sessions:
    """Every key's sessions, computed by DuckDB from the data file."""
    con = duckdb.connect()
    try:
        load_events(con, data)
        sums = ", ".join(f"sum({v})" for v in VALUES)
        rows = con.execute(
            f"""SELECT k, min(t), max(t), count(*), {sums}
                FROM ({numbered_sessions(workload.gap_ms)}) GROUP BY k, session_no
                ORDER BY k, min(t)"""
        ).fetchall()
    finally:
        con.close()
    sessions: Sessions = {}
    for key, first, last, count, *values in rows:
        sessions.setdefault(key, []).append(Session(first, last, count, _sums(values)))
    return sessions


def sample(sessions: Sessions) -> list[str]:
    """``SAMPLE_KEYS`` keys spread evenly over the sorted keys."""
    keys = sorted(sessions)
    return keys[:: max(1, len(keys) // SAMPLE_KEYS)][:SAMPLE_KEYS]


def kappa_sessions(worker: Worker, keys: Sequence[str], workload: Workload) -> Sessions:
    """The keys' sessions in a running kappa worker, from its query API (a session's
    ``end_ms`` is its last event plus the gap plus 1 ms)."""
    window = urllib.parse.quote(f"session/{format_duration(workload.gap_ms)}")
    found: Sessions = {}
    for key in keys:
        path = f"/api/keys/{urllib.parse.quote(key)}/windows?window={window}&from=0"
        found[key] = sorted(
            (
                Session(
                    w["start_ms"],
                    w["end_ms"] - workload.gap_ms - 1,
                    w["count"],
                    _sums([w["values"][v]["sum"] for v in VALUES]),
                )
                for w in get_json(worker.port, path)["windows"]
            ),
            key=lambda s: s.first,
        )
    return found


async def _quix_sessions(options: dict[str, Any], topic: str) -> Sessions:
    ranges = (await offset_ranges(options, [topic]))[topic]
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in ranges]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        # Each record's key is the input's (the customer id); its end is exclusive.
        found: dict[str, dict[int, Session]] = {}
        unread = {p: end for p, (begin, end) in ranges.items() if end > begin}
        while unread:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    value = orjson.loads(record.value)
                    session = Session(
                        value["start"],
                        value["end"] - 1,
                        value["count"],
                        _sums([value[v] for v in VALUES]),
                    )
                    key = (record.key or b"").decode()
                    found.setdefault(key, {})[session.first] = session
                    if record.offset + 1 >= unread.get(tp.partition, 0):
                        unread.pop(tp.partition, None)
        return {key: [s for _, s in sorted(by_first.items())] for key, by_first in found.items()}
    finally:
        await consumer.stop()


def quix_sessions(options: dict[str, Any], input_topic: str) -> Sessions:
    """Every closed session bench.quix_peer wrote to its output topic."""
    return asyncio.run(_quix_sessions(options, f"{input_topic}-quix-results"))


def _differences(engine: str, key: str, got: list[Session], want: list[Session]) -> list[str]:
    if len(got) == len(want) and all(g.same(w) for g, w in zip(got, want, strict=True)):
        return []
    return [f"{engine}, key {key}: {len(got)} sessions, DuckDB {len(want)}; {got} != {want}"]


def quix_closes_before(workload: Workload, want: Sessions, partitions: int) -> dict[str, int]:
    """Per key, the time before which a session's last event must be for Quix to have
    closed it: its partition's newest event time less two gaps and the grace."""
    newest: dict[int, int] = {}
    for key, sessions in want.items():
        partition = expected_partition(key, partitions)
        newest[partition] = max(newest.get(partition, sessions[-1].last), sessions[-1].last)
    due_after = 2 * workload.gap_ms + GRACE_MS
    return {key: newest[expected_partition(key, partitions)] - due_after for key in want}


def check(
    workload: Workload, want: Sessions, kappa: Sessions, quix: Sessions, partitions: int
) -> dict[str, float]:
    """The figures checked; raises unless kappa's sessions of the sample keys and Quix's
    closed sessions of every key are DuckDB's."""
    cutoffs = quix_closes_before(workload, want, partitions)
    wrong: list[str] = []
    for key in sample(want):
        wrong += _differences("kappa", key, kappa[key], want[key])
    closed = 0
    for key in sorted(set(want) | set(quix)):
        cutoff = cutoffs.get(key, 0)
        due = [s for s in want.get(key, []) if s.last < cutoff]
        closed += len(due)
        wrong += _differences("Quix", key, [s for s in quix.get(key, []) if s.last < cutoff], due)
    if wrong:
        raise RuntimeError("the engines computed different sessions:\n" + "\n".join(wrong[:10]))
    return {
        "sessions_kappa_checked": sum(len(kappa[key]) for key in sample(want)),
        "sessions_quix_checked": closed,
        "sessions_total": sum(map(len, want.values())),
    }
