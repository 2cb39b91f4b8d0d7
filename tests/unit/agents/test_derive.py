"""``[[derive]]``, ``where`` and ``fields``: checked when the spec is loaded, applied by
the event parser (derived values and keys, filtered events, dead letters)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.events import Event, EventParser, Rejected
from agents.spec import PipelineSpec, SpecError, parse_spec

BASE: dict[str, Any] = {
    "name": "seeds",
    "version": 1,
    "input_topic": "seeds",
    "key": "key",
    "time_field": "ts",
    "values": ["total"],
    "fields": {"field1": "double", "field2": "double", "status": "text"},
    "derive": [{"name": "total", "expr": "field1 + field2"}],
}


def spec(**changes: Any) -> PipelineSpec:
    return parse_spec({**BASE, **changes}, "seeds.toml")


def parse(parser: EventParser, **fields: Any) -> Event | Rejected:
    (result,) = parser.parse_batch([orjson.dumps(fields)])
    return result


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"derive": [{"name": "total", "expr": "field1 + feild2"}]},
            "seeds.toml: derive[0].expr: at column 10 (feild2): unknown field 'feild2';"
            " did you mean 'field2'?",
        ),
        (
            {"derive": [{"name": "total", "expr": "sqrt(field1)"}]},
            "seeds.toml: derive[0].expr: at column 1 (SQRT(field1)): unknown function SQRT;",
        ),
        (
            {"derive": [{"name": "total", "expr": "field1 + status"}]},
            "seeds.toml: derive[0].expr: at column 1 (field1 + status): '+' takes BIGINT or"
            " DOUBLE, got VARCHAR",
        ),
        (
            {"where": "status = 1"},
            "seeds.toml: where: at column 1 (status = 1): cannot compare VARCHAR with BIGINT;",
        ),
        ({"where": "field1 +"}, "seeds.toml: where: at column 8: cannot read this SQL"),
        (
            {"derive": [{"name": "total", "expr": "ROUND(CAST(field1 AS BIGINT), -1)"}]},
            "seeds.toml: derive[0].expr: at column 1 (ROUND(CAST(field1 AS BIGINT), -1)): ROUND"
            " of a BIGINT to tens or more: CAST it to DOUBLE first",
        ),
        ({"where": "total"}, "seeds.toml: where: is DOUBLE, not a condition"),
        (
            {"derive": [{"name": "field1", "expr": "1"}]},
            "seeds.toml: derive[0].name: 'field1' is already a field; give the derived field",
        ),
        (
            {"key": "total", "values": [], "metrics": ["count"]},
            "seeds.toml: key[0]: the derived field 'total' is DOUBLE; a key part is VARCHAR or"
            " BIGINT",
        ),
        (
            {"fields": {"field1": "float"}},
            "seeds.toml: fields.field1: Input should be 'double', 'bigint', 'text' or 'boolean'",
        ),
        (
            {"derive": [], "values": ["field1"]},
            "seeds.toml: fields: only expressions read fields; add [[derive]] or where",
        ),
        (
            {"derive": [{"name": "total", "expr": "field1", "as": "x"}]},
            "seeds.toml: derive[0].as: unknown field; expected one of ['name', 'expr']",
        ),
    ],
)
def test_bad_expressions_are_refused_at_load_with_where_and_what(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as error:
        spec(**changes)
    assert str(error.value).startswith(message), str(error.value)


def test_input_fields_names_every_field_the_pipeline_reads() -> None:
    loaded = spec(key=["key", "bucket"], where="status = 'paid'", derive=[
        {"name": "total", "expr": "field1 + field2"},
        {"name": "bucket", "expr": "hour(ts)"},
    ])  # fmt: skip
    assert set(loaded.input_fields()) == {"key", "ts", "field1", "field2", "status"}
    plain = parse_spec({**BASE, "fields": {}, "derive": [], "values": ["v"]}, "plain.toml")
    assert set(plain.input_fields()) == {"key", "ts", "v"}
    assert plain.expressions is None


def test_derived_values_follow_sql_null_rules() -> None:
    parser = EventParser(spec())
    event = parse(parser, key="k", ts=0, field1=1.25, field2="2")
    assert isinstance(event, Event)
    assert event.values == (3.25,)
    assert event.kept
    empty = parse(parser, key="k", ts=0, field1=1.25, field2="")
    assert isinstance(empty, Event)
    assert empty.values == (None,)  # 1.25 + NULL is NULL


def test_where_marks_events_filtered_not_rejected() -> None:
    parser = EventParser(spec(where="status = 'paid' AND total > 0"))
    kept = parse(parser, key="k", ts=0, field1=1, field2=2, status="paid")
    dropped = parse(parser, key="k", ts=0, field1=1, field2=2, status="open")
    unknown = parse(parser, key="k", ts=0, field1=1, field2=2)  # NULL status: not kept
    assert isinstance(kept, Event)
    assert kept.kept
    assert isinstance(dropped, Event)
    assert not dropped.kept
    assert isinstance(unknown, Event)
    assert not unknown.kept


def test_a_derived_key_part() -> None:
    parser = EventParser(
        spec(
            key=["key", "hour"],
            derive=[
                {"name": "total", "expr": "field1 + field2"},
                {"name": "hour", "expr": "hour(ts)"},
            ],
        )
    )
    event = parse(parser, key="k", ts="2024-05-01T13:30:00Z", field1=1, field2=2)
    assert isinstance(event, Event)
    assert event.key == "k|13"


@pytest.mark.parametrize(
    ("derive", "fields", "reason", "detail"),
    [
        (
            "field1 / field2",
            {"field1": 1, "field2": 0},
            "uncomputable",
            "derived field 'total' = field1 / field2: division by zero",
        ),
        (
            "CAST(field1 * 1e300 AS BIGINT)",
            {"field1": 1, "field2": 0},
            "uncomputable",
            "derived field 'total' = CAST(field1 * 1e300 AS BIGINT): CAST(1e+300 AS BIGINT)"
            " failed: beyond BIGINT's range",
        ),
        (
            "field1 + field2",
            {"field1": 1, "field2": "two"},
            "bad_field",
            "field 'field2' must be a finite number, got 'two'",
        ),
    ],
)
def test_values_that_cannot_be_computed_are_dead_letters_naming_field_and_expression(
    derive: str, fields: dict[str, Any], reason: str, detail: str
) -> None:
    parser = EventParser(spec(derive=[{"name": "total", "expr": derive}]))
    rejected = parse(parser, key="k", ts=0, **fields)
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.detail) == (reason, detail)


def test_a_guarded_division_is_not_a_dead_letter() -> None:
    parser = EventParser(
        spec(
            derive=[
                {"name": "total", "expr": "CASE WHEN field2 = 0 THEN NULL ELSE field1 / field2 END"}
            ]
        )
    )
    event = parse(parser, key="k", ts=0, field1=1, field2=0)
    assert isinstance(event, Event)
    assert event.values == (None,)
