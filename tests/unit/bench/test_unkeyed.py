"""The unkeyed workload's placement and its progress, without a broker."""

from __future__ import annotations

from typing import Any

import orjson

from agents.partitions import default_partition
from bench.unkeyed import hop_applied, off_home


def test_every_record_is_placed_off_its_keys_partition() -> None:
    for partitions in (2, 4, 6):
        for key in [f"c{i}" for i in range(200)] + [17, 42]:
            home = default_partition(str(key).encode(), partitions)
            placed = off_home(orjson.dumps({"customer_id": key}), partitions)
            assert placed != home
            assert 0 <= placed < partitions


def _status(routed: dict[str, int], applied: dict[str, int], ends: dict[str, int]) -> Any:
    return {
        "kafka_answered": True,
        "processed_offsets": routed,
        "hop": {"processed_offsets": applied, "end_offsets": ends},
        "batches": {"first_started_at": 1.0, "last_stored_at": 2.0},
    }


def test_progress_is_the_records_routed_less_the_hop_records_not_yet_applied() -> None:
    # 10 + 6 input records routed; the hop holds 9 + 7, of which 5 + 7 are applied.
    body = _status({"0": 9, "1": 5}, {"0": 4, "1": 6}, {"0": 9, "1": 7})
    assert hop_applied([body]).events == 16 - 4
    done = _status({"0": 9, "1": 5}, {"0": 8, "1": 6}, {"1": 7, "0": 9})
    assert hop_applied([done]).events == 16
    nothing_applied = _status({"0": 9}, {}, {"0": 3})
    assert hop_applied([nothing_applied]).events == 10 - 3


def test_no_progress_while_kafka_does_not_answer_the_offsets() -> None:
    body = {**_status({"0": 9}, {}, {}), "kafka_answered": False}
    assert hop_applied([body]).events == 0
    assert hop_applied([None]).events == 0
