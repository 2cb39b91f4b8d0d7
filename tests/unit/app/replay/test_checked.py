"""The rows a replay's check keeps for its production come back as they were added."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from app.replay.checked import CheckedRows
from app.replay.rows import BadRow, GoodRows


def test_checked_rows_come_back_in_order_with_their_progress(tmp_path: Path) -> None:
    batches = [
        (["c1", "Zürich|7", ""], [0, -1, 2**62], [b'{"a":1}', b' {"b": "\\u00e9"} ', b""]),
        ([], [], []),
        ([f"k{i}" for i in range(5000)], list(range(5000)), [b"x" * i for i in range(5000)]),
    ]
    bad = [
        BadRow("a.jsonl", 3, "malformed_json", "unexpected end of data: line 1", b'{"a": '),
        BadRow("b.csv.gz", 10**12, "bad_encoding", "'utf-8' codec — byte 0xe9", b"caf\xe9,1\r"),
        BadRow("b.csv.gz", 11, "bad_csv_row", "", b""),
    ]
    checked = CheckedRows(tmp_path)
    try:
        for done, (keys, times, values) in enumerate(batches):
            checked.add_good(
                GoodRows(
                    pa.array(keys, pa.string()),
                    pa.array(times, pa.int64()),
                    pa.array(values, pa.binary()),
                ),
                done * 1000,
            )
            if done < len(bad):
                checked.add_bad(bad[done])
        got = [
            (rows.keys.to_pylist(), rows.ts_ms.to_pylist(), rows.values.to_pylist(), done)
            for rows, done in checked.good()
            if rows.values is not None
        ]
        assert got == [
            ([key.encode() for key in keys], times, values, done * 1000)
            for done, (keys, times, values) in enumerate(batches)
        ]
        assert list(checked.bad()) == bad
    finally:
        checked.close()
    assert list(tmp_path.iterdir()) == []  # unnamed temporary files


def test_no_rows_checked(tmp_path: Path) -> None:
    checked = CheckedRows(tmp_path)
    try:
        assert list(checked.good()) == []
        assert list(checked.bad()) == []
    finally:
        checked.close()
