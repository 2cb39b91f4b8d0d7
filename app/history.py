"""History files read as a bounded stream, in bounded memory.

A history file is CSV (header row required), JSON Lines or Parquet. CSV and JSON Lines
may be gzip-compressed; compression is recognised by the gzip magic bytes, so a
misnamed file still reads. The format comes from the suffix (see ``SUFFIXES``) unless
the caller names it.

Rows are streamed and never collected, so memory does not grow with the file: one at a
time (``rows()``), or, for CSV, good rows in blocks of about CSV_BLOCK_BYTES decoded into
columns (``batches()``). A row that cannot be decoded is yielded with an error code and
its raw bytes instead of stopping the replay: the caller decides where it goes, and
nothing is lost.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import heapq
import io
import itertools
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from agents.errors import KappaError
from app.history_formats import FORMATS, SUFFIXES, Format

# Rows per Arrow batch: large enough to amortise the per-batch conversion, small enough
# that one batch of Python dicts stays a few megabytes.
PARQUET_BATCH_ROWS = 8192
# Decompressed bytes per CSV block: Arrow decodes a block at once, so the per-block cost
# is spread over thousands of rows, and a block's rows are a few megabytes of memory.
CSV_BLOCK_BYTES = 1 << 20
# Rows per chunk when a block is turned into Python dicts (``RowBlock.rows``).
_ROWS_CHUNK = 1024

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_BUFFER_BYTES = 1 << 16
_EOL = b"\r\n"
_JSON_TYPES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class HistoryError(KappaError):
    """A history file that cannot be replayed; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of a history file.

    ``row_number`` is 1-based. For CSV it counts data records after the header; blank
    lines are skipped but still counted, so while no quoted field spans lines, row N is
    on line N + 1. For JSON Lines it is the line number; blank lines are skipped but
    counted. For Parquet it is the row's position in the file.

    A good row has ``fields`` set and ``error`` None. A row that cannot be decoded has
    ``fields`` None, ``error`` one of ``malformed_json``, ``not_an_object``,
    ``bad_csv_row``, ``bad_encoding``, and ``detail`` a human-readable reason.

    ``raw`` is the row's bytes as they are in the (decompressed) file, without the final
    line terminator; for a CSV record that spans lines it covers all of them. Parquet
    rows have ``raw=b""``: Parquet is columnar and has no per-row bytes.
    """

    row_number: int
    fields: dict[str, Any] | None
    raw: bytes
    error: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class JsonLines:
    """Consecutive lines of a JSON Lines file as read, line terminators and blank lines
    included, not decoded: line ``i`` is row ``first_row_number + i``. A reader that
    needs the row as ``rows()`` gives it decodes it with ``decode_json_line``."""

    first_row_number: int
    lines: list[bytes]


class RowBlock:
    """Good CSV rows decoded at once: one string column per header column.

    Row ``i`` of ``table`` has row number ``row_numbers[i]`` (blank lines and bad rows
    between good ones skip numbers) and raw bytes ``raw(i)``. Arrow's blocks keep their
    bytes as read (``data``: row ``i`` is line ``i``); the csv module's keep each row's.
    ``rows()`` gives the HistoryRows a row-by-row reading gives.
    """

    __slots__ = ("_data", "_lines", "_raws", "row_numbers", "table")

    def __init__(
        self,
        table: pa.Table,
        row_numbers: Sequence[int],
        *,
        data: bytes = b"",
        raws: list[bytes] | None = None,
    ) -> None:
        self.table = table
        self.row_numbers = row_numbers
        self._data = data
        self._raws = raws
        self._lines: list[bytes] | None = None

    def raw(self, index: int) -> bytes:
        """Row ``index``'s bytes, without the line terminator."""
        if self._raws is not None:
            return self._raws[index]
        if self._lines is None:
            self._lines = self._data.split(b"\n")
        return self._lines[index].rstrip(_EOL)

    def rows(self) -> Iterator[HistoryRow]:
        lines = io.BytesIO(self._data)  # line by line: no second copy of the block
        index = 0
        for chunk in self.table.to_batches(max_chunksize=_ROWS_CHUNK):
            for fields in chunk.to_pylist():
                raw = self._raws[index] if self._raws is not None else lines.readline()
                yield HistoryRow(self.row_numbers[index], fields, raw.rstrip(_EOL), None, None)
                index += 1


def open_history(
    path: str | os.PathLike[str],
    *,
    required_fields: Sequence[str],
    fmt: Format | None = None,
) -> HistoryFile:
    """Open a history file, checking before any row is read that it can be replayed.

    Checks that the file exists and is readable, that its format is known, and that the
    CSV header or Parquet schema has every one of ``required_fields``. JSON Lines has no
    header, so its rows are checked one by one as they are read. An empty file is valid
    and has no rows. Raises HistoryError.
    """
    return HistoryFile(Path(path), required_fields, fmt)


