"""The rows a replay's check validated, kept for its production, so that each file is read,
decompressed and decoded once.

Good rows are kept as Arrow record batches (key, event time, value) in an unnamed
temporary file, compressed with LZ4; bad rows in another. Memory holds one batch; the
disk holds about the compressed size of the good rows, and the files vanish when closed
(and when the process dies). Each batch keeps how far through the files (in bytes on
disk) the check had read when it was made, so that the production's progress is told in
the same bytes as the check's.
"""

from __future__ import annotations

import contextlib
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from app.replay.rows import BadRow, GoodRows

_SCHEMA = pa.schema([("key", pa.binary()), ("ts_ms", pa.int64()), ("value", pa.binary())])
_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
_DONE = "done_bytes"
# A bad row: the length of its JSON-encoded place and reason, then of its raw bytes.
_BAD = struct.Struct("<II")


class CheckedRows:
    """``add_good`` and ``add_bad`` rows in file order, then read them back once with
    ``good()`` and ``bad()``; ``close()`` releases the temporary files."""

    def __init__(self, tmp_dir: Path) -> None:
        self._good: IO[bytes] = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 - closed by close()
        self._bad: IO[bytes] = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 - closed by close()
        self._writer: ipc.RecordBatchStreamWriter | None = ipc.new_stream(
            self._good, _SCHEMA, options=_OPTIONS
        )

    def add_good(self, rows: GoodRows, done_bytes: int) -> None:
        """Good rows (with their values), read up to ``done_bytes`` of the files."""
        assert self._writer is not None
        assert rows.values is not None
        batch = pa.record_batch(
            [rows.keys.cast(pa.binary()), rows.ts_ms, rows.values], schema=_SCHEMA
        )
        self._writer.write_batch(batch, custom_metadata={_DONE: str(done_bytes)})

    def add_bad(self, row: BadRow) -> None:
        place = orjson.dumps([row.file, row.row_number, row.reason, row.detail])
        self._bad.write(_BAD.pack(len(place), len(row.raw)) + place + row.raw)

    def good(self) -> Iterator[tuple[GoodRows, int]]:
        """The good rows in the order added, each batch with its ``done_bytes``."""
        self._finish()
        self._good.seek(0)
        reader = ipc.open_stream(self._good)
        while True:
            try:
                batch, metadata = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                return
            keys, ts_ms, values = batch.columns
            yield GoodRows(keys, ts_ms, values), int(metadata[_DONE])

    def bad(self) -> Iterator[BadRow]:
        """The bad rows in the order added."""
        self._bad.seek(0)
        read = self._bad.read
        while header := read(_BAD.size):
            place_size, raw_size = _BAD.unpack(header)
            file, row_number, reason, detail = orjson.loads(read(place_size))
            yield BadRow(file, row_number, reason, detail, read(raw_size))

    def close(self) -> None:
        """Releases the files. What they held is no longer wanted, so a write that fails
        on the way out (the full disk that ended the check) must not hide why it ended."""
        with contextlib.suppress(OSError):
            self._finish()
        for file in (self._good, self._bad):
            with contextlib.suppress(OSError):
                file.close()  # closed even when its last flush fails

    def _finish(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
