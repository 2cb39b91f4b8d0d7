from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agents.errors import ConfigError
from agents.spec import SpecError, load_spec, parse_spec
from tables.windows import Sessions, aligned_window

EXAMPLE = Path(__file__).parents[3] / "examples" / "orders.toml"
HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR

MINIMAL: dict[str, Any] = {
    "name": "orders",
    "version": 1,
    "input_topic": "orders",
    "key": "customer_id",
    "time_field": "ts",
}


def spec_error(data: dict[str, Any]) -> str:
    """What is wrong with ``data`` (the error's message, without what to do)."""
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "orders.toml")
    assert caught.value.hint is not None  # every spec error says what to do
    return caught.value.message


def test_example_loads() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.name == "orders"
    assert spec.version == 1
    assert spec.input_topic == "orders"
    assert spec.key == ("customer_id",)
    assert spec.time_field == "ts"
    assert spec.time_format == "auto"
    assert spec.values == ("amount", "quantity")
    assert spec.metrics == ("count", "sum", "min", "max", "mean")
    assert spec.windows == (
        aligned_window(name="1h", size_ms=HOUR, step_ms=HOUR),
        aligned_window(name="1d/6h", size_ms=DAY, step_ms=6 * HOUR),
    )
    assert spec.lateness_ms == 10 * MINUTE
    assert spec.retention_ms == 30 * DAY
    assert spec.max_record_bytes == 1_048_576


def test_defaults() -> None:
    spec = parse_spec(MINIMAL, "x")
    assert spec.time_format == "auto"
    assert spec.values == ()
    assert spec.metrics == ("count", "sum", "min", "max", "mean")
    assert spec.windows == ()
    assert spec.lateness_ms == 0
    assert spec.retention_ms == 7 * DAY
    assert spec.max_record_bytes == 1_048_576
    assert spec.partitions is None
    assert spec.description is None


def test_partitions_is_the_versions_own_count() -> None:
    assert parse_spec(MINIMAL | {"partitions": 12}, "x").partitions == 12


def test_key_list_is_kept_in_order() -> None:
    assert parse_spec(MINIMAL | {"key": ["region", "store"]}, "x").key == ("region", "store")


def test_step_equal_to_size_is_tumbling() -> None:
    spec = parse_spec(MINIMAL | {"windows": [{"size": "15m", "step": "15m"}]}, "x")
    assert spec.windows == (aligned_window(name="15m", size_ms=15 * MINUTE, step_ms=15 * MINUTE),)


def test_spec_is_frozen() -> None:
    spec = parse_spec(MINIMAL, "x")
    with pytest.raises(ValueError, match="frozen"):
        spec.version = 2  # type: ignore[misc]


