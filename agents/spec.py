"""The pipeline spec: a named, versioned TOML description of what to compute.

``load_spec`` reads a file; ``parse_spec`` validates an already-decoded mapping. Both
raise ``SpecError`` naming the file, the field (``windows[1].step``) and what is expected.
``PipelineSpec.model_dump(by_alias=True)`` gives back the TOML shape, defaults included;
without ``by_alias`` it gives the attributes (``lateness_ms``, windows as their kinds' fields).
"""

from __future__ import annotations

import difflib
import re
import tomllib
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainSerializer,
    PrivateAttr,
    SerializationInfo,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, core_schema

from agents.cut import HistoryCut
from agents.durations import UNITS_MS, format_duration, parse_duration
from agents.errors import ConfigError
from agents.expression_types import Compiled, ExpressionError, SqlType
from tables.aggregates import KNOWN_METRICS, METRICS, Metric
from tables.windows import PanedKind, Sessions, WindowKind, aligned_window

TimeFormat = Literal["auto", "iso8601", "epoch_s", "epoch_ms"]
FieldType = Literal["double", "bigint", "text", "boolean"]
FIELD_TYPES: dict[str, SqlType] = {
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
}

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class SpecError(ConfigError):
    """A pipeline spec cannot be read or is invalid; without a hint of its own, it says
    to fix the spec."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(
            message,
            hint
            or "fix the spec (docs/pipelines.md describes each field), then run the "
            "command again; nothing was done",
        )


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _duration_ms(value: Any) -> int:
    # TOML integers are refused: "lateness = 600" could mean seconds or milliseconds.
    if not isinstance(value, str):
        raise ValueError(
            f"expected a duration string such as '30s' or '1h', got {short_repr(value)}"
        )
    return parse_duration(value)


def _dump_duration(ms: int, info: SerializationInfo) -> int | str:
    return format_duration(ms) if info.by_alias else ms


Duration = Annotated[int, BeforeValidator(_duration_ms), PlainSerializer(_dump_duration)]
FieldName = Annotated[str, Field(min_length=1)]
# Strict: TOML has real integers, so a quoted "1" or a boolean is a mistake worth reporting.
PositiveInt = Annotated[int, Field(strict=True, gt=0)]


def _null_marker(marker: Any) -> str:
    if not isinstance(marker, str):
        raise ValueError(
            f'a null marker is a string such as "NA", got {short_repr(marker)};'
            ' quote it (markers match the text of a field, e.g. "-999")'
        )
    return marker


NullMarker = Annotated[str, BeforeValidator(_null_marker)]


def _repeated(items: Iterable[object]) -> list[object]:
    return [item for item, n in Counter(items).items() if n > 1]


class _WindowInput(BaseModel):
    """One entry of ``windows`` as written: ``{size = "1h"}``, ``{size = "1h", step =
    "15m"}``, or sessions: ``{gap = "30m"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: Duration | None = None
    step: Duration | None = None
    gap: Duration | None = None

    @field_validator("size")
    @classmethod
    def _positive_size(cls, size: int | None) -> int | None:
        if size is not None and size <= 0:
            raise ValueError("size 0s is empty; use a positive size such as '1h'")
        return size

    @field_validator("gap")
    @classmethod
    def _positive_gap(cls, gap: int | None) -> int | None:
        if gap is not None and gap <= 0:
            raise ValueError("gap 0s never lets a session hold two events; use a positive gap")
        return gap

    @model_validator(mode="after")
    def _size_or_gap(self) -> _WindowInput:
        if self.gap is not None and (self.size is not None or self.step is not None):
            raise ValueError(
                "a session window has a gap and no size or step; write { gap = '30m' } alone"
            )
        if self.gap is None and self.size is None:
            raise ValueError(
                "a window needs a size ({ size = '1h' }) or a session gap ({ gap = '30m' })"
            )
        return self

    @field_validator("step")
    @classmethod
    def _step_within_size(cls, step: int | None, info: ValidationInfo) -> int | None:
        size = info.data.get("size")
        if step is not None and step <= 0:
            raise ValueError("step 0s never advances; use a positive step, or omit it")
        if step is not None and size is not None and step > size:
            raise ValueError(
                f"step {format_duration(step)} is larger than size {format_duration(size)};"
                " use a step <= size"
            )
        return step

    def to_window(self) -> WindowKind:
        if self.gap is not None:
            return Sessions(f"session/{format_duration(self.gap)}", self.gap)
        assert self.size is not None, "checked by _size_or_gap"
        step = self.step or self.size
        name = format_duration(self.size)
        if step != self.size:
            name = f"{name}/{format_duration(step)}"
        return aligned_window(name, self.size, step)


def _dump_window(window: WindowKind, info: SerializationInfo) -> dict[str, str | int]:
    if isinstance(window, Sessions):
        if not info.by_alias:
            return {"name": window.name, "gap_ms": window.gap_ms}
        return {"gap": format_duration(window.gap_ms)}
    assert isinstance(window, PanedKind), "a window is paned or sessions"
    if not info.by_alias:
        return {"name": window.name, "size_ms": window.size_ms, "step_ms": window.step_ms}
    size: dict[str, str | int] = {"size": format_duration(window.size_ms)}
    if window.step_ms == window.size_ms:
        return size
    return size | {"step": format_duration(window.step_ms)}


# Validated in the shape users write (so errors point at windows[1].step), stored as the
# window kind (tables.windows) it describes.
Window = Annotated[
    WindowKind,
    GetPydanticSchema(
        lambda _source, handler: core_schema.no_info_after_validator_function(
            _WindowInput.to_window,
            handler.generate_schema(_WindowInput),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _dump_window, info_arg=True
            ),
        )
    ),
]


