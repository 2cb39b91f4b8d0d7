"""The wide-record workload's records (bench.wide): 20 fields, naive ISO times, and the
same events for the bench pipeline as the narrow orders they widen."""

from __future__ import annotations

import tomllib
from datetime import datetime

import orjson

from agents.events import EventParser
from agents.spec import parse_spec
from app.datagen import DatasetShape, generate
from bench.wide import FIELDS, generate_wide
from bench.workers import SPEC


def test_wide_records_are_the_narrow_orders_with_more_fields_and_naive_times() -> None:
    shape = DatasetShape(events=500, keys=20, seed=4)
    spec = parse_spec(tomllib.loads(SPEC.format(run="t", version=1, windows="")), "bench")
    parser = EventParser(spec)
    narrow = [parser.parse_bytes(orjson.dumps(event)) for event in generate(shape)]
    wide = list(generate_wide(shape))

    assert all(len(record) == FIELDS == 20 for record in wide)
    times = [record[name] for record in wide for name in ("ts", "created_at", "shipped_at")]
    assert all(datetime.fromisoformat(text).tzinfo is None for text in times)
    parsed = [parser.parse_bytes(orjson.dumps(record)) for record in wide]
    assert [(e.key, e.ts_ms, e.values) for e in parsed] == [
        (e.key, e.ts_ms, e.values) for e in narrow
    ]
