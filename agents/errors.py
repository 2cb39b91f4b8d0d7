"""kappa's one exception tree. Every error says what went wrong and, in ``hint``, what to
do about it (as aiokafka's errors do). It sits at the lowest layer that raises, so that
every layer above can import it:

    KappaError
    ├── ConfigError         a setting or a pipeline spec is invalid (agents.spec, app.settings)
    ├── BrokerError         the local broker cannot be fetched, started or stopped (app.broker)
    ├── ReplayError         a replay cannot start or go on (app.replay.run)
    │   └── TooManyBadRows  more bad rows than --max-bad-rows allows (app.replay.run)
    ├── StateLost           state the input no longer holds is gone (agents.stages.gaps)
    ├── PartitionsChanged   the input's partition count is no longer the version's
    │                       (agents.partition_count)
    ├── Refused             acting would do harm, so nothing was done (the CLI exits 4):
    │                       a file replayed before, promoting a version that is behind,
    │                       retiring the active version (app.replay.ledger, app.versions.admin)
    ├── Rejected            a record that cannot become an event (agents.events)
    ├── HistoryError        a history file that cannot be read (app.history)
    ├── BadParameter        a query parameter the API cannot use (app.query_params)
    ├── RecoveryStalled     table recovery stopped making progress (app.recovery_watchdog)
    └── ReadStalled         a read of a range from Kafka stopped making progress
                            (agents.gap_reader)
"""

from __future__ import annotations


class KappaError(Exception):
    """Base of kappa's errors; ``hint`` tells the user what to do next."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  what to do: {self.hint}" if self.hint else self.message


class BrokerError(KappaError):
    """The local Kafka broker could not be fetched, started or stopped."""


class ConfigError(KappaError):
    """A setting or a pipeline spec is invalid."""


class ReplayError(KappaError):
    """A history replay cannot start (missing file, unknown format, bad header)."""


class StateLost(KappaError):
    """A partition's tables have lost state that the input no longer holds."""


class PartitionsChanged(KappaError):
    """The input topic's partition count differs from the one its version keeps state in."""


class Refused(KappaError):
    """A command refused to act, because acting would count events twice, lose them, or
    leave readers without a version; nothing was changed."""


class ReadStalled(KappaError):
    """A read of a partition's range from Kafka got no further for a while (Kafka out of
    reach): given up, so that its caller does not hold the worker through an outage."""
