"""The filter that collapses Kafka connection errors, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest
from mode.utils.logging import ExtensionFormatter

from app.kafka_outage import (
    QUIET_S,
    SUMMARY_INTERVAL_S,
    CollapseKafkaErrors,
    KafkaOutage,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_104_800.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outage(clock: Clock) -> KafkaOutage:
    return KafkaOutage(clock=clock)


def test_an_outage_is_one_line_then_a_summary_then_one_line_back(
    clock: Clock, outage: KafkaOutage
) -> None:
    collapse = CollapseKafkaErrors(outage)
    first = _record("aiokafka.client", logging.ERROR, "Unable connect to node with id %s", 0)
    assert collapse.filter(first)
    assert first.levelno == logging.WARNING
    # Through the worker's formatter (mode's, which formats the arguments first).
    written = ExtensionFormatter(fmt="%(message)s").format(first)
    assert written.startswith("Kafka is unreachable: Unable connect to node with id 0")
    assert outage.since_iso == "2026-12-01T06:00:00Z"
    # 200 a second for 10 s: none is written, whatever the logger.
    repeats = [
        _record(name, logging.ERROR, "Unable connect to node with id 0")
        for name in ("aiokafka.client", "aiokafka.consumer.group_coordinator")
        for _ in range(1000)
    ]
    clock.now += 10
    assert not any(collapse.filter(record) for record in repeats)
    assert outage.summary() is None  # not yet due
    clock.now += SUMMARY_INTERVAL_S - 10
    assert not collapse.filter(_record("aiokafka.client", logging.ERROR, "Unable connect to"))
    line = outage.summary()
    assert line is not None
    assert "2001 connection errors in the last 30 s" in line
    assert outage.summary() is None  # the next is due 30 s later
    assert not outage.quiet()
    clock.now += QUIET_S
    assert outage.quiet()
    back = outage.end()
    assert f"after {SUMMARY_INTERVAL_S + QUIET_S:.0f} s unreachable" in back
    assert "2002 connection errors in all" in back
    assert outage.since is None
    assert outage.summary() is None


def test_a_record_seen_by_two_handlers_counts_once(outage: KafkaOutage) -> None:
    collapse = CollapseKafkaErrors(outage)
    collapse.filter(_record("aiokafka.client", logging.ERROR, "Unable connect to node"))
    repeat = _record("aiokafka.client", logging.ERROR, "Unable connect to node")
    assert not collapse.filter(repeat)
    assert not collapse.filter(repeat)
    assert outage.total == 2


def test_the_first_start_coordinator_error_is_info(outage: KafkaOutage) -> None:
    record = _record(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        "Group Coordinator Request failed: %s",
        "[Error 15] GroupCoordinatorNotAvailableError",
    )
    assert CollapseKafkaErrors(outage).filter(record)
    assert record.levelname == "INFO"
    assert outage.since is None


@pytest.mark.parametrize(
    ("name", "level", "message"),
    [
        ("app.worker", logging.ERROR, "Unable connect to node"),  # not a client library
        ("aiokafka.client", logging.INFO, "Unable connect to node"),  # below WARNING
        ("aiokafka.consumer.fetcher", logging.ERROR, "Topic x not found"),  # not a connection
    ],
)
def test_other_records_pass_unchanged(
    outage: KafkaOutage, name: str, level: int, message: str
) -> None:
    record = _record(name, level, message)
    assert CollapseKafkaErrors(outage).filter(record)
    assert (record.levelno, record.getMessage()) == (level, message)
    assert outage.since is None
