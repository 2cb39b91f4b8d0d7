"""A history file's rows as a replay uses them: good rows as columns, bad rows one by one.

Good rows come as ``GoodRows`` (keys, event times and, when asked, the records' values)
in file order; bad rows as ``BadRow`` with the reason, the detail and their raw bytes.
Validation is the pipeline's own (``EventParser``): blocks of CSV rows go through
``parse_columns``, JSON Lines rows through what the worker runs on a record's bytes
(``parse_used``, else the whole decode and ``parse_fields``), other rows through
``parse_fields``.

A JSON Lines row's value is the line's own bytes, not the decoded object written again:
the worker reads those bytes with ``parse_bytes``, which is ``parse_used`` or else
``parse_fields`` of their whole decode, i.e. exactly what was computed here, so its key,
time and values are the replay's. A line longer than ``max_record_bytes`` is the
exception: the worker refuses such a record, so it gets the object written by orjson,
as it always did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from agents.event_columns import parse_columns
from agents.events import EventParser, Rejected
from app.history import HistoryFile, JsonLines, RowBlock, decode_json_line

# Good rows read one by one are handed on in batches of this many.
ROWS_PER_BATCH = 8192
# What orjson escapes in a string; a text holding none is written as it is.
_JSON_ESCAPED = r'[\x00-\x1f"\\]'
_EOL = b"\r\n"


@dataclass(frozen=True, slots=True)
class BadRow:
    file: str
    row_number: int
    reason: str
    detail: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class GoodRows:
    """Consecutive good rows: their events' keys and times and, if asked for, each row as
    the JSON object the input topic gets (``None`` otherwise)."""

    keys: pa.Array  # text, or bytes (UTF-8)
    ts_ms: pa.Int64Array
    values: pa.BinaryArray | None


def read_rows(
    history: HistoryFile, parser: EventParser, *, with_values: bool
) -> Iterator[GoodRows | BadRow]:
    """Every row of ``history`` in file order; values are built only ``with_values``."""
    file = str(history.path)
    keys: list[str] = []
    times: list[int] = []
    values: list[bytes] = []

    def batch() -> GoodRows:
        rows = GoodRows(
            pa.array(keys, pa.string()),
            pa.array(times, pa.int64()),
            pa.array(values, pa.binary()) if with_values else None,
        )
        keys.clear()
        times.clear()
        values.clear()
        return rows

    for item in history.batches():
        if isinstance(item, JsonLines):
            for number, line in enumerate(item.lines, item.first_row_number):
                if line.isspace():
                    continue  # a blank line is no row
                row = _json_row(parser, file, number, line)
                if isinstance(row, BadRow):
                    yield row
                    continue
                keys.append(row[0])
                times.append(row[1])
                if with_values:
                    values.append(row[2])
                if len(keys) >= ROWS_PER_BATCH:
                    yield batch()
            continue
        if isinstance(item, RowBlock):
            if keys:
                yield batch()
            parsed = parse_columns(parser, item.table)
            for index, why in parsed.rejected:
                number = item.row_numbers[index]
                yield BadRow(file, number, why.reason, why.detail, item.raw(index))
            if len(parsed.keys):
                good = item.table.filter(parsed.good)
                yield GoodRows(parsed.keys, parsed.ts_ms, json_rows(good) if with_values else None)
            continue
        if item.fields is None:
            error, detail = item.error or "bad_row", item.detail or ""
            yield BadRow(file, item.row_number, error, detail, item.raw)
            continue
        try:
            event = parser.parse_fields(item.fields)
        except Rejected as why:
            yield BadRow(file, item.row_number, why.reason, why.detail, item.raw)
            continue
        keys.append(event.key)
        times.append(event.ts_ms)
        if with_values:
            values.append(orjson.dumps(item.fields, default=str))
        if len(keys) >= ROWS_PER_BATCH:
            yield batch()
    if keys:
        yield batch()


def _json_row(
    parser: EventParser, file: str, number: int, line: bytes
) -> tuple[str, int, bytes] | BadRow:
    """A JSON Lines row's (key, event time, value for the input topic), or why it is bad."""
    raw = line.rstrip(_EOL)
    try:
        event = parser.parse_used(raw)
        value = raw
        if event is None:
            row = decode_json_line(number, line)
            if row.fields is None:
                return BadRow(file, number, row.error or "bad_row", row.detail or "", raw)
            event = parser.parse_fields(row.fields)
            if len(raw) > parser.max_record_bytes:
                value = orjson.dumps(row.fields)
    except Rejected as why:
        return BadRow(file, number, why.reason, why.detail, raw)
    return event.key, event.ts_ms, value


def json_rows(table: pa.Table) -> pa.BinaryArray:
    """Each row of a table of text columns as ``orjson.dumps({column: text, ...})`` gives
    it, built a column at a time; rows with a text that JSON escapes go through orjson."""
    names = [orjson.dumps(name).decode() for name in table.column_names]
    separators = [("{" if index == 0 else '",') + name + ':"' for index, name in enumerate(names)]
    parts: list[pa.Array | pa.Scalar] = []
    escaped = pa.repeat(False, table.num_rows)
    for separator, column in zip(separators, table.columns, strict=True):
        text = column.combine_chunks()
        parts += [pa.scalar(separator), text]
        escaped = pc.or_(escaped, _escaped(text))
    parts.append(pa.scalar('"}'))
    joined = pc.binary_join_element_wise(*parts, "").cast(pa.binary())
    if pc.any(escaped).as_py():
        exact = [orjson.dumps(row) for row in table.filter(escaped).to_pylist()]
        joined = pc.replace_with_mask(joined, escaped, pa.array(exact, pa.binary()))
    return joined


def _escaped(text: pa.StringArray) -> pa.BooleanArray:
    """Which texts JSON escapes: printable ASCII without '"' or '\\' is written as it is,
    and the rest (rare in most files) are looked at with a regular expression."""
    plain = pc.and_(
        pc.ascii_is_printable(text),
        pc.and_(
            pc.equal(pc.find_substring(text, '"'), -1),
            pc.equal(pc.find_substring(text, "\\"), -1),
        ),
    )
    if pc.all(plain).as_py():
        return pc.invert(plain)
    return pc.and_(pc.invert(plain), pc.match_substring_regex(text, _JSON_ESCAPED))