class Derive(BaseModel):
    """One ``[[derive]]`` entry: a new field, computed by a SQL expression."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: FieldName
    expr: Annotated[str, Field(min_length=1)]


@dataclass(frozen=True)
class Expressions:
    """A spec's checked expressions, compiled once when the spec is loaded."""

    derived: tuple[tuple[str, Compiled], ...]  # in order: each may read the ones before
    where: Compiled | None
    types: Mapping[str, SqlType]  # every field an expression, the key or a value reads


class PipelineSpec(BaseModel):
    """A validated pipeline. Durations are held in milliseconds (``lateness_ms``), but
    written as strings under their TOML names (``lateness = "10m"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Field order matters: validators read earlier fields from ``info.data``.
    name: str
    version: PositiveInt
    description: str | None = None
    input_topic: str
    key: tuple[FieldName, ...]
    time_field: FieldName
    time_format: TimeFormat = "auto"
    values: tuple[FieldName, ...] = ()
    null_values: tuple[NullMarker, ...] = ()
    # Input fields the expressions read, with their types (docs/pipelines.md).
    fields: dict[FieldName, FieldType] = Field(default_factory=dict)
    derive: tuple[Derive, ...] = ()
    where: Annotated[str, Field(min_length=1)] | None = None
    metrics: tuple[Metric, ...] = METRICS
    timezone: str | None = None
    windows: tuple[Window, ...] = ()
    lateness_ms: Duration = Field(default=0, alias="lateness")
    retention_ms: Duration = Field(default=7 * UNITS_MS["d"], alias="retention")
    # Opt-in: a partition quiet this long (wall clock) moves its watermark to the active
    # partitions' lowest (tables/watermark.py); None: event time alone moves it.
    idle_timeout_ms: Duration | None = Field(default=None, alias="idle_timeout")
    max_record_bytes: PositiveInt = 1_048_576
    # The version's partition count; None: the input's when the version is created.
    partitions: PositiveInt | None = None
    # A cut: history files before it, the live input from it on (app/cut.py).
    history: HistoryCut | None = None
    _expressions: Expressions | None = PrivateAttr(default=None)

    @property
    def expressions(self) -> Expressions | None:
        """The compiled ``derive`` and ``where``; None when the spec has neither."""
        return self._expressions

    @property
    def paned_windows(self) -> tuple[PanedKind, ...]:
        """The windows fixed by their starts (tumbling, hopping), not the sessions."""
        return tuple(window for window in self.windows if isinstance(window, PanedKind))

    def input_fields(self) -> tuple[str, ...]:
        """Every field of an input record the pipeline reads: the key's and the values'
        input fields, the time field, and the fields its expressions read."""
        derived = {step.name for step in self.derive}
        names = [*self.key, self.time_field, *self.values, *self.fields]
        return tuple(dict.fromkeys(name for name in names if name not in derived))

    @field_validator("idle_timeout_ms")
    @classmethod
    def _positive_idle_timeout(cls, timeout: int | None) -> int | None:
        if timeout is not None and timeout <= 0:
            raise ValueError(
                "an idle timeout of 0s would close every window at once; use a positive"
                " duration such as '5m', or leave idle_timeout out"
            )
        return timeout

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a valid pipeline name; use 1 to 63 characters of a-z, 0-9,"
                " '_' or '-', starting with a letter a-z"
            )
        return name

    @field_validator("input_topic")
    @classmethod
    def _valid_topic(cls, topic: str) -> str:
        if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
            raise ValueError(
                f"{topic!r} is not a valid Kafka topic name; use 1 to 249 characters of"
                " a-z, A-Z, 0-9, '.', '_' or '-'"
            )
        return topic

    @field_validator("key", "null_values", mode="before")
    @classmethod
    def _one_or_a_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list | tuple):
            expected = _ONE_OR_A_LIST[info.field_name or ""]
            raise ValueError(f"expected {expected}, got {short_repr(value)}")
        return value

    @field_validator("key")
    @classmethod
    def _valid_key(cls, key: tuple[str, ...]) -> tuple[str, ...]:
        if not key:
            raise ValueError("the key needs at least one field name")
        if repeated := _repeated(key):
            raise ValueError(f"{repeated[0]!r} is listed twice; list each key field once")
        return key

    @field_validator("values")
    @classmethod
    def _valid_values(cls, values: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if repeated := _repeated(values):
            raise ValueError(f"{repeated[0]!r} is listed twice; list each value field once")
        reserved = {*info.data.get("key", ()), info.data.get("time_field")}
        if clash := [name for name in values if name in reserved]:
            raise ValueError(
                f"{clash[0]!r} is also the key or the time field; a value field must be"
                " a separate field"
            )
        return values

    @field_validator("null_values")
    @classmethod
    def _valid_null_values(cls, markers: tuple[str, ...]) -> tuple[str, ...]:
        if repeated := _repeated(markers):
            raise ValueError(f"{repeated[0]!r} is listed twice; list each null marker once")
        return markers

    @field_validator("metrics")
    @classmethod
    def _valid_metrics(
        cls, metrics: tuple[Metric, ...], info: ValidationInfo
    ) -> tuple[Metric, ...]:
        if not metrics:
            raise ValueError(f"no metrics; choose at least one of {', '.join(KNOWN_METRICS)}")
        if repeated := _repeated(metrics):
            raise ValueError(f"{repeated[0]!r} is listed twice; list each metric once")
        if "count" not in metrics and not info.data.get("values"):
            raise ValueError(
                f"{list(metrics)} need value fields, and values is empty;"
                " add values or the count metric"
            )
        return metrics

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, name: str | None) -> str | None:
        if name is not None:
            _zone(name)
        return name

    @field_validator("windows")
    @classmethod
    def _unique_windows(
        cls, windows: tuple[WindowKind, ...], info: ValidationInfo
    ) -> tuple[WindowKind, ...]:
        names = [window.name for window in windows]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"windows[{index}] repeats window {name}; list each window once")
        if zone_name := info.data.get("timezone"):
            zone = _zone(zone_name)
            zoned = []
            for index, window in enumerate(windows):
                try:
                    zoned.append(window.in_zone(zone))
                except ValueError as exc:
                    raise ValueError(f"windows[{index}]: {exc}") from None
            windows = tuple(zoned)
        return windows

    @model_validator(mode="after")
    def _checked_expressions(self) -> PipelineSpec:
        if not self.derive and self.where is None:
            if self.fields:
                raise ValueError("fields: only expressions read fields; add [[derive]] or where")
            return self
        types = self._input_types()
        derived: list[tuple[str, Compiled]] = []
        for index, step in enumerate(self.derive):
            if step.name in types:
                raise ValueError(
                    f"derive[{index}].name: {step.name!r} is already a field; give the derived"
                    " field a new name"
                )
            compiled = _compile(step.expr, types, f"derive[{index}].expr")
            if compiled.type in ("NULL", "TIMESTAMP"):
                raise ValueError(
                    f"derive[{index}].expr: its value is {compiled.type}; derive a number,"
                    " a text or a boolean (e.g. hour(ts))"
                )
            types[step.name] = compiled.type
            derived.append((step.name, compiled))
        where = None if self.where is None else _compile(self.where, types, "where")
        if where is not None and where.type not in ("BOOLEAN", "NULL"):
            raise ValueError(f'where: is {where.type}, not a condition; e.g. where = "amount > 0"')
        names = {name for name, _ in derived}
        for index, name in enumerate(self.key):
            if name in names and types[name] not in ("VARCHAR", "BIGINT"):
                raise ValueError(
                    f"key[{index}]: the derived field {name!r} is {types[name]}; a key part is"
                    " VARCHAR or BIGINT (CAST(ROUND(x) AS BIGINT) for a number)"
                )
        for index, name in enumerate(self.values):
            if name in names and types[name] not in ("DOUBLE", "BIGINT"):
                raise ValueError(
                    f"values[{index}]: the derived field {name!r} is {types[name]};"
                    " a value is a number"
                )
        self._expressions = Expressions(tuple(derived), where, types)
        return self

    def _input_types(self) -> dict[str, SqlType]:
        derived = {step.name for step in self.derive}
        types: dict[str, SqlType] = {name: "VARCHAR" for name in self.key if name not in derived}
        types.update({name: "DOUBLE" for name in self.values if name not in derived})
        for name, kind in self.fields.items():
            if name in types or name == self.time_field:
                raise ValueError(
                    f"fields.{name}: the key, the time and the values have their types"
                    " already (text, the event time, double); list other fields only"
                )
            types[name] = FIELD_TYPES[kind]
        types[self.time_field] = "TIMESTAMP"
        return types


def _compile(text: str, types: Mapping[str, SqlType], where: str) -> Compiled:
    # Imported here: sqlglot loads only for a spec that has expressions.
    from agents.expressions import compile_expression

    try:
        return compile_expression(text, types)
    except ExpressionError as exc:
        raise ValueError(f"{where}: {exc}") from None


_ONE_OR_A_LIST = {
    "key": "a field name or a list of field names",
    "null_values": 'a string or a list of strings such as ["NA", "NULL"]',
}


def _zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``, or a ValueError that suggests a close name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1)
        expected = (
            f"did you mean {close[0]!r}?"
            if close
            else "use an IANA name such as 'America/New_York', 'Europe/Berlin' or 'UTC'"
        )
        raise ValueError(f"{name!r} is not a time zone; {expected}") from None


_SPEC_FIELDS = [field.alias or name for name, field in PipelineSpec.model_fields.items()]
_WINDOW_FIELDS = list(_WindowInput.model_fields)


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate the pipeline spec in the TOML file at ``path``."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise SpecError(
            f"{path}: no such pipeline spec file",
            hint="check the path, or start from examples/orders.toml",
        ) from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the pipeline spec: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return parse_spec(data, str(path))


def parse_spec(data: Mapping[str, Any], source: str) -> PipelineSpec:
    """Validate a decoded spec; ``source`` (a file name) prefixes every error line."""
    try:
        return PipelineSpec.model_validate(dict(data))
    except ValidationError as exc:
        lines = [f"{source}: {_describe(error)}" for error in exc.errors()]
        raise SpecError("\n".join(lines)) from None


def _describe(error: ErrorDetails) -> str:
    loc = error["loc"]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    where = where.removeprefix(".") or "spec"
    if error["type"] == "extra_forbidden":
        allowed = {"windows": _WINDOW_FIELDS, "history": ["cut"], "derive": ["name", "expr"]}.get(
            str(loc[0]), _SPEC_FIELDS
        )
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        expected = f"did you mean {close[0]!r}?" if close else f"expected one of {allowed}"
        return f"{where}: unknown field; {expected}"
    if error["type"] == "missing":
        return f"{where}: required field is missing"
    if error["type"] == "value_error":
        # The expressions' checks (a model validator) name the field themselves.
        return f"{error['ctx']['error']}" if not loc else f"{where}: {error['ctx']['error']}"
    return f"{where}: {error['msg']}, got {short_repr(error['input'])}"
