"""Kafka out of reach, in a log an operator can read: one line when it goes, one every
``SUMMARY_INTERVAL_S`` with how many connection errors it held back, one when it is back.

aiokafka logs every failed connection attempt at ERROR, about 200 lines a second while
the broker is stopped; and a new cluster answers the first group coordinator requests
with GroupCoordinatorNotAvailable, which aiokafka retries and logs as an ERROR too. A
``logging.Filter`` on the worker's log handlers (``CollapseKafkaErrors``) sees the
client libraries' records before they are written: it collapses the first and makes the
second the INFO it is. The outage it observes is the process's, as logging is, so it
lives here once (``OUTAGE``) and ``/api/status`` and ``/metrics`` read it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import faust

from tables.times import ms_to_iso

log = logging.getLogger(__name__)

SUMMARY_INTERVAL_S = 30.0
# Kafka is back when no connection error came for this long and a broker accepts a
# connection. aiokafka retries every 50-100 ms while it is away; a restarted broker may
# still drop a connection or two in its first seconds, which is the same outage.
QUIET_S = 10.0
CHECK_INTERVAL_S = 1.0
CONNECT_TIMEOUT_S = 1.0

# The loggers whose records are collapsed: the Kafka client and Faust's driver of it.
WATCHED = ("aiokafka", "faust.transport")
# aiokafka 0.14's messages when it cannot reach a broker (client.py, fetcher.py,
# group_coordinator.py, producer/sender.py).
CONNECTION_FAILURES = (
    "Unable connect to",
    "Unable to update metadata",
    "Unable to request metadata",
    "Failed fetch messages from",
    "Failed fetch offsets from",
    "Group Coordinator Request failed",
    "FindCoordinator Request failed",
    "Heartbeat send request failed",
    "Cannot send",
    "Could not send",
)
# Expected while a new cluster creates __consumer_offsets: aiokafka retries until the
# coordinator answers.
EXPECTED_AT_START = ("GroupCoordinatorNotAvailable",)


@dataclass
class KafkaOutage:
    """Whether Kafka is out of reach, as the client libraries' errors say."""

    clock: Callable[[], float] = time.time
    since: float | None = None  # epoch seconds of the first error of the outage
    held_back: int = 0  # errors not logged since the last line
    total: int = 0  # errors in this outage
    last_error: float = 0.0
    last_line: float = 0.0
    latest: str = ""

    def on_error(self, message: str) -> str | None:
        """What to log instead of ``message``, a connection error; None to drop it."""
        now = self.clock()
        self.last_error, self.latest = now, message
        self.total += 1
        if self.since is not None:
            self.held_back += 1
            return None
        self.since = self.last_line = now
        return (
            f"Kafka is unreachable: {message} (repeats are held back; a summary follows "
            f"every {SUMMARY_INTERVAL_S:g} s until it is back)"
        )

    def summary(self) -> str | None:
        """The line due every ``SUMMARY_INTERVAL_S`` of an outage, else None."""
        now = self.clock()
        if self.since is None or now - self.last_line < SUMMARY_INTERVAL_S:
            return None
        line = (
            f"Kafka still unreachable, since {self.since_iso}: {self.held_back} connection "
            f"errors in the last {now - self.last_line:.0f} s (latest: {self.latest})"
        )
        self.last_line, self.held_back = now, 0
        return line

    def quiet(self) -> bool:
        """In an outage, and no connection error for ``QUIET_S``."""
        return self.since is not None and self.clock() - self.last_error >= QUIET_S

    def end(self) -> str:
        """Kafka is back: the line to log; the outage is over."""
        assert self.since is not None
        line = (
            f"Kafka is reachable again, after {self.clock() - self.since:.0f} s unreachable "
            f"(since {self.since_iso}; {self.total} connection errors in all)"
        )
        self.since, self.held_back, self.total = None, 0, 0
        return line

    @property
    def since_iso(self) -> str | None:
        return None if self.since is None else ms_to_iso(int(self.since * 1000))


OUTAGE = KafkaOutage()


class CollapseKafkaErrors(logging.Filter):
    """On a log handler: the client libraries' connection errors become ``outage``'s
    lines, and expected start-up conditions INFO."""

    def __init__(self, outage: KafkaOutage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        # A record reaches each handler: decide once.
        decided: bool | None = getattr(record, "kappa_outage_decided", None)
        if decided is None:
            decided = self._decide(record)
            record.kappa_outage_decided = decided
        return decided

    def _decide(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(WATCHED):
            return True
        message = record.getMessage()
        if self.outage.since is None and any(text in message for text in EXPECTED_AT_START):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return True
        if self.outage.since is None and not any(t in message for t in CONNECTION_FAILURES):
            return True
        line = self.outage.on_error(message)
        if line is None:
            return False
        record.msg, record.args = line, ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def watch(app: faust.App, bootstrap: str, outage: KafkaOutage = OUTAGE) -> None:
    """Install the filter on the root logger's handlers (once the worker has set them
    up) and a timer that logs the summaries and the end of an outage."""
    servers = [server.rsplit(":", 1) for server in bootstrap.split(",")]

    async def check() -> None:
        if (line := outage.summary()) is not None:
            log.warning(line)
        if outage.quiet() and await _any_accepts(servers):
            log.info(outage.end())

    app.timer(CHECK_INTERVAL_S, name="kappa.kafka-outage")(check)


def install_filter(root: logging.Logger, outage: KafkaOutage = OUTAGE) -> None:
    collapse = CollapseKafkaErrors(outage)
    for handler in root.handlers:
        handler.addFilter(collapse)


async def _any_accepts(servers: list[list[str]]) -> bool:
    for host, port in servers:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, writer = await asyncio.open_connection(host, int(port))
        except (OSError, TimeoutError):
            continue
        writer.close()
        return True
    return False
