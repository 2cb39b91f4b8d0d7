"""``parse_columns``: a table of text rows (CSV) validated a column at a time.

The answer is the one ``EventParser.parse_fields`` gives row by row, reason and detail
included. A spec with ``[[derive]]`` or ``where`` goes row by row (derived keys and
values that cannot be computed are the parser's to find); events its ``where`` leaves
out are good rows: the replay writes them to the input, where the worker counts them as
filtered and every other version of the pipeline reads them too. Otherwise,
whole-column operations settle the rows they can prove good; every other row goes
through ``parse_fields`` itself, so each rejection is the parser's own:

- a key part is good when it is a non-empty text;
- an event time that is an unsigned whole number is scaled as the parser scales
  numbers; one that Arrow reads as an ISO-8601 time is converted by Arrow, which reads
  a subset of what ``datetime.fromisoformat`` reads, to the same instant; any other
  time is converted by the parser's own time function, one by one;
- a value is good when Arrow reads it as a finite number (Python's ``float`` reads
  every such text too), or when the parser's own value rule accepts its text, asked
  once per distinct text.

Unit tests check these claims, and the whole against ``parse_fields``, on generated
rows. This module imports pyarrow, which a worker does not need: only the replay
imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from agents.events import AUTO_MS_THRESHOLD, MAX_TS_MS, MIN_TS_MS, Rejected

if TYPE_CHECKING:
    from agents.events import EventParser

# Whole numbers of seconds or milliseconds short enough that scaling them cannot overflow.
_MAX_INTEGER_DIGITS = 15
# The smallest piece a cast that failed is tried again on.
_CAST_PIECE_ROWS = 32
_US_PER_MS = 1000


@dataclass(frozen=True, slots=True)
class ParsedColumns:
    """Which rows of a table became events, and their keys and event times.

    ``good`` has one flag per row. ``keys`` and ``ts_ms`` hold the good rows only, in
    row order. ``rejected`` holds (row index, why) for every other row, in row order.
    """

    good: pa.BooleanArray
    keys: pa.StringArray
    ts_ms: pa.Int64Array
    rejected: list[tuple[int, Rejected]]


def parse_columns(parser: EventParser, table: pa.Table) -> ParsedColumns:
    rows = table.num_rows
    names = set(table.column_names)
    texts = {
        name: column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        for name, column in zip(table.column_names, table.columns, strict=True)
        if pa.types.is_string(column.type)
    }
    key_parts = [texts[name] for name in parser._key_fields if name in texts]
    time_text = texts.get(parser._time_field)
    if time_text is None or len(key_parts) != len(parser._key_fields) or parser.derives:
        # Not text (or absent), or derived fields and a where to compute: every row goes
        # through parse_fields, so that its key, its dead letters and whether the where
        # keeps it are the worker's own.
        return _row_by_row(parser, table, pa.repeat(True, rows))

    unsettled = pa.repeat(False, rows)
    for part in key_parts:
        unsettled = pc.or_(unsettled, pc.equal(part, ""))
    keys = key_parts[0] if len(key_parts) == 1 else pc.binary_join_element_wise(*key_parts, "|")
    ts_ms = _times(parser, time_text)
    unsettled = pc.or_(unsettled, pc.invert(pc.is_valid(ts_ms)))
    for name in parser._values:
        if name in names:
            text = texts.get(name)
            unsettled = pc.or_(
                unsettled,
                pc.invert(_values_good(parser, name, text))
                if text is not None
                else pa.repeat(True, rows),
            )
    if not pc.any(unsettled).as_py():
        return ParsedColumns(pc.invert(unsettled), keys, ts_ms, [])
    checked = _row_by_row(parser, table, unsettled)
    good = pc.or_(pc.invert(unsettled), checked.good)
    if pc.any(checked.good).as_py():  # a row the column rules could not settle is good
        passed = pc.and_(unsettled, checked.good)
        keys = pc.replace_with_mask(keys, passed, checked.keys)
        ts_ms = pc.replace_with_mask(ts_ms, passed, checked.ts_ms)
    return ParsedColumns(good, keys.filter(good), ts_ms.filter(good), checked.rejected)


def _row_by_row(parser: EventParser, table: pa.Table, which: pa.BooleanArray) -> ParsedColumns:
    """``parse_fields`` on each of the rows flagged in ``which``; ``good`` is over all rows."""
    indices = pc.indices_nonzero(which).to_pylist()
    keys: list[str] = []
    times: list[int] = []
    passed: list[int] = []
    rejected: list[tuple[int, Rejected]] = []
    for index, fields in zip(indices, table.filter(which).to_pylist(), strict=True):
        try:
            event = parser.parse_fields(fields)
        except Rejected as why:
            rejected.append((index, why))
        else:
            passed.append(index)
            keys.append(event.key)
            times.append(event.ts_ms)
    good = [False] * table.num_rows
    for index in passed:
        good[index] = True
    return ParsedColumns(
        pa.array(good), pa.array(keys, pa.string()), pa.array(times, pa.int64()), rejected
    )


def _times(parser: EventParser, text: pa.StringArray) -> pa.Int64Array:
    """Event times in epoch ms; null where the row must go through ``parse_fields``."""
    ms = pa.nulls(len(text), pa.int64())
    pending = pc.not_equal(text, "")  # an empty time is missing_time
    if parser._time_format != "iso8601":
        # Unsigned whole numbers: what _number reads as an int, scaled as _auto_ms and
        # _epoch_ms scale it.
        shaped = pc.and_(
            pending,
            pc.and_(
                pc.ascii_is_decimal(text),
                pc.less_equal(pc.binary_length(text), _MAX_INTEGER_DIGITS),
            ),
        )
        if pc.any(shaped).as_py():
            ms = pc.replace_with_mask(ms, shaped, _epoch_ms(parser, text.filter(shaped)))
            pending = pc.and_(pending, pc.invert(shaped))
    if parser._time_format in ("auto", "iso8601"):
        # Arrow reads ISO-8601 times that carry an offset (into UTC) and times that do
        # not (naive, taken as UTC), and every text it reads starts "yyyy-", which no
        # number does, so "auto" reads it as ISO-8601 too. Unlike Python, Arrow takes a
        # year 0, which an offset can bring into the year 1: those go to the parser.
        candidates = pc.and_(pending, pc.invert(pc.starts_with(text, "0000")))
        for arrow_type in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
            if not pc.any(candidates).as_py():
                break
            micros = _cast_or_null(text.filter(candidates), arrow_type).cast(pa.int64())
            ms = pc.replace_with_mask(ms, candidates, _floor_ms(micros))
            candidates = pc.and_(candidates, pc.is_null(ms))
        pending = pc.and_(pending, pc.is_null(ms))
    if pc.any(pending).as_py():
        others = [_time_or_none(parser, value) for value in text.filter(pending).to_pylist()]
        ms = pc.replace_with_mask(ms, pending, pa.array(others, pa.int64()))
    in_range = pc.and_(pc.greater_equal(ms, MIN_TS_MS), pc.less_equal(ms, MAX_TS_MS))
    return pc.if_else(in_range, ms, None)


def _time_or_none(parser: EventParser, value: str) -> int | None:
    """The parser's time of ``value`` if it accepts it (parse_fields says why not)."""
    try:
        ms = parser._time_ms(value)
    except Rejected:
        return None
    return ms if MIN_TS_MS <= ms <= MAX_TS_MS else None


