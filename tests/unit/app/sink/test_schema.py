"""A version's records as PostgreSQL rows, and what a record that fits no row gets."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest

from agents.errors import ConfigError
from agents.spec import PipelineSpec
from app.sink.schema import BadRow, SinkTables
from tables.aggregates import Agg
from tables.records import KeyRecord, SourceFence, WindowResult

SPEC = PipelineSpec.model_validate(
    {
        "name": "orders-eu",
        "version": 3,
        "input_topic": "orders",
        "key": ["customer_id"],
        "time_field": "ts",
        "values": ["amount", "quantity"],
        "metrics": ["count", "sum", "max"],
        "windows": [{"size": "1h"}],
    }
)
TABLES = SinkTables.of(SPEC, "kappa")
# 0.1 + 0.2 + 0.3 in float order is 0.6000000000000001; the exact sum is 0.6.
AMOUNTS = [0.1, 0.2, 0.3]


def _agg() -> Agg:
    agg = Agg.empty(2)
    for amount in AMOUNTS:
        agg.add([amount, None])
    return agg


def test_names_columns_and_views() -> None:
    assert (TABLES.windows, TABLES.totals, TABLES.dead_letters) == (
        "orders_eu_v3_windows",
        "orders_eu_v3_totals",
        "orders_eu_v3_dead_letters",
    )
    assert (TABLES.windows_view, TABLES.totals_view) == ("orders_eu_windows", "orders_eu_totals")
    assert TABLES.metric_columns == [
        "count",
        "amount_sum",
        "amount_max",
        "quantity_sum",
        "quantity_max",
    ]
    assert TABLES.metric_types() == ["bigint", *["double precision"] * 4]


def test_a_name_longer_than_postgres_allows_is_a_config_error() -> None:
    spec = SPEC.model_copy(update={"values": ("a" * 60,)})
    with pytest.raises(ConfigError, match="63-byte"):
        SinkTables.of(spec, "kappa")


def test_a_final_window_result_becomes_its_row() -> None:
    result = WindowResult(
        "c1", "1h", 3_600_000, 7_200_000, True, _agg().result(SPEC.values, SPEC.metrics)
    )
    row = TABLES.window_row(result.encoded)
    assert row[:4] == ("c1", "1h", 3_600_000, 7_200_000)
    assert row[4:6] == (datetime(1970, 1, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, 2, tzinfo=UTC))
    assert row[6:] == (3, math.fsum(AMOUNTS), 0.3, None, None)


def test_a_key_record_of_the_changelog_becomes_its_totals_row() -> None:
    record = KeyRecord(fence=SourceFence(41), totals=_agg())
    row = TABLES.totals_row(orjson.dumps("c1"), orjson.dumps(record.to_state()))
    assert row == ("c1", 3, math.fsum(AMOUNTS), 0.3, None, None)
    assert row[2] == 0.6 != sum(AMOUNTS)


def test_first_last_count_distinct_and_quantiles_are_columns_of_their_own() -> None:
    metrics = ("first", "last", "count_distinct", "p50")
    spec = SPEC.model_copy(update={"metrics": metrics, "values": ("amount",)})
    tables = SinkTables.of(spec, "kappa")
    assert tables.metric_columns == [
        "amount_first",
        "amount_last",
        "amount_count_distinct",
        "amount_p50",
    ]
    assert tables.metric_types() == [*["double precision"] * 2, "bigint", "double precision"]
    agg = Agg.empty(1, spec.metrics)
    agg.add_rows([[2.0], [1.0], [3.0], [1.0]], [(5, 2), (5, 1), (4, 9), (6, 0)])  # time, offset
    record = KeyRecord(fence=SourceFence(9), totals=agg)
    row = tables.totals_row(orjson.dumps("c1"), orjson.dumps(record.to_state()))
    assert row[:4] == ("c1", 3.0, 1.0, 3)
    assert isinstance(row[3], int)
    assert abs(row[4] - 1.0) <= 0.01  # rank ceil(0.5 * 4) of 1, 1, 2, 3, within 1 %


GOOD = {"key": "k", "window": "1h", "start_ms": 0, "end_ms": 3_600_000}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "has no value"),
        (b"{", "not JSON"),
        (b"[1]", "not an object"),
        (orjson.dumps({**GOOD, "key": ""}), "key must be a non-empty string"),
        (orjson.dumps({**GOOD, "key": "a\x00b"}), "NUL"),
        (orjson.dumps({**GOOD, "window": 7}), "window must be a non-empty string"),
        (orjson.dumps({**GOOD, "start_ms": 2**63}), "start_ms must be a 64-bit integer"),
        (orjson.dumps({**GOOD, "start_ms": True}), "start_ms must be a 64-bit integer"),
        (orjson.dumps({**GOOD, "end_ms": 0}), "start_ms < end_ms"),
        (orjson.dumps({**GOOD, "count": 1.5}), "count must be a 64-bit integer"),
        (orjson.dumps({**GOOD, "values": []}), "'values' is list"),
        (orjson.dumps({**GOOD, "values": {"amount": 1}}), "values.amount is int"),
        (orjson.dumps({**GOOD, "values": {"amount": {"sum": "1"}}}), "amount_sum must be a number"),
        (orjson.dumps({**GOOD, "end_ms": 2**62}), "outside PostgreSQL's timestamps"),
    ],
)
def test_a_result_that_fits_no_row_is_a_bad_row_with_the_reason(
    value: bytes | None, reason: str
) -> None:
    with pytest.raises(BadRow, match=reason):
        TABLES.window_row(value)


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, b"[]", "has no key"),
        (b'"k"', b"[1, 2]", "not a key record"),
        (b'"k"', b'"text"', "not a key record"),
        (
            b"7",
            orjson.dumps(KeyRecord(SourceFence(0), _agg()).to_state()),
            "key must be a non-empty",
        ),
    ],
)
def test_a_changelog_record_that_is_no_key_record_is_a_bad_row(
    key: bytes | None, value: bytes, reason: str
) -> None:
    with pytest.raises(BadRow, match=reason):
        TABLES.totals_row(key, value)
