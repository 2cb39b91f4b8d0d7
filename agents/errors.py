"""One exception tree. Every error says what went wrong and what to do about it."""

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
