"""Turning one record (live JSON bytes or a history row) into a validated Event.

A record that cannot become an event raises ``Rejected`` with a stable reason code.
The rules, the same for live records and replayed history:

Key
    Each key field must be a non-empty string, an integer or a finite float; booleans,
    objects and arrays are ``bad_key``, and a missing, null or empty field is
    ``missing_key``. The canonical key is the field's text: strings as they are,
    integers in decimal, floats as ``repr`` gives them (so ``42`` and ``42.0`` are
    different keys). Several key fields are joined with ``|``; a value that itself
    contains ``|`` can make two keys look alike, so keep ``|`` out of compound keys.

Event time (epoch milliseconds, UTC)
    ``iso8601``: anything ``datetime.fromisoformat`` reads, with or without an offset;
    a time without an offset is UTC, and a date alone is its midnight.
    ``epoch_s`` / ``epoch_ms``: a number, or a string holding one (CSV); seconds may be
    fractional; a JSON number is read as a double, which keeps 15 significant digits, so
    write a time with more digits than that as a string. ``auto``: numbers and numeric
    strings are epoch times, milliseconds when ``abs(x) >= 1e11`` and seconds otherwise
    (1e11 s is the year 5138 and 1e11 ms is 1973, so real times fall clearly on one
    side); other strings are ISO-8601. In
    ``auto``, an all-digit string such as ``20240501`` is therefore seconds; use
    ``iso8601`` for such compact dates. In every format, a ``datetime`` or ``date``
    object (a Parquet timestamp or date column) is taken as is, naive meaning UTC.
    Sub-millisecond precision is floored. A missing, null or empty field is
    ``missing_time``; booleans, NaN, infinities, unreadable strings and times outside
    the years 1 to 9999 are ``bad_time``.

Values
    Missing, null or empty-string values are None (SQL NULL), and so is a string listed
    in the spec's ``null_values`` (``"NA"``): matched exactly, in history rows and live
    JSON alike; a JSON number is never a marker. Integers, finite floats, decimals and
    numeric strings become floats; anything else, booleans and non-finite numbers
    included, is ``non_numeric``.

Derived fields and where (a spec with ``[[derive]]`` or ``where``)
    The fields declared in ``fields`` are read as their type (``agents.field_types``;
    NULL as for values, ``bad_field`` when not of the type), then each derived field is
    computed in order (``agents.expressions``), then ``where``. A derived field or a
    ``where`` that cannot be computed is ``uncomputable``, naming the field and the
    expression; a derived key part that is NULL or empty is ``missing_key``. An event
    the ``where`` does not keep (FALSE or NULL) comes back with ``kept`` False.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson

from agents.errors import KappaError
from agents.expression_types import Run
from agents.field_types import READERS
from agents.iso_times import IsoTimes
from agents.record_fields import LazyRecord, UsedFields
from agents.spec import FIELD_TYPES, PipelineSpec, short_repr
from agents.sql_values import Uncomputable
from tables.times import datetime_to_ms

RejectReason = Literal[
    "oversized",
    "malformed_json",
    "not_an_object",
    "missing_key",
    "bad_key",
    "missing_time",
    "bad_time",
    "non_numeric",
    "bad_field",
    "uncomputable",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AUTO_MS_THRESHOLD = 100_000_000_000
# Numeric strings beyond this are clamped to it before scaling, so "1e999999" costs no
# more than any other number; the range check then rejects it.
_FAR = 10**20
# The strings that are numbers: not NaN, Infinity, "1_000" or non-ASCII digits, which
# Decimal() accepts. Matching also costs less than a failing Decimal() on each ISO string
# in auto mode. Every group is a fraction or an exponent: a match without one is an integer.
_NUMERIC = re.compile(r"\s*[+-]?(?:[0-9]+(\.[0-9]*)?|(\.[0-9]+))([eE][+-]?[0-9]+)?\s*")

_TIME_EXPECTED = {
    "auto": "an ISO-8601 time or a number of seconds or milliseconds since the epoch",
    "iso8601": "an ISO-8601 time such as 2024-05-01T12:00:00Z",
    "epoch_s": "a number of seconds since the epoch",
    "epoch_ms": "a number of milliseconds since the epoch",
}


@dataclass(slots=True)
class Event:
    """A validated event. ``fields`` is the whole decoded record, for custom agents and
    late events (a live record's is decoded when first read). ``kept`` is False for an
    event the pipeline's ``where`` leaves out: counted as filtered, never aggregated.

    Not frozen, though nothing changes an event once made: a frozen dataclass sets each
    field through ``object.__setattr__``, which made building one 0.57 µs, against 0.15."""

    key: str
    ts_ms: int
    values: tuple[float | None, ...]
    fields: Mapping[str, Any]
    kept: bool = True


class Rejected(KappaError):
    """A record that cannot become an event.

    ``reason`` is a stable code (see ``RejectReason``) for counting and routing;
    ``detail`` says, for people, which field and value were wrong. The record goes to
    the dead-letter topic with both; the hint says what its producer should change.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(
            f"{reason}: {detail}",
            hint="fix the producer of this record; the record itself is kept in the "
            "dead-letter topic with this reason",
        )
        self.reason = reason
        self.detail = detail


# A record shorter than this many bytes per field the spec reads is decoded whole: orjson
# reads a short record faster than msgspec reads its fields and skips the others
# (bench.parse_speed).
WIDE_BYTES_PER_FIELD = 48
MIN_TS_MS = datetime_to_ms(datetime.min)
MAX_TS_MS = datetime_to_ms(datetime.max)


class EventParser:
    """Validates records against one pipeline spec. Build one per spec and reuse it."""

    __slots__ = (
        "_derived",
        "_epoch_scale",
        "_input_key",
        "_input_values",
        "_iso_times",
        "_key_fields",
        "_max_bytes",
        "_null_markers",
        "_single_key",
        "_time_field",
        "_time_format",
        "_time_ms",
        "_typed_fields",
        "_used_fields",
        "_values",
        "_where",
        "_whole_below",
    )

    def __init__(self, spec: PipelineSpec) -> None:
        self._max_bytes = spec.max_record_bytes
        self._key_fields = spec.key
        self._single_key = spec.key[0] if len(spec.key) == 1 else None
        self._time_field = spec.time_field
        self._time_format = spec.time_format
        self._values = spec.values
        # "" is always NULL; checked only for strings, so numbers pay one isinstance.
        self._null_markers = frozenset(("", *spec.null_values))
        self._epoch_scale = 1000 if spec.time_format == "epoch_s" else 1
        self._iso_times = IsoTimes()
        self._used_fields = UsedFields(spec.input_fields())
        self._whole_below = WIDE_BYTES_PER_FIELD * len(spec.input_fields())
        self._time_ms: Callable[[Any], int] = {
            "auto": self._auto_ms,
            "iso8601": self._iso_ms,
            "epoch_s": self._epoch_ms,
            "epoch_ms": self._epoch_ms,
        }[spec.time_format]
        expressions = spec.expressions
        self._derived: tuple[tuple[str, str, Run], ...] | None = None
        self._where: tuple[str, Run] | None = None
        if expressions is not None:
            texts = {step.name: step.expr for step in spec.derive}
            self._derived = tuple(
                (name, texts[name], compiled.run) for name, compiled in expressions.derived
            )
            if expressions.where is not None and spec.where is not None:
                self._where = (spec.where, expressions.where.run)
        derived = {step.name for step in spec.derive}
        self._input_key = tuple(name for name in spec.key if name not in derived)
        self._input_values = tuple(name for name in spec.values if name not in derived)
        self._typed_fields = tuple(
            (name, READERS[FIELD_TYPES[kind]]) for name, kind in spec.fields.items()
        )

    def parse_bytes(self, raw: bytes | None) -> Event:
        """Validate a live record: JSON bytes holding one object. Only the fields the
        spec reads are decoded (``agents.record_fields``), unless the record needs the
        whole decode to say what is wrong with it."""
        if raw is not None:
            event = self.parse_used(raw)
            if event is not None:
                return event
        return self.parse_fields(self._decode(raw))

    def parse_used(self, raw: bytes) -> Event | None:
        """``parse_bytes``'s answer from the fields the spec reads alone, or None when
        ``parse_bytes`` decodes the record whole: a short record (orjson reads it whole
        faster), an oversized one, or one whose fields need the whole decode. Raises
        Rejected as ``parse_bytes`` does."""
        if self._whole_below <= len(raw) <= self._max_bytes:
            used = self._used_fields.decode(raw)
            if used is not None:
                return self._event(used, LazyRecord(raw))
        return None

    @property
    def max_record_bytes(self) -> int:
        """The largest record ``parse_bytes`` accepts (``max_record_bytes``)."""
        return self._max_bytes

    def _decode(self, raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            raise Rejected(
                "not_an_object", "the record has no value (null); expected a JSON object"
            )
        if len(raw) > self._max_bytes:
            raise Rejected(
                "oversized",
                f"the record is {len(raw)} bytes, more than max_record_bytes = {self._max_bytes}",
            )
        try:
            fields = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected("malformed_json", f"the record is not valid JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise Rejected("not_an_object", f"expected a JSON object, got {short_repr(fields)}")
        return fields

    @property
    def derives(self) -> bool:
        """Whether the spec has ``[[derive]]`` or ``where`` expressions."""
        return self._derived is not None

    def parse_batch(self, raws: Sequence[bytes | None]) -> list[Event | Rejected]:
        """``parse_bytes`` of each record of a batch: an event (``kept`` or filtered out)
        or why the record cannot be one. The step from a batch's decoded fields to its
        derived fields and events is this one hook."""
        parsed: list[Event | Rejected] = []
        for raw in raws:
            try:
                parsed.append(self.parse_bytes(raw))
            except Rejected as why:
                parsed.append(why)
        return parsed

    def parse_fields(self, fields: Mapping[str, Any]) -> Event:
        """Validate a decoded record: a JSON object, or a history row (CSV rows hold strings)."""
        return self._event(fields, fields)

    def _event(self, fields: Mapping[str, Any], record: Mapping[str, Any]) -> Event:
        """The event of ``fields`` (at least those the spec reads), carrying ``record``."""
        if self._derived is not None:
            return self._derived_event(fields, record)
        return Event(
            self.canonical_key(fields),
            self._event_time(fields),
            tuple([self._value(fields, name) for name in self._values]),
            record,
        )

    def _derived_event(self, fields: Mapping[str, Any], record: Mapping[str, Any]) -> Event:
        """The event of a spec with expressions: its input fields typed, then its derived
        fields in order, then ``where``; the key and values may be derived fields."""
        assert self._derived is not None
        row = self._input_row(fields)
        for name, text, run in self._derived:
            try:
                row[name] = run(row)
            except Uncomputable as exc:
                raise Rejected("uncomputable", f"derived field {name!r} = {text}: {exc}") from None
        if self._where is not None:
            text, run = self._where
            try:
                kept = run(row) is True
            except Uncomputable as exc:
                raise Rejected("uncomputable", f"where {text}: {exc}") from None
            if not kept:  # its key is not needed, and may be NULL
                return Event("", row[self._time_field], (), record, kept=False)
        parts = []
        for name in self._key_fields:
            part = row[name]
            if part is None or part == "":
                raise Rejected("missing_key", f"derived key field {name!r} is NULL or empty")
            parts.append(str(part))
        values = tuple([None if (v := row[name]) is None else float(v) for name in self._values])
        return Event("|".join(parts), row[self._time_field], values, record)

    def input_row(self, raw: bytes | None) -> dict[str, Any]:
        """A live record's fields that a spec with expressions reads, as their types (the
        time field in epoch ms), before any derived field: what ``kappa verify`` hands
        DuckDB."""
        return self._input_row(self._decode(raw))

    def _input_row(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {name: _key_part(fields, name) for name in self._input_key}
        row[self._time_field] = self._event_time(fields)
        for name in self._input_values:
            row[name] = self._value(fields, name)
        for name, read in self._typed_fields:
            value = fields.get(name)
            if value is None or (isinstance(value, str) and value in self._null_markers):
                row[name] = None
                continue
            try:
                row[name] = read(value)
            except ValueError as exc:
                raise Rejected("bad_field", f"field {name!r} {exc}") from None
        return row

    def canonical_key(self, fields: Mapping[str, Any]) -> str:
        """The key's text: the single key field's value, or the values joined by ``|``."""
        if self._single_key is not None:
            return _key_part(fields, self._single_key)
        return "|".join([_key_part(fields, name) for name in self._key_fields])

    def _event_time(self, fields: Mapping[str, Any]) -> int:
        name = self._time_field
        value = fields.get(name)
        if value is None or value == "":
            raise Rejected("missing_time", f"time field {name!r} is {_absence(fields, name)}")
        ms = self._time_ms(value)
        if not MIN_TS_MS <= ms <= MAX_TS_MS:
            raise Rejected(
                "bad_time",
                f"time field {name!r} is outside the years 1 to 9999, got {short_repr(value)}",
            )
        return ms

    def _auto_ms(self, value: Any) -> int:
        # A cached ISO time is never a number: its text has "-" and ":" between digits.
        if isinstance(value, str) and (ms := self._iso_times.cached(value)) is not None:
            return ms
        number = _number(value)
        if number is not None:
            seconds = -AUTO_MS_THRESHOLD < number < AUTO_MS_THRESHOLD
            return _floor_scaled(number, 1000 if seconds else 1)
        return self._iso_ms(value)

    def _iso_ms(self, value: Any) -> int:
        if isinstance(value, str):
            ms = self._iso_times.cached(value)
            if ms is not None:
                return ms
            try:
                return self._iso_times.parse(value)
            except ValueError:
                raise self._bad_time(value) from None
        return self._datetime_ms(value)

    def _epoch_ms(self, value: Any) -> int:
        number = _number(value)
        if number is None:
            return self._datetime_ms(value)
        return _floor_scaled(number, self._epoch_scale)

    def _datetime_ms(self, value: Any) -> int:
        # datetime first: it is a subclass of date.
        if isinstance(value, datetime):
            return datetime_to_ms(value)
        if isinstance(value, date):
            return datetime_to_ms(datetime(value.year, value.month, value.day, tzinfo=UTC))
        raise self._bad_time(value)

    def _bad_time(self, value: Any) -> Rejected:
        return Rejected(
            "bad_time",
            f"time field {self._time_field!r} must be {_TIME_EXPECTED[self._time_format]}"
            f" (time_format = {self._time_format}), got {short_repr(value)}",
        )

    def _value(self, fields: Mapping[str, Any], name: str) -> float | None:
        value: Any = fields.get(name)
        # The common shapes first (a float, an int, a numeric text), 0.2 µs a value less
        # than the checks below, which every other value takes: x - x is 0.0 for a
        # finite x only (nan for inf and nan).
        kind = type(value)
        if kind is float:
            if value - value == 0.0:
                return value  # type: ignore[no-any-return]
        elif kind is int:
            try:
                return float(value)
            except OverflowError:  # beyond float's range
                pass
        elif kind is str and value not in self._null_markers:
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number - number == 0.0:
                    return number
        if value is None or (isinstance(value, str) and value in self._null_markers):
            return None
        if isinstance(value, float | str | int | Decimal) and not isinstance(value, bool):
            try:
                number = float(value)
            except (ValueError, OverflowError):  # not a number; an int or Decimal beyond float
                pass
            else:
                if math.isfinite(number):
                    return number
        raise Rejected(
            "non_numeric", f"value field {name!r} must be a finite number, got {short_repr(value)}"
        )


def _key_part(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if isinstance(value, str) and value:
        return value
    if value is None or isinstance(value, str):
        raise Rejected("missing_key", f"key field {name!r} is {_absence(fields, name)}")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise Rejected(
        "bad_key",
        f"key field {name!r} must be a string, an integer or a finite number,"
        f" got {short_repr(value)}",
    )


def _absence(fields: Mapping[str, Any], name: str) -> str:
    if name not in fields:
        return "missing"
    return "null" if fields[name] is None else "empty"


def _number(value: Any) -> int | Decimal | None:
    """The exact value of a number or a numeric string; None if ``value`` is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        # repr is the shortest text that reads back as this float, i.e. the number as it
        # was written: 1714564800.123 s is ...123 ms, where float arithmetic gives ...122.99.
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and (match := _NUMERIC.fullmatch(value)):
        if match.lastindex is None and len(value) < 20:
            # int() refuses the separators \x1c-\x1f that \s matches; Decimal() reads them.
            with contextlib.suppress(ValueError):
                return int(value)
        number = Decimal(value)
        return number if abs(number) < _FAR else (_FAR if number > 0 else -_FAR)
    return None


def _floor_scaled(number: int | Decimal, scale: int) -> int:
    if isinstance(number, int):
        return number * scale
    numerator, denominator = number.as_integer_ratio()
    return numerator * scale // denominator  # exact, whatever the decimal context
