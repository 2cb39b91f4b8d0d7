"""History files read as a bounded stream, and the external sort by event time."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import gzip
import io
import os
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from unittest import mock

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import history
from app.history import HistoryError, HistoryRow, open_history, sort_by_time

REQUIRED = ("key", "ts")

CSV_ROWS = [
    {"key": "a", "ts": "2024-01-01T00:00:00Z", "note": "plain"},
    {"key": "b", "ts": "1704067200000", "note": 'comma, "quotes" and\nan embedded newline'},
    {"key": "c", "ts": "", "note": "ünïcödé ✓"},
]

JSON_ROWS = [
    {"key": "a", "ts": 1704067200000, "amount": 1.5, "tags": ["x", "y"]},
    {"key": "b", "ts": "2024-01-01T00:00:00Z", "nested": {"deep": None}},
    {"key": "c", "ts": 0, "flag": True},
]


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, gzip-compressed if the name ends in .gz."""
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def csv_lines(rows: list[dict[str, str]]) -> list[bytes]:
    """Each row (header first) as csv.writer encodes it, without the line terminator."""
    lines = []
    for values in [list(rows[0]), *(list(row.values()) for row in rows)]:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(values)
        lines.append(buffer.getvalue().encode().removesuffix(b"\r\n"))
    return lines


def read_all(path: Path) -> list[HistoryRow]:
    return list(open_history(path, required_fields=REQUIRED).rows())


