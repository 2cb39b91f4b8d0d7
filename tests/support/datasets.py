"""The generated datasets the integration tests compare with the batch computation.

They live here, not in each test, so that tests/unit/app/test_datagen.py can show they
are able to catch an inexact sum: in each of them, a plain running sum differs from the
correctly rounded sum for some keys and windows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.datagen import DatasetShape
from tests.support.times import DAY, HOUR

Window = tuple[str, int, int]  # name, size ms, step ms
HOURLY: list[Window] = [("1h", HOUR, HOUR)]

# tests/integration/test_equivalence.py: 100k events on 1k keys over three weeks.
EQUIVALENCE = DatasetShape(
    events=100_000, keys=1_000, span_ms=21 * DAY, disorder_ms=5 * 60_000, seed=11
)
EQUIVALENCE_WINDOWS: list[Window] = [("1h", HOUR, HOUR), ("1d/6h", DAY, 6 * HOUR)]
# tests/integration/test_crash.py
CRASH = DatasetShape(events=20_000, keys=200, span_ms=5 * DAY, seed=21)
# tests/integration/test_late_and_retention.py: on-time events, and events from 2015
ON_TIME = DatasetShape(events=3_000, keys=50, span_ms=2 * DAY, disorder_ms=5 * 60_000, seed=5)
OLD_HISTORY = DatasetShape(
    events=4_000,
    keys=20,
    start=datetime(2015, 3, 1, tzinfo=UTC),
    span_ms=10 * DAY,
    disorder_ms=60_000,
    seed=3,
)
# tests/integration/test_replay_order.py: a file to shuffle, and one to write as Parquet
TO_SHUFFLE = DatasetShape(events=3_000, keys=40, seed=6)
PARQUET = DatasetShape(events=2_000, keys=30, seed=9)
# tests/integration/test_responsive.py: a backlog of hopping windows (24 per event) that
# fills fetches taking seconds to apply in one go.
HOPPING_BACKLOG = DatasetShape(events=16_000, keys=2_000, span_ms=5 * DAY, seed=41)
HOPPING_BACKLOG_WINDOWS: list[Window] = [("1d/1h", DAY, HOUR)]
# tests/integration/test_crash.py: a day of hopping windows on many keys, closed all by
# one later event (about 150k window results), in steps that a crash can cut short.
ONE_DAY_MANY_KEYS = DatasetShape(events=16_000, keys=4_000, span_ms=DAY, seed=43)

COMPARED: dict[str, tuple[DatasetShape, list[Window]]] = {
    "equivalence": (EQUIVALENCE, EQUIVALENCE_WINDOWS),
    "crash": (CRASH, HOURLY),
    "on time": (ON_TIME, HOURLY),
    "old history": (OLD_HISTORY, HOURLY),
    "to shuffle": (TO_SHUFFLE, HOURLY),
    "parquet": (PARQUET, HOURLY),
    "hopping backlog": (HOPPING_BACKLOG, HOPPING_BACKLOG_WINDOWS),
    "one day, many keys": (ONE_DAY_MANY_KEYS, HOPPING_BACKLOG_WINDOWS),
}
