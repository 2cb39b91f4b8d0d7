"""Feed a worker real events of every kind, and work out from the input log alone what
its metrics and dashboard must then say.

The feed: a history file replayed with ``kappa replay`` (with bad rows the replay
dead-letters itself), live events after it, live events far behind the watermark, and
live records that are not events. The expectations come from reading the input topic
back with plain aiokafka and folding each partition in offset order, with the policy
written out here: the watermark is the newest event time minus the lateness, an event
behind it is late, a window closes when the watermark reaches its end.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from app.datagen import DatasetShape, generate, write
from tests.support.kafka import produce_events, produce_raw, read_all
from tests.support.times import DAY, HOUR, iso, ms
from tests.support.worker import run_kappa

LATENESS_MS = 10 * 60_000  # the spec's lateness = "10m" (tests/conftest.py's default)
WINDOW_MS = HOUR  # the spec's one window, { size = "1h" }
REPLAY_ID = "metrics-feed"
# Rows the replay rejects, one per reason, appended to the history file.
BAD_ROWS = (
    "c00001,not-a-time,1,1\n",  # bad_time
    ",2024-01-02T00:00:00+00:00,1,1\n",  # missing_key
    "c00002,2024-01-02T00:00:00+00:00,twelve,1\n",  # non_numeric
)
# Live records that are not events, by the reason the worker must give them.
BAD_RECORDS: dict[str, list[bytes]] = {
    "malformed_json": [b"{not json", b'{"customer_id": "c1", ', b"\xff\xfe"],
    "missing_key": [
        b'{"ts": "2024-01-02T00:00:00Z", "amount": 1, "quantity": 1}',
        b'{"customer_id": null, "ts": "2024-01-02T00:00:00Z", "amount": 1, "quantity": 1}',
    ],
    "not_an_object": [b"[1, 2, 3]"],
}


@dataclass
class PartitionLog:
    """One input partition, folded in offset order."""

    records: int = 0
    good: int = 0
    late: int = 0
    newest_ms: int | None = None
    keys: set[str] = field(default_factory=set)
    windows: set[tuple[str, int]] = field(default_factory=set)

    @property
    def watermark_ms(self) -> int | None:
        return None if self.newest_ms is None else self.newest_ms - LATENESS_MS

    def add(self, key: str, ts: int) -> None:
        self.good += 1
        watermark = self.watermark_ms
        if watermark is not None and ts < watermark:
            self.late += 1
        else:
            self.windows.add((key, ts - ts % WINDOW_MS))
        self.keys.add(key)
        self.newest_ms = ts if self.newest_ms is None else max(self.newest_ms, ts)

    def closed_windows(self) -> int:
        watermark = self.watermark_ms
        return sum(
            1
            for _, start in self.windows
            if watermark is not None and watermark >= start + WINDOW_MS
        )

    def open_windows(self) -> int:
        return len(self.windows) - self.closed_windows()


@dataclass
class Fed:
    """What was fed, and what the input log says the worker must report."""

    replay_rows: int
    replay_bad_rows: int
    live_late: int
    events: list[dict[str, Any]]
    partitions: dict[int, PartitionLog]

    @property
    def bad_records(self) -> dict[str, int]:
        return {reason: len(values) for reason, values in BAD_RECORDS.items()}

    @property
    def good_events(self) -> int:
        return sum(p.good for p in self.partitions.values())

    @property
    def late(self) -> int:
        return sum(p.late for p in self.partitions.values())

    @property
    def input_records(self) -> int:
        return sum(p.records for p in self.partitions.values())

    def key_count(self, key: str) -> int:
        return Counter(e["customer_id"] for e in self.events)[key]


def fold_log(records: Iterable[Any]) -> dict[int, PartitionLog]:
    bad = {value for values in BAD_RECORDS.values() for value in values}
    partitions: dict[int, PartitionLog] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        log = partitions.setdefault(record.partition, PartitionLog())
        log.records += 1
        if record.value not in bad:
            body = orjson.loads(record.value)
            log.add(str(body["customer_id"]), ms(body["ts"]))
    return partitions


def feed(
    env: dict[str, str], bootstrap: str, topic: str, tmp_path: Path, replay_rate: int | None = None
) -> Fed:
    history = list(generate(DatasetShape(events=3_000, keys=40, span_ms=2 * DAY, seed=11)))
    path = tmp_path / "history.csv"
    write(iter(history), path)
    with path.open("a") as handle:
        handle.writelines(BAD_ROWS)
    rate = [] if replay_rate is None else ["--rate", str(replay_rate)]
    # The bad rows are there on purpose: they must reach the dead-letter topic.
    allowed = ["--max-bad-rows", str(len(BAD_ROWS))]
    run_kappa(env, "replay", "--id", REPLAY_ID, *rate, *allowed, str(path))

    live = list(
        generate(
            DatasetShape(
                events=1_000, keys=40, start=datetime(2024, 1, 3, tzinfo=UTC), span_ms=DAY, seed=12
            )
        )
    )
    newest = max(ms(e["ts"]) for e in live)
    # Three hours behind the newest event: far behind either partition's watermark.
    late = [
        {
            "customer_id": f"c{i:05d}",
            "ts": iso(newest - 3 * HOUR - i * 1000),
            "amount": 2.5,
            "quantity": 1,
        }
        for i in range(7)
    ]
    asyncio.run(produce_events(bootstrap, topic, live + late, "customer_id"))
    asyncio.run(
        produce_raw(
            bootstrap,
            topic,
            [(b"bad", value) for values in BAD_RECORDS.values() for value in values],
        )
    )
    return Fed(
        replay_rows=len(history),
        replay_bad_rows=len(BAD_ROWS),
        live_late=len(late),
        events=history + live + late,
        partitions=fold_log(asyncio.run(read_all(bootstrap, topic))),
    )
