"""A history file's rows as the replay uses them: what ``read_rows`` yields equals the
row-by-row reading (``HistoryFile.rows`` and ``EventParser.parse_fields``), and
``json_rows`` writes each row as ``orjson.dumps`` does."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.events import EventParser, Rejected
from agents.spec import parse_spec
from app import history
from app.history import open_history
from app.replay.rows import BadRow, GoodRows, json_rows, read_rows

PARSER = EventParser(
    parse_spec(
        {
            "name": "t",
            "version": 1,
            "input_topic": "t",
            "key": "customer_id",
            "time_field": "ts",
            "values": ["amount"],
        },
        "test",
    )
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=30),
    names=st.sampled_from([("a", "b"), ('qu"ote', "back\\slash"), ("ü", "\t")]),
)
def test_json_rows_are_what_orjson_writes(rows: list[tuple[str, str]], names: Any) -> None:
    table = pa.table(
        {name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(names)}
    )
    want = [orjson.dumps(dict(zip(names, row, strict=True))) for row in rows]
    assert json_rows(table).to_pylist() == want


def row_by_row(path: Path) -> tuple[list[tuple[str, int, bytes]], list[tuple[Any, ...]]]:
    """What the replay did before it read columns: each row parsed on its own."""
    good, bad = [], []
    for row in open_history(path, required_fields=["customer_id", "ts"]).rows():
        if row.fields is None:
            bad.append((row.row_number, row.error, row.detail, row.raw))
            continue
        try:
            event = PARSER.parse_fields(row.fields)
        except Rejected as why:
            bad.append((row.row_number, why.reason, why.detail, row.raw))
        else:
            good.append((event.key, event.ts_ms, orjson.dumps(row.fields, default=str)))
    return good, bad


def by_read_rows(path: Path) -> tuple[list[tuple[str, int, bytes]], list[tuple[Any, ...]]]:
    good: list[tuple[str, int, bytes]] = []
    bad: list[tuple[Any, ...]] = []
    opened = open_history(path, required_fields=["customer_id", "ts"])
    for item in read_rows(opened, PARSER, with_values=True):
        if isinstance(item, BadRow):
            assert item.file == str(path)
            bad.append((item.row_number, item.reason, item.detail, item.raw))
        else:
            assert isinstance(item, GoodRows)
            assert item.values is not None
            values = item.values.to_pylist()
            good += zip(item.keys.to_pylist(), item.ts_ms.to_pylist(), values, strict=True)
    return good, bad


CSV = (
    b"customer_id,ts,amount,note\r\n"
    b"c1,2024-01-01T00:00:00Z,1.5,plain\r\n"
    b"c2,2024-01-01T00:01:00Z,twelve,bad value\r\n"
    b",2024-01-01T00:02:00Z,1,no key\r\n"
    b'c3,2024-01-01T00:03:00Z,2,"quoted, with a\r\nline break"\r\n'
    b"c4,soon,3,bad time\r\n"
    b"c5,2024-01-01T00:04:00Z,4\r\n"
    b"\r\n"
    b"c6,1704067500,,tab\there and a back\\slash\r\n"
    b"c7,2024-01-01T00:06:00Z,5,caf\xe9\r\n"
    b"c8,2024-01-01T00:07:00Z,6,end"
)


@pytest.mark.parametrize("block_bytes", [1 << 20, 1, 40, 90])
@pytest.mark.parametrize("name", ["h.csv", "h.csv.gz"])
def test_read_rows_is_the_row_by_row_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_bytes: int, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(CSV) if name.endswith(".gz") else CSV)
    want = row_by_row(path)
    monkeypatch.setattr(history, "CSV_BLOCK_BYTES", block_bytes)
    assert by_read_rows(path) == want
    good, bad = want
    assert [key for key, _, _ in good] == ["c1", "c3", "c6", "c8"]
    assert [(number, reason) for number, reason, _, _ in bad] == [
        (2, "non_numeric"),
        (3, "missing_key"),
        (5, "bad_time"),
        (6, "bad_csv_row"),
        (9, "bad_encoding"),
    ]


def test_read_rows_of_json_lines_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [orjson.dumps({"customer_id": f"c{i}", "ts": i, "amount": i / 4}) for i in range(50)]
    lines[7] = b'{"customer_id": "c7", "ts": '
    lines[20] = orjson.dumps({"customer_id": "c20", "ts": "soon"})
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr("app.replay.rows.ROWS_PER_BATCH", 8)
    assert by_read_rows(path) == row_by_row(path)
    assert [number for number, *_ in by_read_rows(path)[1]] == [8, 21]


def test_good_rows_are_left_without_values_when_not_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(CSV)
    opened = open_history(path, required_fields=["customer_id", "ts"])
    items = list(read_rows(opened, PARSER, with_values=False))
    assert all(item.values is None for item in items if isinstance(item, GoodRows))


def _wide(**fields: Any) -> bytes:
    """A JSON line wide enough that the worker decodes only the fields the spec reads."""
    filler = {"note": "gift — please wrap " * 4, "meta": {"tags": ["a", "b"], "n": 1}}
    return orjson.dumps({**filler, **fields})


JSON_LINES = [
    _wide(customer_id="c1", ts="2024-01-01T00:00:00", amount=1.1),  # extra unknown fields
    b'{"customer_id": "c2",  "ts": 1704067260, "amount": 3e2, "x": [1, {"y": null}]}  ',
    _wide(customer_id="c3", ts="2024-01-01T00:02:00", amount="twelve"),  # wrong type
    _wide(customer_id=True, ts="2024-01-01T00:03:00", amount=1),  # a boolean key
    _wide(customer_id={"id": 4}, ts="2024-01-01T00:04:00", amount=1),  # a nested key
    b'{"customer_id": "c5", "ts": ',  # cut short, in the middle of the file
    b"[1, 2]",
    b'{"customer_id": "c\xe9", "ts": 1704067500, "amount": 1}',  # not UTF-8
    b'{"customer_id": "\\ud800", "ts": 1704067500, "amount": 1}',  # a lone surrogate
    b"   ",
    _wide(customer_id="c6", ts="2024-01-01T00:06:00", amount=2, customer=1).replace(
        b'"customer":1', b'"customer_id":"c6-last"'
    ),  # the key twice: the last one counts
    _wide(customer_id=7, ts=1704067620.5, amount=0).replace(
        b'"amount":0', b'"amount":18446744073709551616'
    ),  # an integer beyond 64 bits
    _wide(customer_id="c8", ts="2024-01-01T00:08:00Z", amount=None, pad="p" * 300),  # long
    b'{"customer_id":"c9","ts":"2024-01-01T00:09:00","amount":0.1}\r',
]


@pytest.mark.parametrize("name", ["h.jsonl", "h.jsonl.gz"])
def test_json_lines_go_to_kafka_as_they_are_read_by_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # A line's own bytes are the record's value; what the worker makes of them is what
    # the replay did before, when it decoded each line whole and wrote it again.
    monkeypatch.setattr(PARSER, "_max_bytes", 400)  # the long line is oversized
    data = b"\n".join(JSON_LINES) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    want_good, want_bad = row_by_row(path)
    good, bad = by_read_rows(path)
    assert bad == want_bad
    assert [(number, reason) for number, reason, _, _ in bad] == [
        (3, "non_numeric"),
        (4, "bad_key"),
        (5, "bad_key"),
        (6, "malformed_json"),
        (7, "not_an_object"),
        (8, "bad_encoding"),
        (9, "malformed_json"),
    ]
    assert [(key, ts) for key, ts, _ in good] == [(key, ts) for key, ts, _ in want_good]
    assert [key for key, _, _ in good] == ["c1", "c2", "c6-last", "7", "c8", "c9"]
    lines = {line.rstrip(b"\r"): line for line in JSON_LINES}
    for (key, ts, value), (_, _, before) in zip(good, want_good, strict=True):
        if len(value) > 400:  # the worker refuses it, as it refused it before
            assert value == before
            with pytest.raises(Rejected, match="oversized"):
                PARSER.parse_bytes(value)
            continue
        assert value in lines
        worker = PARSER.parse_bytes(value)
        was = PARSER.parse_fields(orjson.loads(before))
        assert (worker.key, worker.ts_ms, worker.values) == (key, ts, was.values)
        assert (was.key, was.ts_ms) == (key, ts)
        assert dict(worker.fields) == orjson.loads(before)
