"""``kappa verify``'s DuckDB derivation gives, for every record, what the worker's
parser gives: the same events (key, time, values) and the same rows left out, filtered
or dead-lettered by reason, on generated records with NULLs, zeros and bad values."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.events import Event, EventParser, Rejected
from agents.spec import PipelineSpec, parse_spec
from app.verify.batch import connect
from app.verify.derived import FILTERED, derived_events, input_names, input_schema

SPEC = parse_spec(
    {
        "name": "seeds",
        "version": 1,
        "input_topic": "seeds",
        "key": ["key", "bucket"],
        "time_field": "ts",
        "values": ["total", "ratio", "field1"],
        "null_values": ["NA"],
        "fields": {"field2": "double", "status": "text", "qty": "bigint"},
        "where": "status IN ('paid', 'PAID') OR qty > 5",
        "derive": [
            {"name": "total", "expr": "field1 + field2"},
            {"name": "ratio", "expr": "CASE WHEN qty = 0 THEN NULL ELSE total / qty END"},
            {"name": "bucket", "expr": "CASE WHEN qty > 8 THEN NULL ELSE qty % 3 END"},
        ],
    },
    "seeds.toml",
)

numbers = st.one_of(
    st.none(),
    st.sampled_from(["", "NA", "x", 0, 0.0, 1e308, -1e308, "2.5", 0.1]),
    st.floats(-1e6, 1e6, allow_nan=False),
)
records = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["a", "b", "", None, 7]),
        "ts": st.integers(0, 10**12),
        "field1": numbers,
        "field2": numbers,
        "status": st.sampled_from(["paid", "PAID", "open", None, "", 3]),
        "qty": st.one_of(st.none(), st.integers(-2, 10), st.sampled_from(["4", "x", 2.5])),
    }
)


def worker_answer(spec: PipelineSpec, rows: list[dict[str, Any]]) -> tuple[list[Any], Counter[str]]:
    events, outcomes = [], Counter[str]()
    for parsed in EventParser(spec).parse_batch([orjson.dumps(row) for row in rows]):
        if isinstance(parsed, Rejected):
            outcomes[parsed.reason] += 1
        elif not parsed.kept:
            outcomes[FILTERED] += 1
        else:
            assert isinstance(parsed, Event)
            events.append((parsed.key, parsed.ts_ms, *parsed.values))
    return events, outcomes


def verify_answer(spec: PipelineSpec, rows: list[dict[str, Any]]) -> tuple[list[Any], Counter[str]]:
    parser = EventParser(spec)
    names = input_names(spec)
    columns: dict[str, list[Any]] = {name: [] for name in input_schema(spec).names}
    outcomes = Counter[str]()
    for seq, row in enumerate(rows):
        try:
            typed = parser.input_row(orjson.dumps(row))
        except Rejected as why:
            outcomes[why.reason] += 1
            continue
        columns["p"].append(0)
        columns["seq"].append(seq)
        columns["t"].append(typed[spec.time_field])
        for index, name in enumerate(names):
            columns[f"i{index}"].append(typed[name])
    table = pa.Table.from_pydict(columns, schema=input_schema(spec))
    events, derived = derived_events(connect(), table, spec)
    found = [tuple(row.values())[2:] for row in events.to_pylist()]
    return [(k, t, *v) for k, t, *v in found], outcomes + derived


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=30))
def test_duckdb_derives_what_the_worker_derives(rows: list[dict[str, Any]]) -> None:
    assert verify_answer(SPEC, rows) == worker_answer(SPEC, rows)


def test_every_outcome_occurs() -> None:
    rows = [
        {"key": "a", "ts": 1, "field1": 1, "field2": 2, "status": "paid", "qty": 4},  # event
        {"key": "a", "ts": 1, "field1": 1, "field2": 2, "status": "open", "qty": 1},  # filtered
        {"key": "a", "ts": 1, "field1": 1e308, "field2": 1e308, "status": "paid", "qty": 1},
        {"key": "a", "ts": 1, "field1": 1, "field2": 2, "status": "paid", "qty": 9},  # NULL key
        {"key": "a", "ts": 1, "field1": 1, "field2": "x", "status": "paid", "qty": 1},  # bad
    ]
    events, outcomes = worker_answer(SPEC, rows)
    assert events == [("a|1", 1000, 3.0, 0.75, 1.0)]
    assert outcomes == Counter({FILTERED: 1, "uncomputable": 1, "missing_key": 1, "bad_field": 1})
    assert verify_answer(SPEC, rows) == (events, outcomes)