def test_dump_by_alias_is_the_toml_shape_and_reads_back() -> None:
    spec = load_spec(EXAMPLE)
    dumped = spec.model_dump(by_alias=True)
    assert dumped["windows"] == ({"size": "1h"}, {"size": "1d", "step": "6h"})
    assert dumped["lateness"] == "10m"
    assert parse_spec(dumped, "dump") == spec
    assert spec.model_dump()["lateness_ms"] == 10 * MINUTE


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"windows": [{"size": "1h"}, {"size": "1h", "step": "2h"}]},
            "windows[1].step: step 2h is larger than size 1h; use a step <= size",
        ),
        ({"windows": [{"size": "0s"}]}, "windows[0].size: size 0s is empty"),
        ({"windows": [{"size": "1h", "step": "0ms"}]}, "windows[0].step: step 0s never advances"),
        ({"windows": [{"size": 3600}]}, "windows[0].size: expected a duration string"),
        ({"windows": [{"size": "1h"}, {"size": "60m"}]}, "windows: windows[1] repeats window 1h"),
        (
            {"windows": [{"step": "1h"}]},
            "windows[0]: a window needs a size ({ size = '1h' }) or a session gap"
            " ({ gap = '30m' })",
        ),
        ({"windows": [{"gap": "0s"}]}, "windows[0].gap: gap 0s never lets a session hold"),
        (
            {"windows": [{"gap": "30m", "size": "1h"}]},
            "windows[0]: a session window has a gap and no size or step",
        ),
        (
            {"windows": [{"size": "1h", "stpe": "1m"}]},
            "windows[0].stpe: unknown field; did you mean 'step'?",
        ),
        ({"name": "Orders"}, "name: 'Orders' is not a valid pipeline name"),
        ({"name": "a" * 64}, "name: 'aaaa"),
        ({"version": 0}, "version: Input should be greater than 0, got 0"),
        ({"version": "1"}, "version: Input should be a valid integer, got '1'"),
        ({"version": True}, "version: Input should be a valid integer, got True"),
        ({"input_topic": "my topic"}, "input_topic: 'my topic' is not a valid Kafka topic name"),
        ({"input_topic": ".."}, "input_topic: '..' is not a valid Kafka topic name"),
        ({"input_topic": "t" * 250}, "input_topic: 'tttt"),
        ({"key": []}, "key: the key needs at least one field name"),
        ({"key": 7}, "key: expected a field name or a list of field names, got 7"),
        ({"key": ["a", "a"]}, "key: 'a' is listed twice"),
        ({"key": ["a", 1]}, "key[1]: Input should be a valid string, got 1"),
        ({"key": [""]}, "key[0]: String should have at least 1 character"),
        ({"time_field": ""}, "time_field: String should have at least 1 character"),
        ({"time_format": "unix"}, "time_format: Input should be 'auto', 'iso8601', 'epoch_s' or"),
        ({"values": ["customer_id"]}, "values: 'customer_id' is also the key or the time field"),
        ({"values": ["ts"]}, "values: 'ts' is also the key or the time field"),
        ({"values": ["amount", "amount"]}, "values: 'amount' is listed twice"),
        ({"metrics": ["sum", "avg"], "values": ["x"]}, "metrics[1]: Input should be 'count'"),
        ({"metrics": ["count", "count"]}, "metrics: 'count' is listed twice"),
        (
            {"metrics": []},
            "metrics: no metrics; choose at least one of count, sum, min, max, mean, first,"
            " last, count_distinct, p50, p90, p99",
        ),
        ({"metrics": ["sum"]}, "metrics: ['sum'] need value fields, and values is empty"),
        ({"lateness": 600}, "lateness: expected a duration string such as '30s' or '1h', got 600"),
        ({"lateness": "10 minutes"}, "lateness: invalid duration '10 minutes'"),
        ({"retention": "-1d"}, "retention: invalid duration '-1d'"),
        ({"max_record_bytes": 0}, "max_record_bytes: Input should be greater than 0"),
        ({"partitions": 0}, "partitions: Input should be greater than 0"),
        ({"partitions": "4"}, "partitions: Input should be a valid integer"),
        ({"description": 5}, "description: Input should be a valid string, got 5"),
        ({"windw": []}, "windw: unknown field; did you mean 'windows'?"),
        ({"zzz": 1}, "zzz: unknown field; expected one of ['name', 'version'"),
        ({"lateness_ms": 5}, "lateness_ms: unknown field; did you mean 'lateness'?"),
        (
            {"null_values": ["NA", 1]},
            'null_values[1]: a null marker is a string such as "NA", got 1; quote it',
        ),
        ({"null_values": [True]}, 'null_values[0]: a null marker is a string such as "NA"'),
        (
            {"null_values": {"NA": 1}},
            'null_values: expected a string or a list of strings such as ["NA", "NULL"]',
        ),
        ({"null_values": ["NA", "NA"]}, "null_values: 'NA' is listed twice"),
        ({"timezone": "America/NewYork"}, "timezone: 'America/NewYork' is not a time zone; did"),
        ({"timezone": "Moon/Base"}, "timezone: 'Moon/Base' is not a time zone; use an IANA name"),
        ({"timezone": "../etc/passwd"}, "timezone: '../etc/passwd' is not a time zone"),
        ({"timezone": 5}, "timezone: Input should be a valid string, got 5"),
        (
            {"timezone": "Europe/Paris", "windows": [{"size": "1h"}, {"size": "1d", "step": "6h"}]},
            "windows: windows[1]: 1d/6h spans whole days, so in time zone Europe/Paris it"
            " starts at local midnight and needs a step of whole days",
        ),
    ],
)
def test_invalid_spec_names_file_and_field(change: dict[str, Any], expected: str) -> None:
    assert f"orders.toml: {expected}" in spec_error(MINIMAL | change)


def test_first_and_last_are_metrics_of_the_value_fields() -> None:
    spec = parse_spec(MINIMAL | {"metrics": ["count", "first", "last"], "values": ["x"]}, "x")
    assert spec.metrics == ("count", "first", "last")
    example = load_spec(EXAMPLE.with_name("order-ends.toml"))
    assert example.metrics == ("count", "first", "last", "count_distinct", "p50", "p99")
    assert example.input_topic == load_spec(EXAMPLE).input_topic