def open_files_under(directory: Path) -> list[str]:
    """Files this process holds open inside ``directory``, deleted ones included."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd listing itself closes before readlink
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(directory)):
                found.append(target)
    return found


# --- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz"])
def test_csv_round_trip(tmp_path: Path, name: str) -> None:
    lines = csv_lines(CSV_ROWS)
    path = write(tmp_path / name, b"".join(line + b"\r\n" for line in lines))
    opened = open_history(path, required_fields=REQUIRED)
    assert opened.format == "csv"
    assert opened.columns == ("key", "ts", "note")
    assert opened.total_rows is None
    rows = list(opened.rows())
    assert [row.fields for row in rows] == CSV_ROWS
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert [row.raw for row in rows] == lines[1:]
    assert all(row.error is None and row.detail is None for row in rows)
    assert opened.bytes_read == opened.size_bytes == path.stat().st_size


@pytest.mark.parametrize(
    "name", ["h.jsonl", "h.ndjson", "h.json", "h.jsonl.gz", "h.ndjson.gz", "h.json.gz"]
)
def test_jsonl_round_trip(tmp_path: Path, name: str) -> None:
    lines = [orjson.dumps(row) for row in JSON_ROWS]
    path = write(tmp_path / name, b"\n".join(lines) + b"\n")
    opened = open_history(path, required_fields=REQUIRED)
    assert opened.format == "jsonl"
    assert opened.columns is None
    rows = list(opened.rows())
    assert [row.fields for row in rows] == JSON_ROWS
    assert [row.raw for row in rows] == lines
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert opened.bytes_read == opened.size_bytes


def test_parquet_round_trip_converts_times_dates_and_decimals(tmp_path: Path) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    table = pa.table(
        {
            "key": ["a", "b", None],
            "ts": pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, 123456), dt.datetime(1960, 1, 1), None],
                pa.timestamp("us"),
            ),
            "ts_tz": pa.array(
                [dt.datetime(2024, 1, 2, 4, 4, 5, 123000, tzinfo=berlin)] * 3,
                pa.timestamp("ms", tz="Europe/Berlin"),
            ),
            "ts_ns": pa.array([1_704_164_645_123_456_789] * 3, pa.timestamp("ns")),
            "day": [dt.date(2024, 1, 2)] * 3,
            "price": pa.array([Decimal("1.10"), Decimal("-2.50"), None], pa.decimal128(5, 2)),
            "n": [1, 2, 3],
            "ok": [True, False, None],
        }
    )
    path = tmp_path / "h.parquet"
    pq.write_table(table, path, row_group_size=2)
    opened = open_history(path, required_fields=REQUIRED)
    assert opened.format == "parquet"
    assert opened.total_rows == 3
    assert opened.columns == tuple(table.column_names)
    rows = list(opened.rows())
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert all(row.raw == b"" and row.error is None for row in rows)
    assert rows[0].fields == {
        "key": "a",
        "ts": "2024-01-02T03:04:05.123456",
        "ts_tz": "2024-01-02T03:04:05.123+00:00",
        "ts_ns": "2024-01-02T03:04:05.123456789",
        "day": "2024-01-02",
        "price": 1.1,
        "n": 1,
        "ok": True,
    }
    assert [row.fields["ts"] for row in rows if row.fields] == [
        "2024-01-02T03:04:05.123456",
        "1960-01-01T00:00:00.000000",
        None,
    ]
    assert [row.fields["price"] for row in rows if row.fields] == [1.1, -2.5, None]
    assert opened.bytes_read == opened.size_bytes


def test_parquet_progress_advances_per_batch(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    rows = 3 * history.PARQUET_BATCH_ROWS
    pq.write_table(pa.table({"key": ["k"] * rows, "ts": list(range(rows))}), path)
    opened = open_history(path, required_fields=REQUIRED)
    seen = []
    for row in opened.rows():
        if row.row_number % history.PARQUET_BATCH_ROWS == 1:
            seen.append(opened.bytes_read)
    assert seen == sorted(seen)
    assert seen[0] < seen[-1] < opened.size_bytes == opened.bytes_read


def test_format_override_and_gzip_detected_by_content(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes(gzip.compress(b"key,ts\nk,1\n"))
    with pytest.raises(HistoryError, match="--format"):
        open_history(path, required_fields=REQUIRED)
    rows = list(open_history(path, required_fields=REQUIRED, fmt="csv").rows())
    assert [row.fields for row in rows] == [{"key": "k", "ts": "1"}]


def test_csv_header_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"\xef\xbb\xbfkey,ts\r\nk,1\r\n")
    assert [row.fields for row in read_all(path)] == [{"key": "k", "ts": "1"}]


@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz", "h.jsonl", "h.jsonl.gz", "h.parquet"])
def test_empty_file_has_no_rows_and_no_header_to_check(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert read_all(path) == []


def test_csv_with_only_a_header_has_no_rows(tmp_path: Path) -> None:
    assert read_all(write(tmp_path / "h.csv", b"key,ts\n")) == []


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    csv_path = write(tmp_path / "h.csv", b"key,ts\n\na,1\r\n\r\nb,2\n")
    assert [(r.row_number, r.raw) for r in read_all(csv_path)] == [(2, b"a,1"), (4, b"b,2")]
    jsonl_path = write(tmp_path / "h.jsonl", b'\n{"k":1}\n  \r\n{"k":2}\n')
    assert [(r.row_number, r.fields) for r in read_all(jsonl_path)] == [
        (2, {"k": 1}),
        (4, {"k": 2}),
    ]


# --- bad inputs ----------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(HistoryError, match=f"not found: {path}"):
        open_history(path, required_fields=REQUIRED)


def test_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "dir.csv"
    directory.mkdir()
    with pytest.raises(HistoryError, match="is a directory"):
        open_history(directory, required_fields=REQUIRED)


def test_unknown_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "h.xlsx", b"key,ts\n")
    with pytest.raises(HistoryError) as caught:
        open_history(path, required_fields=REQUIRED)
    message = str(caught.value)
    assert str(path) in message
    assert "--format" in message
    assert all(suffix in message for suffix in (".csv", ".jsonl", ".ndjson", ".parquet", ".gz"))


def test_unknown_format_override_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"key,ts\n")
    with pytest.raises(HistoryError, match="csv, jsonl, parquet"):
        open_history(path, required_fields=REQUIRED, fmt="xml")  # type: ignore[arg-type]


def test_csv_header_missing_a_required_field(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv.gz", b"key,time,amount\nk,1,2\n")
    with pytest.raises(HistoryError) as caught:
        open_history(path, required_fields=REQUIRED)
    message = str(caught.value)
    assert str(path) in message
    assert "lacks required field(s) ts;" in message
    assert "columns found: key, time, amount" in message


def test_csv_starting_with_a_blank_line_has_no_header(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"\nkey,ts\nk,1\n")
    with pytest.raises(HistoryError, match=r"lacks required field.*columns found: none"):
        open_history(path, required_fields=REQUIRED)


def test_csv_header_repeating_a_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"key,ts,key\nk,1,2\n")
    with pytest.raises(HistoryError, match="repeats column"):
        open_history(path, required_fields=REQUIRED)


def test_parquet_schema_missing_required_fields(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"id": [1], "amount": [2.0]}), path)
    with pytest.raises(HistoryError) as caught:
        open_history(path, required_fields=REQUIRED)
    message = str(caught.value)
    assert str(path) in message
    assert "schema lacks required field(s) key, ts;" in message
    assert "columns found: id, amount" in message


def test_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.parquet", b"key,ts\nk,1\n")
    with pytest.raises(HistoryError, match="not a readable Parquet file"):
        open_history(path, required_fields=REQUIRED)


def test_gzipped_parquet_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.parquet.gz", b"PAR1")
    with pytest.raises(HistoryError, match="decompress the file"):
        open_history(path, required_fields=REQUIRED)


def test_truncated_gzip_fails_with_the_position(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(b'{"key":"k","ts":%d}\n' % i for i in range(50_000)))
    path = tmp_path / "h.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HistoryError, match="damaged or unreadable after"):
        read_all(path)


def test_malformed_json_line_is_yielded_and_reading_goes_on(tmp_path: Path) -> None:
    path = write(
        tmp_path / "h.jsonl", b'{"key":"a","ts":1}\n{"key": "b", ts\r\n{"key":"c","ts":3}\n'
    )
    rows = read_all(path)
    assert [row.row_number for row in rows] == [1, 2, 3]
    assert rows[1].fields is None
    assert rows[1].error == "malformed_json"
    assert rows[1].raw == b'{"key": "b", ts'
    assert rows[1].detail
    assert [row.fields for row in (rows[0], rows[2])] == [
        {"key": "a", "ts": 1},
        {"key": "c", "ts": 3},
    ]


@pytest.mark.parametrize(
    ("line", "kind"),
    [(b"[1, 2]", "an array"), (b"3", "a number"), (b'"s"', "a string"), (b"null", "null")],
)
def test_json_line_that_is_not_an_object(tmp_path: Path, line: bytes, kind: str) -> None:
    path = write(tmp_path / "h.jsonl", line + b'\n{"key":"a","ts":1}\n')
    bad, good = read_all(path)
    assert (bad.row_number, bad.fields, bad.raw, bad.error) == (1, None, line, "not_an_object")
    assert bad.detail == f"expected a JSON object, got {kind}"
    assert good.fields == {"key": "a", "ts": 1}


def test_csv_row_with_the_wrong_number_of_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"key,ts,v\na,1,x\nb,2\nc,3,y,extra\nd,4,z\n")
    rows = read_all(path)
    assert [(row.row_number, row.error, row.raw) for row in rows] == [
        (1, None, b"a,1,x"),
        (2, "bad_csv_row", b"b,2"),
        (3, "bad_csv_row", b"c,3,y,extra"),
        (4, None, b"d,4,z"),
    ]
    assert [row.detail for row in rows[1:3]] == [
        "expected 3 columns, got 2",
        "expected 3 columns, got 4",
    ]
    assert rows[1].fields is None


def test_csv_row_the_csv_module_rejects(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"key,ts\na,1\rb,2\nc,3\n")
    bad, good = read_all(path)
    assert (bad.row_number, bad.error, bad.raw) == (1, "bad_csv_row", b"a,1\rb,2")
    assert (good.row_number, good.fields) == (2, {"key": "c", "ts": "3"})


@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz"])
def test_csv_row_with_invalid_utf8(tmp_path: Path, name: str) -> None:
    raw = b'b,"caf\xe9\nau lait"'  # Latin-1, inside a field spanning two lines
    path = write(tmp_path / name, b"key,ts\na,1\n" + raw + b"\nc,3\n")
    rows = read_all(path)
    assert [(row.row_number, row.error) for row in rows] == [
        (1, None),
        (2, "bad_encoding"),
        (3, None),
    ]
    assert rows[1].raw == raw
    assert rows[1].fields is None
    assert "utf-8" in (rows[1].detail or "")
    assert rows[2].fields == {"key": "c", "ts": "3"}


def test_json_line_with_invalid_utf8(tmp_path: Path) -> None:
    raw = b'{"key":"caf\xe9","ts":2}'
    path = write(tmp_path / "h.jsonl", b'{"key":"a","ts":1}\n' + raw + b"\n")
    good, bad = read_all(path)
    assert good.fields == {"key": "a", "ts": 1}
    assert (bad.row_number, bad.fields, bad.raw, bad.error) == (2, None, raw, "bad_encoding")


def test_csv_header_with_invalid_utf8_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"key,ts,caf\xe9\nk,1,2\n")
    with pytest.raises(HistoryError, match="in UTF-8"):
        open_history(path, required_fields=REQUIRED)


# --- bounded memory ------------------------------------------------------------


def test_streaming_a_large_gzipped_csv_stays_in_bounded_memory(tmp_path: Path) -> None:
    rows = 300_000
    path = tmp_path / "big.csv.gz"
    uncompressed = 0
    padding = "x" * 80
    with gzip.open(path, "wb", compresslevel=1) as out:
        for start in range(0, rows, 10_000):
            block = "".join(
                f"k{i % 997},{1_704_067_200_000 + i},{i * 0.25},{padding}\n"
                for i in range(start, start + 10_000)
            ).encode()
            if start == 0:
                block = b"key,ts,amount,note\n" + block
            uncompressed += len(block)
            out.write(block)
    assert uncompressed > 30_000_000

    opened = open_history(path, required_fields=REQUIRED)
    count = 0
    tracemalloc.start()
    try:
        for row in opened.rows():
            count += 1
            assert row.fields is not None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows
    assert row.fields == {
        "key": f"k{(rows - 1) % 997}",
        "ts": str(1_704_067_200_000 + rows - 1),
        "amount": str((rows - 1) * 0.25),
        "note": padding,
    }
    assert peak < 5_000_000, f"peak traced memory {peak} bytes"


# --- sort_by_time --------------------------------------------------------------

PAIRS = st.lists(st.integers(min_value=-3, max_value=3), max_size=80).map(
    # unique payloads make any reordering of equal times visible
    lambda times: [(time, b"%d" % index) for index, time in enumerate(times)]
)


@settings(max_examples=200, deadline=None)
@given(
    pairs=PAIRS,
    chunk_rows=st.integers(min_value=1, max_value=6),
    fan_in=st.sampled_from([2, 3, 64]),
)
def test_sort_by_time_is_a_stable_sort(
    tmp_path_factory: pytest.TempPathFactory,
    pairs: list[tuple[int, bytes]],
    chunk_rows: int,
    fan_in: int,
) -> None:
    tmp_dir = tmp_path_factory.mktemp("sort")
    with mock.patch.object(history, "_FAN_IN", fan_in):
        result = list(sort_by_time(iter(pairs), chunk_rows=chunk_rows, tmp_dir=tmp_dir))
    assert result == sorted(pairs, key=lambda pair: pair[0])
    assert list(tmp_dir.iterdir()) == []
    assert open_files_under(tmp_dir) == []


def test_sort_by_time_spills_and_cleans_up_when_closed_early(tmp_path: Path) -> None:
    pairs = [(time % 7, b"x" * 100) for time in range(1000)]
    sorted_pairs = sort_by_time(pairs, chunk_rows=10, tmp_dir=tmp_path)
    first = next(sorted_pairs)
    assert first[0] == 0
    assert open_files_under(tmp_path), "expected spilled runs"
    sorted_pairs.close()
    assert open_files_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_sort_by_time_keeps_a_single_chunk_in_memory(tmp_path: Path) -> None:
    def pairs() -> Iterator[tuple[int, bytes]]:
        yield from [(3, b"c"), (1, b"a"), (2, b"b")]
        assert open_files_under(tmp_path) == []

    assert list(sort_by_time(pairs(), chunk_rows=3, tmp_dir=tmp_path)) == [
        (1, b"a"),
        (2, b"b"),
        (3, b"c"),
    ]


def test_sort_by_time_refuses_an_empty_chunk(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_rows"):
        list(sort_by_time([], chunk_rows=0, tmp_dir=tmp_path))


# --- CSV read in blocks --------------------------------------------------------

CSV_PIECES = st.sampled_from(
    [
        b"k1,1,plain",
        b"k2,2,",
        b'k3,3,"quoted, comma"',
        b'k4,4,"spans\r\ntwo lines"',
        b'k5,5,"open quote',
        b'k6,6,"doubled ""quotes"""',
        b'k7,7,unquoted"quote',
        b"k8,8",  # too few fields
        b"k9,9,x,y",  # too many
        b"",  # a blank line
        b"k10,10,bare\rreturn",
        b"k15,15,x\rk16,16,y",  # a bare carriage return between two whole rows
        b"k11,11,caf\xe9",  # Latin-1
        b"\xef\xbb\xbfk12,12,bom",
        b"k13,13,tab\tand\\backslash",
        b"k14,14,\xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9",
    ]
)