class HistoryFile:
    """An opened history file; ``rows()`` streams it, and may be called again.

    ``size_bytes`` is the size on disk. ``bytes_read`` is how far the latest ``rows()``
    has read through the file on disk (compressed bytes for gzip; for Parquet the share
    of rows read times ``size_bytes``), so ``bytes_read / size_bytes`` is the progress.
    ``total_rows`` is known for Parquet only. ``columns`` is the CSV header or Parquet
    schema; None when there is none (JSON Lines, or an empty file).
    """

    def __init__(self, path: Path, required_fields: Sequence[str], fmt: Format | None) -> None:
        self.path = path
        self.format: Format = fmt if fmt is not None else _format_of(path)
        if self.format not in FORMATS:
            raise HistoryError(
                f"unknown history format {self.format!r}; use one of {', '.join(FORMATS)}"
            )
        try:
            status = path.stat()
        except FileNotFoundError:
            raise HistoryError(f"history file not found: {path}") from None
        except OSError as exc:
            raise HistoryError(f"cannot read {path}: {exc}") from exc
        if stat.S_ISDIR(status.st_mode):
            raise HistoryError(f"{path} is a directory; give the path of a history file")
        self.size_bytes = status.st_size
        self.total_rows: int | None = None
        self.columns: tuple[str, ...] | None = None
        self._conversions: list[tuple[int, str, Callable[[Any], Any]]] = []
        self._raw: IO[bytes] | None = None
        self._bytes_done = 0
        try:
            if self.format == "parquet":
                self._read_parquet_schema()
            elif self.format == "csv":
                self._read_csv_header()
            else:
                with self._open_lines():  # fails now, not mid-replay, if unreadable
                    pass
        except (OSError, EOFError, zlib.error) as exc:
            raise HistoryError(f"cannot read {path}: {exc}") from exc
        if self.columns is not None:
            missing = [name for name in required_fields if name not in self.columns]
            if missing:
                where = "schema" if self.format == "parquet" else "header"
                raise HistoryError(
                    f"{path}: the {where} lacks required field(s) {', '.join(missing)}; "
                    f"columns found: {', '.join(self.columns) or 'none'}. Rename the column(s) in "
                    "the file or point the pipeline's key/time fields at existing columns."
                )

    @property
    def bytes_read(self) -> int:
        raw = self._raw
        return raw.tell() if raw is not None else self._bytes_done

    def rows(self) -> Generator[HistoryRow, None, None]:
        """Stream the rows in file order; ``close()`` it to stop early and release the file.

        Raises HistoryError if the file turns out to be damaged part-way.
        """
        for item in self.batches():
            if isinstance(item, RowBlock):
                yield from item.rows()
            elif isinstance(item, JsonLines):
                for row_number, line in enumerate(item.lines, item.first_row_number):
                    if not line.isspace():  # a blank line is no row
                        yield decode_json_line(row_number, line)
            else:
                yield item

    def batches(self) -> Generator[RowBlock | JsonLines | HistoryRow, None, None]:
        """Stream the rows in file order, as ``rows()`` does, but good CSV rows come in
        blocks decoded column by column (``RowBlock``), which costs no Python per row,
        and JSON Lines in blocks of lines not decoded yet (``JsonLines``), which the
        reader decodes as it needs. Bad rows, CSV rows the block decoder leaves to the
        csv module, and Parquet rows come one by one.
        """
        self._bytes_done = 0
        if self.size_bytes == 0:
            return
        try:
            if self.format == "parquet":
                yield from self._parquet_rows()
            else:
                with self._open_lines() as lines:
                    if self.format == "csv":
                        yield from self._csv_items(lines)
                    else:
                        yield from _json_line_blocks(lines)
        except (OSError, EOFError, zlib.error, pa.ArrowException) as exc:
            raise HistoryError(
                f"{self.path} is damaged or unreadable after {self.bytes_read} bytes: {exc}"
            ) from exc

    @contextlib.contextmanager
    def _open_lines(self) -> Iterator[io.BufferedIOBase]:
        """Open the file for reading binary lines, decompressing if it is gzip."""
        with open(self.path, "rb") as raw:
            self._raw = raw
            try:
                if raw.peek(2)[:2] == _GZIP_MAGIC:
                    # GzipFile.readline is Python code per line; a BufferedReader on
                    # top splits lines in C, which halves the cost of a line.
                    with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                        yield io.BufferedReader(unzipped, _GZIP_BUFFER_BYTES)
                else:
                    yield raw
            finally:
                self._bytes_done = raw.tell()
                self._raw = None

    def _read_csv_header(self) -> None:
        with self._open_lines() as lines:
            # utf-8-sig: spreadsheet exports often start with a byte-order mark, which
            # would otherwise become part of the first column's name.
            reader = csv.reader(line.decode("utf-8-sig") for line in lines)
            try:
                header = next(reader, None)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise HistoryError(
                    f"{self.path}: cannot read the CSV header ({exc}); "
                    "the first line must be the column names, in UTF-8"
                ) from exc
        if header is None:
            return  # an empty file
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise HistoryError(
                f"{self.path}: the CSV header repeats column(s) {', '.join(duplicates)}; "
                "column names must be unique"
            )
        self.columns = tuple(header)

    def _csv_items(self, lines: io.BufferedIOBase) -> Iterator[RowBlock | HistoryRow]:
        """Blocks of about CSV_BLOCK_BYTES, each decoded by Arrow when that gives exactly
        what the csv module gives (``_plain_csv_block``), and by the csv module otherwise."""
        # Skip the header record (checked when the file was opened); reading it line by
        # line leaves the stream right after it, even if a quoted name spans lines.
        next(csv.reader(line.decode(errors="surrogateescape") for line in lines), None)
        columns = self.columns or ()
        row_number = 0
        while block := lines.read(CSV_BLOCK_BYTES):
            if not block.endswith(b"\n"):
                block += lines.readline()  # whole lines only
            table = _plain_csv_block(block, columns)
            if table is not None:
                numbers = range(row_number + 1, row_number + 1 + table.num_rows)
                yield RowBlock(table, numbers, data=block)
                row_number += table.num_rows
            else:
                row_number = yield from self._csv_records(block, lines, row_number)

    def _csv_records(
        self, block: bytes, more: Iterable[bytes], row_number: int
    ) -> Generator[RowBlock | HistoryRow, None, int]:
        """The rows of ``block`` read with the csv module; a record still open at the
        block's end (a quoted field spanning lines) goes on into ``more``. Good rows come
        in RowBlocks, each bad row on its own, in file order. Returns the number of the
        last row read."""
        block_lines = io.BytesIO(block).readlines()  # split at b"\n" only, as files are
        used = 0  # lines csv has taken
        pending: list[bytes] = []  # the raw lines of the record csv is parsing
        undecodable: str | None = None  # why a line of that record is not UTF-8

        def decoded() -> Iterator[str]:
            nonlocal undecodable, used
            for line in itertools.chain(block_lines, more):
                used += 1
                pending.append(line)
                try:
                    text = line.decode()
                except UnicodeDecodeError as exc:
                    # Reported once csv has consumed the whole record, so the raw bytes
                    # of the record are complete and the next record parses cleanly.
                    undecodable = str(exc)
                    text = line.decode(errors="surrogateescape")
                yield text

        reader = csv.reader(decoded())
        columns = self.columns or ()
        width = len(columns)
        good: list[list[str]] = []  # good rows not yet handed on, with their numbers and bytes
        numbers: list[int] = []
        raws: list[bytes] = []

        def good_rows() -> RowBlock:
            table = pa.table(
                [pa.array(texts, pa.string()) for texts in zip(*good, strict=True)],
                names=list(columns),
            )
            row_block = RowBlock(table, numbers[:], raws=raws[:])
            good.clear()
            numbers.clear()
            raws.clear()
            return row_block

        error: str | None
        while used < len(block_lines):
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # the reader resumes at the next line
                values, error = [], str(exc)
            else:
                error = None
            row_number += 1
            raw = b"".join(pending).rstrip(_EOL)
            pending.clear()
            if error is None and len(values) == width and undecodable is None:
                good.append(values)
                numbers.append(row_number)
                raws.append(raw)
                continue
            if error is not None:
                bad = HistoryRow(row_number, None, raw, "bad_csv_row", error)
            elif undecodable is not None:
                bad = HistoryRow(row_number, None, raw, "bad_encoding", undecodable)
            elif values:
                detail = f"expected {width} columns, got {len(values)}"
                bad = HistoryRow(row_number, None, raw, "bad_csv_row", detail)
            else:
                continue  # a blank line
            undecodable = None
            if good:
                yield good_rows()
            yield bad
        if good:
            yield good_rows()
        return row_number

    def _read_parquet_schema(self) -> None:
        if self.size_bytes == 0:
            return
        if self.path.name.lower().endswith(".gz"):
            raise HistoryError(
                f"{self.path}: gzip-compressed Parquet is not supported; Parquet compresses "
                "its own pages, so decompress the file (gunzip) and replay the .parquet"
            )
        try:
            with pq.ParquetFile(self.path) as parquet:
                schema = parquet.schema_arrow
                self.total_rows = parquet.metadata.num_rows
        except pa.ArrowException as exc:
            raise HistoryError(f"{self.path} is not a readable Parquet file: {exc}") from exc
        self.columns = tuple(schema.names)
        self._conversions = [
            (index, field.name, convert)
            for index, field in enumerate(schema)
            if (convert := _arrow_conversion(field.type)) is not None
        ]

    def _parquet_rows(self) -> Iterator[HistoryRow]:
        total = self.total_rows or 1
        row_number = 0
        with pq.ParquetFile(self.path) as parquet:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                for index, name, convert in self._conversions:
                    batch = batch.set_column(index, name, convert(batch.column(index)))
                for fields in batch.to_pylist():
                    row_number += 1
                    yield HistoryRow(row_number, fields, b"", None, None)
                self._bytes_done = self.size_bytes * row_number // total