def _floor_ms(micros: pa.Int64Array) -> pa.Int64Array:
    """Microseconds floored to milliseconds, before the epoch too, as datetime_to_ms does."""
    truncated = pc.divide(micros, _US_PER_MS)  # integer division rounds towards zero
    below = pc.less(micros, pc.multiply(truncated, _US_PER_MS))
    return pc.subtract(truncated, pc.cast(below, pa.int64()))


def _cast_or_null(values: pa.Array, arrow_type: pa.DataType) -> pa.Array:
    """``values`` cast to ``arrow_type``, null where they cannot be. A cast fails as a
    whole, so a failed one is tried again on each half, down to pieces of a few dozen
    values, which are left all null: a few bad values cost a few dozen casts."""
    try:
        return values.cast(arrow_type)
    except pa.ArrowInvalid:
        if len(values) <= _CAST_PIECE_ROWS:
            return pa.nulls(len(values), arrow_type)
    half = len(values) // 2
    return pa.concat_arrays(
        [_cast_or_null(values[:half], arrow_type), _cast_or_null(values[half:], arrow_type)]
    )


def _epoch_ms(parser: EventParser, text: pa.StringArray) -> pa.Int64Array:
    numbers = text.cast(pa.int64())
    if parser._time_format == "epoch_ms":
        return numbers
    scaled = pc.multiply(numbers, 1000)
    if parser._time_format == "epoch_s":
        return scaled
    seconds = pc.less(numbers, AUTO_MS_THRESHOLD)
    return pc.if_else(seconds, scaled, numbers)


def _values_good(parser: EventParser, name: str, text: pa.StringArray) -> pa.BooleanArray:
    """Which texts the value rule accepts (as a number, or as NULL)."""
    empty = pc.equal(text, "")
    numbers = _cast_or_null(pc.if_else(empty, "0", text), pa.float64())
    # Every text Arrow reads as a number, Python's float() reads as the same number.
    good = pc.fill_null(pc.and_(pc.invert(empty), pc.is_finite(numbers)), False)
    others = pc.unique(text.filter(pc.invert(good)))
    accepted = [value for value in others.to_pylist() if _value_accepted(parser, name, value)]
    if accepted:
        good = pc.or_(good, pc.is_in(text, value_set=pa.array(accepted, pa.string())))
    return good


def _value_accepted(parser: EventParser, name: str, value: str) -> bool:
    try:
        parser._value({name: value}, name)
    except Rejected:
        return False
    return True