def read_with_the_csv_module_only(path: Path) -> list[HistoryRow]:
    """The rows as the csv module alone reads the whole file (no Arrow, one block)."""
    with (
        mock.patch.object(history, "_plain_csv_block", return_value=None),
        mock.patch.object(history, "CSV_BLOCK_BYTES", 1 << 30),
    ):
        return read_all(path)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(CSV_PIECES, max_size=25),
    ending=st.sampled_from([b"\n", b"\r\n"]),
    last_newline=st.booleans(),
    block_bytes=st.sampled_from([1, 7, 30, 64, 1 << 20]),
)
def test_csv_blocks_read_as_the_csv_module_reads_the_whole_file(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    ending: bytes,
    last_newline: bool,
    block_bytes: int,
) -> None:
    data = b"key,ts,note" + ending + ending.join(lines) + (ending if last_newline else b"")
    path = write(tmp_path_factory.mktemp("csv") / "h.csv", data)
    want = read_with_the_csv_module_only(path)
    with mock.patch.object(history, "CSV_BLOCK_BYTES", block_bytes):
        assert read_all(path) == want


def test_a_plain_csv_comes_in_blocks_decoded_by_arrow(tmp_path: Path) -> None:
    lines = [b"key,ts,note", *(b"k%d,%d,n%d" % (i, i, i) for i in range(5000))]
    path = write(tmp_path / "h.csv.gz", b"\r\n".join(lines) + b"\r\n")
    with mock.patch.object(history, "CSV_BLOCK_BYTES", 10_000):
        items = list(open_history(path, required_fields=REQUIRED).batches())
    blocks = [item for item in items if isinstance(item, history.RowBlock)]
    assert blocks == items
    assert len(blocks) > 5
    assert sum(block.table.num_rows for block in blocks) == 5000
    block = blocks[2]
    row = next(block.rows())
    assert block.raw(0) == row.raw == lines[row.row_number]
    assert row.fields == {"key": f"k{row.row_number - 1}", "ts": str(row.row_number - 1),
                          "note": f"n{row.row_number - 1}"}  # fmt: skip


def test_external_sort_fed_in_pieces_sorts_like_sort_by_time(tmp_path: Path) -> None:
    pairs = [(time % 13, b"%d" % i) for i, time in enumerate(range(0, 700, 7))]
    sort = history.ExternalSort(chunk_rows=9, tmp_dir=tmp_path)
    try:
        for start in range(0, len(pairs), 11):
            sort.add(pairs[start : start + 11])
        assert list(sort.merged()) == sorted(pairs, key=lambda pair: pair[0])
    finally:
        sort.close()
    assert open_files_under(tmp_path) == []