def _plain_csv_block(block: bytes, columns: Sequence[str]) -> pa.Table | None:
    """``block`` decoded by Arrow into string columns, or None if the csv module must read it.

    Arrow's decoder without quoting splits each line at every comma, which is what the
    csv module does with a line that has no quote character and no carriage return
    except in a line terminator. So Arrow takes a block only when it is such lines, all
    valid UTF-8, none blank (csv counts a blank line as a row) and each with one field
    per column; and when it does not start with a byte-order mark (Arrow would drop it).
    """
    if (
        b'"' in block
        or block.count(b"\r") != block.count(b"\r\n")
        or block.startswith(codecs.BOM_UTF8)
    ):
        return None
    try:
        block.decode()
    except UnicodeDecodeError:
        return None
    text = pa.string()
    try:
        table = pa_csv.read_csv(
            io.BytesIO(block),
            read_options=pa_csv.ReadOptions(
                column_names=list(columns), use_threads=False, block_size=len(block) + 1
            ),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(columns, text),
                strings_can_be_null=False,
                check_utf8=False,  # checked above, as strictly as Python decodes
            ),
        )
    except pa.ArrowInvalid:  # a row with too few or too many fields
        return None
    lines = block.count(b"\n") + (not block.endswith(b"\n"))
    return table if table.num_rows == lines else None  # else a blank line was skipped


