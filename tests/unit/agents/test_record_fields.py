"""Live records decoded only in the fields the spec reads (agents.record_fields) give the
same events and the same rejections, reason and detail, as decoding the whole record
with orjson, the way every record was parsed before. The reference below is that whole
decode, written out here."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.events import Event, EventParser, Rejected
from agents.record_fields import LazyRecord, UsedFields
from agents.spec import short_repr
from app.datagen import DatasetShape, generate
from bench.wide import generate_wide
from tests.unit.agents.test_events import parser

SPECS = {
    "auto": parser(),
    "iso8601": parser(time_format="iso8601"),
    "epoch_ms": parser(time_format="epoch_ms"),
    "two keys, markers": parser(key=["customer_id", "city"], null_values=["NA"]),
    "derived": parser(
        fields={
            "amount": "double",
            "city": "text",
            "discount": "double",
            "is_member": "boolean",
            "n": "bigint",
        },
        derive=[{"name": "net", "expr": "amount * (1 - discount)"}],
        values=["net", "quantity"],
        where="is_member OR city = 'Paris'",
    ),
}
# Enough unread text to make a record wide, before or after the fields the spec reads.
PAD = '"pad": "' + "ab\u00e9\u20ac" * 120 + '", "deep": [[[{"x": [1, {"y": null}]}]]]'


def whole(parse: EventParser, raw: bytes) -> Event:
    """The reference: the whole record decoded by orjson, then validated."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected("malformed_json", f"the record is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise Rejected("not_an_object", f"expected a JSON object, got {short_repr(fields)}")
    return parse.parse_fields(fields)


def outcome(parse: Any, raw: bytes) -> tuple[Any, ...]:
    try:
        event = parse(raw)
    except Rejected as why:
        return (why.reason, why.detail)
    return (event.key, event.ts_ms, event.values, event.kept, dict(event.fields))


EDGE_FIELDS = [
    # duplicate keys: the last one counts, as in orjson
    '"customer_id": "a", "customer_id": "b", "ts": "2024-05-01T10:00:00", "amount": 1',
    '"customer_id": "a", "ts": "bad", "ts": "2024-05-01T10:00:00Z", "amount": 1, "amount": "x"',
    '"customer_id": 1, "customer_id": null, "ts": 1714557600',
    # nested values in fields the spec reads
    '"customer_id": ["a"], "ts": "2024-05-01T10:00:00"',
    '"customer_id": "a", "ts": {"at": 1}, "amount": 1',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "amount": [18446744073709551616]',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "amount": {"v": 1.5}, "city": "x"',
    # numbers beyond 64 bits, and at the edges
    '"customer_id": 18446744073709551616, "ts": "2024-05-01T10:00:00"',
    '"customer_id": 18446744073709551615, "ts": 1714557600123, "amount": -9223372036854775808',
    '"customer_id": -9223372036854775809, "ts": 1e20, "amount": 123456789012345678901234567890',
    '"customer_id": "a", "ts": 12345678901234567890123, "amount": 1.7976931348623157e308',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "amount": 1e400',
    '"customer_id": 1.5e300, "ts": -62135596800001, "amount": 2.4703282292062328e-324',
    '"customer_id": "a", "ts": 1714557600.1234567, "amount": 0.1e1, "quantity": -0',
    # unicode, escapes, bools, nulls, markers, empty strings
    '"customer_id": "Z\\u00fcrich \\ud83d\\ude00", "ts": "2024-05-01T10:00:00", "city": "NA"',
    '"customer\\u005fid": "esc", "ts": "2024-05-01T10:00:00.5+02:00", "amount": "NA"',
    '"customer_id": "a\\u0000b", "ts": "2024-05-01 10:00:00.123456", "amount": "1_000"',
    '"customer_id": true, "ts": "2024-05-01T10:00:00"',
    '"customer_id": "a", "ts": false, "amount": 1',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "amount": true, "quantity": null',
    '"customer_id": "", "ts": "2024-05-01T10:00:00"',
    '"customer_id": "a", "ts": "", "amount": ""',
    '"customer_id": "a", "amount": 1',
    '"customer_id": "a", "ts": null, "is_member": "yes"',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "is_member": true, "discount": "0.1"',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00", "n": 9223372036854775808, "is_member": 1',
    # times at and beyond the edges of the shape and the range
    '"customer_id": "a", "ts": "2024-05-01T24:00:00", "amount": 1',
    '"customer_id": "a", "ts": "2024-05-01T23:59:60", "amount": 1',
    '"customer_id": "a", "ts": "2024-02-30T10:00:00", "amount": 1',
    '"customer_id": "a", "ts": "0001-01-01T00:30:00+01:00", "amount": 1',
    '"customer_id": "a", "ts": "9999-12-31T23:59:59.999-00:01", "amount": 1',
    '"customer_id": "a", "ts": "2024-05-01", "amount": 1',
    '"customer_id": "a", "ts": "20240501T100000", "amount": 1',
    '"customer_id": "a", "ts": "2024-05-01T10:00:00.1234567890", "amount": 1',
]
# Records that are not JSON objects, or not JSON, whole or in a field nobody reads.
EDGE_RECORDS = [
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": NaN}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": "\\ud800"}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": "\xff\xfe"}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": "\xed\xa0\x80"}',
    b'{"customer_id": "\xc3", "ts": "2024-05-01T10:00:00"}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": [1, 2,]}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00"} trailing',
    b'\xef\xbb\xbf{"customer_id": "a", "ts": "2024-05-01T10:00:00"}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": "tab\there"}',
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": 01}',
    b"[" + b'"customer_id", ' * 60 + b"1]",
    b'"' + b"x" * 600 + b'"',
    b"123456789" * 70,
    b"null",
    b"",
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": ' + b"[" * 1025 + b"]" * 1025 + b"}",
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "x": ' + b"[" * 500 + b"]" * 500 + b"}",
    b'{"customer_id": "a", "ts": "2024-05-01T10:00:00", "amount": '
    + b"[" * 100
    + b"]" * 100
    + b"}",
]


