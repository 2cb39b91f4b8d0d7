"""``kappa verify`` for a spec with ``[[derive]]`` or ``where``: DuckDB computes them.

The reader hands over each record's input fields as the parser types them
(``EventParser.input_row``), before any expression. DuckDB then computes each derived
field in order, one ``SELECT`` layer each, from the checked expression's SQL
(``Compiled.sql``, the text as written with kappa's literal types), and flags the rows
where a value cannot be computed (``Compiled.error_sql``); then ``where``, then the key.
Each row ends as an event or as what the worker makes of it, in the worker's order:
``uncomputable`` (a derived field or the ``where``), filtered (the ``where`` is not
TRUE), ``missing_key`` (a derived key part NULL or empty).
"""

from __future__ import annotations

from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from agents.expressions import sql_name
from agents.spec import PipelineSpec
from app.verify.batch import event_schema

FILTERED = "filtered"


def input_schema(spec: PipelineSpec) -> pa.Schema:
    """The columns the reader collects: partition, order, event time (ms), then each
    input field the expressions, the key or the values read, by position (``i0``...)."""
    assert spec.expressions is not None
    arrow = {"DOUBLE": pa.float64(), "BIGINT": pa.int64(), "VARCHAR": pa.string(),
             "BOOLEAN": pa.bool_(), "TIMESTAMP": pa.int64()}  # fmt: skip
    types = spec.expressions.types
    return pa.schema(
        [("p", pa.int32()), ("seq", pa.int64()), ("t", pa.int64())]
        + [(f"i{index}", arrow[types[name]]) for index, name in enumerate(input_names(spec))]
    )


def input_names(spec: PipelineSpec) -> list[str]:
    """The input fields, except the time field (it is the column ``t``)."""
    return [name for name in spec.input_fields() if name != spec.time_field]


def derived_events(
    con: duckdb.DuckDBPyConnection, inputs: pa.Table, spec: PipelineSpec
) -> tuple[pa.Table, Counter[str]]:
    """The events (``event_schema``) DuckDB derives from ``inputs`` (``input_schema``),
    and how many rows ended otherwise, by outcome (``filtered``, a dead-letter reason)."""
    expressions = spec.expressions
    assert expressions is not None
    columns = [
        "p AS __kappa_p",
        "seq AS __kappa_seq",
        "t AS __kappa_t",
        f"make_timestamp(t * 1000) AS {sql_name(spec.time_field)}",
        *(f"i{index} AS {sql_name(name)}" for index, name in enumerate(input_names(spec))),
    ]
    con.register("inputs_in", inputs)
    layer = f"SELECT {', '.join(columns)} FROM inputs_in"
    bad = ["FALSE"]
    for index, (name, compiled) in enumerate(expressions.derived):
        flag = f"__kappa_bad{index}"
        layer = (
            f"SELECT *, CASE WHEN {compiled.error_sql} THEN NULL ELSE {compiled.sql} END"
            f" AS {sql_name(name)}, {compiled.error_sql} AS {flag} FROM ({layer})"
        )
        bad.append(flag)
    where = expressions.where
    if where is not None:
        bad.append(f"({where.error_sql})")
    kept = "TRUE" if where is None else f"({where.sql}) IS TRUE"
    derived = {name for name, _ in expressions.derived}
    key_parts = [f"CAST({sql_name(name)} AS VARCHAR)" for name in spec.key]
    missing = " OR ".join(
        f"coalesce({part}, '') = ''"
        for name, part in zip(spec.key, key_parts, strict=True)
        if name in derived
    )
    values = [f"CAST({sql_name(name)} AS DOUBLE) AS v{i}" for i, name in enumerate(spec.values)]
    outcome = (
        f"CASE WHEN {' OR '.join(bad)} THEN 'uncomputable' WHEN NOT ({kept}) THEN '{FILTERED}'"
        f" WHEN {missing or 'FALSE'} THEN 'missing_key' END"
    )
    result = con.sql(
        f"""
        SELECT __kappa_p AS p, __kappa_seq AS seq, concat_ws('|', {", ".join(key_parts)}) AS k,
               __kappa_t AS t, {", ".join([*values, outcome + " AS outcome"])}
        FROM ({layer})
        """
    ).to_arrow_table()
    con.unregister("inputs_in")
    assert result is not None
    outcomes = result["outcome"]
    good = pc.is_null(outcomes)
    counts = Counter(
        {
            str(row["values"]): int(row["counts"])
            for row in pc.value_counts(outcomes.filter(pc.invert(good))).to_pylist()
        }
    )
    events = result.filter(good).drop_columns(["outcome"])
    return events.cast(event_schema(len(spec.values))), counts