def _format_of(path: Path) -> Format:
    name = path.name.lower().removesuffix(".gz")
    fmt = SUFFIXES.get(os.path.splitext(name)[1])
    if fmt is None:
        raise HistoryError(
            f"cannot tell the format of {path} from its name; supported suffixes are "
            f"{', '.join(SUFFIXES)} (CSV and JSON Lines optionally followed by .gz). "
            "Rename the file or pass --format csv|jsonl|parquet"
        )
    return fmt


def _json_line_blocks(lines: io.BufferedIOBase) -> Iterator[JsonLines]:
    """The lines in blocks of about CSV_BLOCK_BYTES (split in C, not one by one)."""
    row_number = 1
    while block := lines.readlines(CSV_BLOCK_BYTES):
        yield JsonLines(row_number, block)
        row_number += len(block)


def decode_json_line(row_number: int, line: bytes) -> HistoryRow:
    """A non-blank JSON Lines line (its terminator may be on it) as ``rows()`` gives it."""
    raw = line.rstrip(_EOL)
    try:
        fields = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return _undecodable_json(row_number, raw, exc)
    if type(fields) is dict:
        return HistoryRow(row_number, fields, raw, None, None)
    detail = f"expected a JSON object, got {_JSON_TYPES[type(fields)]}"
    return HistoryRow(row_number, None, raw, "not_an_object", detail)


def _undecodable_json(row_number: int, raw: bytes, exc: orjson.JSONDecodeError) -> HistoryRow:
    try:
        raw.decode()
    except UnicodeDecodeError as bad:
        return HistoryRow(row_number, None, raw, "bad_encoding", str(bad))
    return HistoryRow(row_number, None, raw, "malformed_json", str(exc))