def records() -> list[bytes]:
    shape = DatasetShape(events=300, keys=20, seed=13, null_fraction=0.2)
    raws = [orjson.dumps(event) for event in generate(shape)]
    raws += [orjson.dumps(event) for event in generate_wide(shape)]
    raws += [("{" + PAD + ", " + fields + "}").encode() for fields in EDGE_FIELDS]
    raws += [("{" + fields + ", " + PAD + "}").encode() for fields in EDGE_FIELDS]
    raws += [("{" + fields + "}").encode() for fields in EDGE_FIELDS]  # short: decoded whole
    padded = [b"{" + PAD.encode() + b", " + raw[1:] for raw in EDGE_RECORDS if raw[:2] == b'{"']
    return raws + EDGE_RECORDS + padded


@pytest.mark.parametrize("name", SPECS)
def test_live_records_give_what_the_whole_decode_gives(name: str) -> None:
    parse = SPECS[name]
    raws = records()
    expected = [outcome(lambda raw: whole(parse, raw), raw) for raw in raws]
    assert [outcome(parse.parse_bytes, raw) for raw in raws] == expected
    batch = parse.parse_batch(raws)
    assert [
        (p.reason, p.detail) if isinstance(p, Rejected) else outcome(lambda _, e=p: e, b"")
        for p in batch
    ] == expected


def test_the_wide_records_are_decoded_by_their_used_fields() -> None:
    """The workload the fast path is for takes it: no silent fallback to the whole decode."""
    decoder = UsedFields(["customer_id", "ts", "amount", "quantity"])
    shape = DatasetShape(events=200, keys=20, seed=5)
    for record in generate_wide(shape):
        used = decoder.decode(orjson.dumps(record))
        assert used == {name: record[name] for name in ("customer_id", "ts", "amount", "quantity")}


def test_a_lazy_record_is_the_whole_object_once_read() -> None:
    raw = b'{"a": 1, "b": [1, {"c": "\\u00e9"}], "a": 2}'
    record = LazyRecord(raw)
    assert dict(record) == {"a": 2, "b": [1, {"c": "é"}]}
    assert record["b"][1]["c"] == "é"
    assert len(record) == 2
    assert "a" in record
    assert record == orjson.loads(raw)