def test_missing_required_fields_are_all_reported() -> None:
    message = spec_error({"name": "orders"})
    for field in ("version", "input_topic", "key", "time_field"):
        assert f"orders.toml: {field}: required field is missing" in message


def test_long_values_are_shortened_in_messages() -> None:
    message = spec_error(MINIMAL | {"description": ["x" * 500]})
    assert "..." in message
    assert len(message) < 200


def test_spec_error_is_a_config_error() -> None:
    assert issubclass(SpecError, ConfigError)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)
    assert "no such pipeline spec file" in str(caught.value)
    assert "examples/orders.toml" in str(caught.value)


def test_directory_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the pipeline spec"):
        load_spec(tmp_path)


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "orders"\nversion = \n')
    with pytest.raises(SpecError, match=r"bad\.toml: invalid TOML: .*line 2"):
        load_spec(path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(path)


def test_validation_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(EXAMPLE.read_text().replace('step = "6h"', 'step = "2d"'))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.message == (
        f"{path}: windows[1].step: step 2d is larger than size 1d; use a step <= size"
    )


def test_null_values_default_to_none_and_accept_one_string() -> None:
    assert parse_spec(MINIMAL, "x").null_values == ()
    assert parse_spec(MINIMAL | {"null_values": "NA"}, "x").null_values == ("NA",)
    markers = ["NA", "NULL", "", "-999"]
    assert parse_spec(MINIMAL | {"null_values": markers}, "x").null_values == tuple(markers)


def test_timezone_puts_whole_day_windows_on_the_local_calendar() -> None:
    windows = [{"size": "1h"}, {"size": "36h"}, {"size": "1d"}, {"size": "7d", "step": "1d"}]
    spec = parse_spec(MINIMAL | {"timezone": "America/New_York", "windows": windows}, "x")
    new_york = ZoneInfo("America/New_York")
    assert spec.timezone == "America/New_York"
    assert spec.windows == (
        aligned_window(name="1h", size_ms=HOUR, step_ms=HOUR),
        aligned_window(name="36h", size_ms=36 * HOUR, step_ms=36 * HOUR),
        aligned_window(name="1d@America/New_York", size_ms=DAY, step_ms=DAY, zone=new_york),
        aligned_window(name="1w/1d@America/New_York", size_ms=7 * DAY, step_ms=DAY, zone=new_york),
    )
    dumped = spec.model_dump(by_alias=True)
    assert dumped["timezone"] == "America/New_York"
    assert dumped["windows"] == (
        {"size": "1h"},
        {"size": "36h"},
        {"size": "1d"},
        {"size": "1w", "step": "1d"},
    )
    assert parse_spec(dumped, "dump") == spec


def test_utc_keeps_plain_windows() -> None:
    spec = parse_spec(MINIMAL | {"timezone": "UTC", "windows": [{"size": "1d", "step": "6h"}]}, "x")
    assert spec.windows == (aligned_window(name="1d/6h", size_ms=DAY, step_ms=6 * HOUR),)


def test_session_windows_parse_name_and_dump_back() -> None:
    spec = parse_spec(MINIMAL | {"windows": [{"size": "1h"}, {"gap": "30m"}]}, "x")
    sessions = spec.windows[1]
    assert isinstance(sessions, Sessions)
    assert (sessions.name, sessions.gap_ms) == ("session/30m", 30 * MINUTE)
    assert [w.name for w in spec.paned_windows] == ["1h"]
    assert spec.model_dump(by_alias=True)["windows"] == ({"size": "1h"}, {"gap": "30m"})
    assert parse_spec(spec.model_dump(by_alias=True), "dump") == spec


def test_the_sessions_example_reads_the_orders_input() -> None:
    example = load_spec(EXAMPLE.with_name("order-sessions.toml"))
    assert example.windows == (Sessions("session/30m", 30 * MINUTE),)
    assert example.input_topic == load_spec(EXAMPLE).input_topic


def test_session_windows_ignore_the_time_zone() -> None:
    spec = parse_spec(MINIMAL | {"windows": [{"gap": "1d"}], "timezone": "Europe/Paris"}, "x")
    assert spec.windows == (Sessions("session/1d", DAY),)
