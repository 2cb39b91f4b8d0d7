"""The history file formats and the file name suffixes that name them (kept apart from
app.history, which loads Arrow, so that the CLI lists them without loading it)."""

from __future__ import annotations

from typing import Literal, get_args

Format = Literal["csv", "jsonl", "parquet"]

SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

FORMATS: tuple[Format, ...] = get_args(Format)