def _arrow_conversion(arrow_type: Any) -> Callable[[Any], Any] | None:
    """How to turn a Parquet column into values the event parser takes, if it must be.

    Timestamps become ISO 8601 strings: naive stay naive, tz-aware are given in UTC with
    a +00:00 offset; the fraction keeps the column's unit (nanoseconds survive, which
    Python's datetime cannot hold). Dates become ISO dates. Decimals become floats, as
    JSON numbers would. Converting whole columns in Arrow keeps this off the per-row path.
    """
    if pa.types.is_timestamp(arrow_type):
        if arrow_type.tz is None:
            return lambda column: pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
        utc = pa.timestamp(arrow_type.unit, tz="UTC")
        return lambda column: pc.strftime(column.cast(utc), format="%Y-%m-%dT%H:%M:%S%Ez")
    if pa.types.is_date(arrow_type):
        return lambda column: column.cast(pa.string())
    if pa.types.is_decimal(arrow_type):
        return lambda column: column.cast(pa.float64(), safe=False)
    return None


# A spilled record: event time (ms, signed) and payload length, then the payload.
_RECORD = struct.Struct("<qI")
# Runs merged at a time. Each open run costs a file descriptor and a read buffer, so
# every _FAN_IN runs of one level are merged into one run of the next level: at most
# (_FAN_IN - 1) runs per level stay open, i.e. a few hundred for any realistic input.
_FAN_IN = 64
_BY_TIME = itemgetter(0)


def sort_by_time(
    rows: Iterable[tuple[int, bytes]], *, chunk_rows: int, tmp_dir: Path
) -> Generator[tuple[int, bytes], None, None]:
    """Sort (event_time_ms, payload) pairs by time, stably, in bounded memory.

    An external merge sort (``ExternalSort``): each ``chunk_rows`` pairs are sorted in
    memory and spilled to an unnamed temporary file in ``tmp_dir`` (deleted when closed,
    and by the OS if the process dies), then the runs are merged. Pairs with equal times
    keep their input order. Memory holds one chunk plus a read buffer per open run. The
    temporary files are closed when the iterator is exhausted or closed early.
    """
    sort = ExternalSort(chunk_rows=chunk_rows, tmp_dir=tmp_dir)
    try:
        sort.add(rows)
        yield from sort.merged()
    finally:
        sort.close()


class ExternalSort:
    """``sort_by_time`` fed a piece at a time: ``add`` pairs, then read ``merged()``;
    ``close()`` releases the temporary files (also when ``merged`` is not read to the end).
    """

    def __init__(self, *, chunk_rows: int, tmp_dir: Path) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        self._chunk_rows = chunk_rows
        self._tmp_dir = tmp_dir
        self._chunk: list[tuple[int, bytes]] = []
        # Spilled runs in input order with their merge level; merging only runs of one
        # level that are adjacent keeps ties in input order and each pair rewritten
        # O(log n) times.
        self._runs: list[tuple[int, IO[bytes]]] = []

    def add(self, pairs: Iterable[tuple[int, bytes]]) -> None:
        pairs = iter(pairs)
        while True:
            self._chunk.extend(islice(pairs, self._chunk_rows - len(self._chunk)))
            if len(self._chunk) < self._chunk_rows:
                return
            head = list(islice(pairs, 1))
            if not head:
                return  # a full chunk is spilled only once another pair comes
            self._spill_chunk()
            self._chunk = head

    def merged(self) -> Iterator[tuple[int, bytes]]:
        """Every pair added, by time; the last chunk is merged from memory."""
        self._chunk.sort(key=_BY_TIME)  # list.sort is stable
        return heapq.merge(*(_read_run(run) for _, run in self._runs), self._chunk, key=_BY_TIME)

    def close(self) -> None:
        for _, run in self._runs:
            # Not wanted any more: a full disk failing a run's last flush must not hide
            # the error that ended the sort.
            with contextlib.suppress(OSError):
                run.close()
        self._runs = []
        self._chunk = []

    def _spill_chunk(self) -> None:
        self._chunk.sort(key=_BY_TIME)
        runs = self._runs
        runs.append((0, _spill(self._chunk, self._tmp_dir)))
        while len(runs) >= _FAN_IN and runs[-_FAN_IN][0] == runs[-1][0]:
            group = runs[-_FAN_IN:]
            merged = heapq.merge(*(_read_run(run) for _, run in group), key=_BY_TIME)
            runs[-_FAN_IN:] = [(group[0][0] + 1, _spill(merged, self._tmp_dir))]
            for _, run in group:
                run.close()


def _spill(pairs: Iterable[tuple[int, bytes]], tmp_dir: Path) -> IO[bytes]:
    run = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 - the caller closes it
    try:
        write, pack = run.write, _RECORD.pack
        for time, payload in pairs:
            write(pack(time, len(payload)))
            write(payload)
    except BaseException:
        run.close()
        raise
    return run


def _read_run(run: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    run.seek(0)
    read, unpack, size = run.read, _RECORD.unpack, _RECORD.size
    while header := read(size):
        time, length = unpack(header)
        yield time, read(length)
