"""A live record's fields: the few a pipeline reads, decoded first; the rest on demand.

A wide record's JSON is mostly fields the pipeline never reads. ``UsedFields`` decodes
only the named ones, with a msgspec Struct that skips the others (measured in
bench.parse_speed against decoding the whole record with orjson). Its answer is meant to
equal what the whole decode (orjson) gives for those fields, and when it cannot be sure
it gives none, and the caller decodes the whole record as before. So a record is either:

- decoded here, when it is valid UTF-8, msgspec reads it as a JSON object and every named
  field present holds a string, a number, a boolean or null. orjson reads integers
  outside 64 bits as floats, and so does this; nested values go the whole way, so that a
  rejection quotes them exactly as before;
- or left to the whole decode: invalid JSON (whose error message is orjson's), anything
  but an object, nested values in a named field, nesting deeper than the interpreter's
  recursion limit (orjson's own limit is 1024 levels).

``LazyRecord`` is the whole record as a mapping (``Event.fields``), decoded by orjson
only when something reads it: a late event's output, a custom agent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec
import orjson

# orjson's integers: int64 and uint64; beyond them it reads a float.
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class UsedFields:
    """Decodes the ``names`` fields of JSON object records."""

    __slots__ = ("_decoder", "_names")

    def __init__(self, names: Sequence[str]) -> None:
        self._names = tuple(names)
        # Attribute names are positions, so any field name (a hyphen, a keyword) fits.
        attributes = [f"f{i}" for i in range(len(self._names))]
        struct = msgspec.defstruct(
            "UsedFields",
            [(attribute, Any, msgspec.UNSET) for attribute in attributes],
            rename=dict(zip(attributes, self._names, strict=True)),
            gc=False,
        )
        self._decoder = msgspec.json.Decoder(struct)

    def decode(self, raw: bytes) -> dict[str, Any] | None:
        """The named fields present in ``raw``, or None when the whole record must be
        decoded to know what it holds."""
        if not raw.isascii():
            try:
                raw.decode()
            except UnicodeDecodeError:
                return None
        try:
            record = self._decoder.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return None
        fields: dict[str, Any] = {}
        for name, value in zip(self._names, msgspec.structs.astuple(record), strict=True):
            kind = type(value)
            if kind is str or kind is float or value is None or kind is bool:
                fields[name] = value
            elif kind is int:
                fields[name] = value if _INT_MIN <= value <= _INT_MAX else float(value)
            elif value is not msgspec.UNSET:  # a nested value
                return None
        return fields


class LazyRecord(Mapping[str, Any]):
    """A live record's whole JSON object, decoded (by orjson) when first read."""

    __slots__ = ("_fields", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._fields: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = orjson.loads(self._raw)
        return self._fields

    def __getitem__(self, name: str) -> Any:
        return self._decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())
