"""Generate order events for the demo, the tests and the benchmarks.

Events are out of order, but never by more than ``disorder`` (keep it below the
pipeline's lateness and nothing is late).

Two kinds of values (``DatasetShape.values``):

- ``adversarial``, for the tests and benchmarks: decimals as people write them
  (``1234.57``, ``0.1``, ``3.3333``, ``250``), with up to four decimal places and
  magnitudes from 0.0001 to about a billion. Most of them are not binary fractions, so
  a float sum of them rounds, and a plain running sum depends on the order of the events
  and on where it is rounded: an inexact sum in kappa shows up as a difference from the
  correctly rounded sum (``math.fsum``) of the same values. A value drawn with no
  decimal places is an int, so JSON has integers and floats in the same field.
- ``orders``, for the demo and the example history: what orders look like, an amount
  in dollars and cents (most orders some tens of dollars, a few up to about 3,000) and a
  quantity of 1 to 12 items.

Nulls (``null_fraction``) are kept in both.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson


@dataclass(frozen=True)
class DatasetShape:
    events: int = 10_000
    keys: int = 200
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    span_ms: int = 3 * 86_400_000
    disorder_ms: int = 5 * 60_000
    null_fraction: float = 0.05
    seed: int = 1
    values: Literal["adversarial", "orders"] = "adversarial"


def generate(shape: DatasetShape) -> Iterator[dict[str, Any]]:
    """Events in arrival order: time advances steadily, each event jittered back by up to
    ``disorder_ms``, so every event is within ``disorder_ms`` of the newest before it."""
    rng = random.Random(shape.seed)
    start_ms = int(shape.start.timestamp() * 1000)
    step = shape.span_ms / max(1, shape.events)
    amount_of, quantity_of = VALUES[shape.values]
    for i in range(shape.events):
        ts = start_ms + int(i * step) - rng.randrange(shape.disorder_ms + 1)
        amount = None if rng.random() < shape.null_fraction else amount_of(rng)
        quantity = None if rng.random() < shape.null_fraction else quantity_of(rng)
        yield {
            "customer_id": f"c{rng.randrange(shape.keys):05d}",
            "ts": _iso(ts),
            "amount": amount,
            "quantity": quantity,
        }


def _decimal(rng: random.Random, max_digits: int, max_places: int) -> float | int:
    """A positive decimal of 1 to ``max_digits`` digits, 0 to ``max_places`` of them after
    the point: the float nearest to it (whose repr is that decimal), or an int if it has
    no decimal places."""
    places = rng.randrange(max_places + 1)
    units = rng.randrange(1, 10 ** rng.randrange(1, max_digits + 1))
    return units / 10**places if places else units


# An order's amount: log-normal around $40 (most are tens of dollars), in cents, at most
# $3,000.
ORDER_MEDIAN = 40.0
ORDER_SPREAD = 1.0
ORDER_MAX = 3_000.0


def _order_amount(rng: random.Random) -> float:
    return round(
        min(ORDER_MAX, max(0.5, rng.lognormvariate(math.log(ORDER_MEDIAN), ORDER_SPREAD))), 2
    )


def _order_quantity(rng: random.Random) -> int:
    return min(12, 1 + int(rng.expovariate(0.5)))


ValueOf = Callable[[random.Random], float | int]
VALUES: dict[str, tuple[ValueOf, ValueOf]] = {
    "adversarial": (lambda rng: _decimal(rng, 9, 4), lambda rng: _decimal(rng, 5, 3)),
    "orders": (_order_amount, _order_quantity),
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def write(events: Iterator[dict[str, Any]], path: Path) -> int:
    """Write events as CSV or JSON Lines (by suffix, ``.gz`` compressed or not)."""
    opener = gzip.open if path.suffix == ".gz" else open
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    count = 0
    if stem_suffix == ".csv":
        with opener(path, "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["customer_id", "ts", "amount", "quantity"])
            for event in events:
                writer.writerow(["" if v is None else v for v in event.values()])
                count += 1
    elif stem_suffix in (".jsonl", ".ndjson", ".json"):
        with opener(path, "wb") as handle:
            for event in events:
                handle.write(orjson.dumps(event) + b"\n")
                count += 1
    else:
        raise ValueError(f"{path}: write .csv or .jsonl (optionally .gz)")
    return count


BAD_ROWS: tuple[dict[str, Any], ...] = (
    {"customer_id": "c00001", "ts": "not-a-time", "amount": 1.0, "quantity": 1},
    {"customer_id": "c00002", "ts": "2024-01-01T00:00:00Z", "amount": "twelve", "quantity": 1},
    {"customer_id": "", "ts": "2024-01-01T00:00:00Z", "amount": 1.0, "quantity": 1},
)


def with_bad_rows(events: Iterator[dict[str, Any]], every: int) -> Iterator[dict[str, Any]]:
    """Insert one of ``BAD_ROWS`` after every ``every`` good events (for demos of the
    dead-letter path)."""
    for i, event in enumerate(events, start=1):
        yield event
        if every and i % every == 0:
            yield BAD_ROWS[(i // every) % len(BAD_ROWS)]
