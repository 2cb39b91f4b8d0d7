"""A version's tables in PostgreSQL, and the rows its Kafka records become (pure).

Per version ``N`` of pipeline ``name`` (``-`` in the name becomes ``_``), in the schema
``KAPPA_POSTGRES_SCHEMA``:

| table | primary key | holds |
| --- | --- | --- |
| ``<name>_v<N>_windows`` | key, window, start_ms | each final window result |
| ``<name>_v<N>_totals`` | key | each key's totals, as the worker stored them |
| ``<name>_v<N>_dead_letters`` | topic, partition, kafka_offset | records that fit no row |

and, shared, ``sink_offsets`` (``topic, partition`` -> the next offset to write), which
every transaction of rows moves, and the views ``<name>_windows`` / ``<name>_totals`` over
the active version's tables. A metric is a column: ``count``, and ``<value>_<metric>``
for each value and value metric of the spec (``amount_sum``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from agents.errors import ConfigError
from agents.names import version_prefix
from agents.spec import PipelineSpec
from app.versions.names import changelog_topic
from tables.records import KeyRecord

OFFSETS_TABLE = "sink_offsets"
VALUE_METRICS = (
    "sum",
    "min",
    "max",
    "mean",
    "first",
    "last",
    "count_distinct",
    "p50",
    "p90",
    "p99",
)
COUNTS = ("count", "count_distinct")  # bigint columns; the others are double precision
MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names (NAMEDATALEN - 1)
BIGINT = 2**63

Row = tuple[Any, ...]


class BadRow(Exception):
    """A record that fits no row of the version's tables; goes to the dead letters."""


def table_stem(pipeline: str) -> str:
    return pipeline.replace("-", "_")


@dataclass(frozen=True)
class VersionTables:
    """The names of one version's tables, and of its pipeline's views over the active one."""

    pipeline: str
    version: int
    schema: str

    def _table(self, kind: str) -> str:
        return f"{table_stem(self.pipeline)}_v{self.version}_{kind}"

    @property
    def windows(self) -> str:
        return self._table("windows")

    @property
    def totals(self) -> str:
        return self._table("totals")

    @property
    def dead_letters(self) -> str:
        return self._table("dead_letters")

    @property
    def windows_view(self) -> str:
        return f"{table_stem(self.pipeline)}_windows"

    @property
    def totals_view(self) -> str:
        return f"{table_stem(self.pipeline)}_totals"

    @property
    def source_topics(self) -> tuple[str, str]:
        """What the sink reads: the version's final window results, and its ``keys``
        table's changelog (each key's record, written when the worker stores a batch)."""
        results = f"{version_prefix(self.pipeline, self.version)}.window-results"
        return results, changelog_topic(self.pipeline, self.version, "keys")

    @property
    def view_comment(self) -> str:
        """Each view's comment names the version it points at (read back by ``views``)."""
        return f"kappa {self.pipeline} v{self.version}"


@dataclass(frozen=True)
class SinkTables(VersionTables):
    """A version's tables with their columns, and its records as rows."""

    value_names: tuple[str, ...]
    metrics: tuple[str, ...]

    @classmethod
    def of(cls, spec: PipelineSpec, schema: str) -> SinkTables:
        tables = cls(spec.name, spec.version, schema, spec.values, spec.metrics)
        for name in (tables.windows, tables.totals, tables.dead_letters, *tables.metric_columns):
            if len(name.encode()) > MAX_IDENTIFIER:
                raise ConfigError(
                    f"{name!r} is longer than PostgreSQL's {MAX_IDENTIFIER}-byte names",
                    hint="use a shorter pipeline name or value field name",
                )
        return tables

    @property
    def _value_metrics(self) -> list[str]:
        return [m for m in self.metrics if m in VALUE_METRICS]

    @property
    def metric_columns(self) -> list[str]:
        count = ["count"] if "count" in self.metrics else []
        return count + [f"{v}_{m}" for v in self.value_names for m in self._value_metrics]

    def metric_types(self) -> list[str]:
        return [
            "bigint" if column.endswith(COUNTS) else "double precision"
            for column in self.metric_columns
        ]

    # -- rows -------------------------------------------------------------------------
    def _metrics(self, body: Mapping[str, Any]) -> list[Any]:
        """The metric columns of a result object (``count``, ``values``)."""
        out: list[Any] = []
        if "count" in self.metrics:
            out.append(_bigint(body.get("count"), "count"))
        values = body.get("values", {})
        if not isinstance(values, dict):
            raise BadRow(f"'values' is {type(values).__name__}, not an object")
        for name in self.value_names:
            found = values.get(name, {})
            if not isinstance(found, dict):
                raise BadRow(f"values.{name} is {type(found).__name__}, not an object")
            for metric in self._value_metrics:
                read = _bigint if metric in COUNTS else _double
                out.append(read(found.get(metric), f"{name}_{metric}"))
        return out

    def window_row(self, value: bytes | None) -> Row:
        """A final window result (the results topic's value) as a ``windows`` row:
        key, window, start_ms, end_ms, window_start, window_end, then the metrics."""
        body = _object(value)
        key = _text(body.get("key"), "key")
        window = _text(body.get("window"), "window")
        start_ms = _bigint(body.get("start_ms"), "start_ms")
        end_ms = _bigint(body.get("end_ms"), "end_ms")
        if start_ms is None or end_ms is None or end_ms <= start_ms:
            raise BadRow(f"a window needs start_ms < end_ms, got {start_ms} and {end_ms}")
        return (key, window, start_ms, end_ms, _time(start_ms), _time(end_ms), *self._metrics(body))

    def totals_row(self, key: bytes | None, value: bytes | None) -> Row:
        """A key's record from the worker's ``keys`` changelog as a ``totals`` row: key,
        then the metrics of its totals. Decoded only through ``tables.records``."""
        text = _text(_json(key, "key"), "key")
        try:
            record = KeyRecord.from_state(_json(value, "value"))
            totals = record.totals.result(self.value_names, self.metrics)
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise BadRow(f"not a key record of this spec: {exc}") from exc
        return (text, *self._metrics(totals))


def _json(raw: bytes | None, what: str) -> Any:
    if raw is None:
        raise BadRow(f"the record has no {what}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRow(f"the {what} is not JSON: {exc}") from exc


def _object(raw: bytes | None) -> dict[str, Any]:
    body = _json(raw, "value")
    if not isinstance(body, dict):
        raise BadRow(f"the value is a JSON {type(body).__name__}, not an object")
    return body


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRow(f"{what} must be a non-empty string, got {value!r:.80}")
    if "\x00" in value:
        raise BadRow(f"{what} holds a NUL character, which PostgreSQL text cannot")
    return value


def _bigint(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -BIGINT <= value < BIGINT:
        raise BadRow(f"{what} must be a 64-bit integer, got {value!r:.80}")
    return value


def _double(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRow(f"{what} must be a number, got {value!r:.80}")
    return float(value)


def _time(ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadRow(f"{ms} ms is outside PostgreSQL's timestamps") from exc
