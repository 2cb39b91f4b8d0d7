"""How far a version is behind its input, how fast it closes the gap, and when it will
have caught up: pure arithmetic on offsets, shared by ``kappa versions``, ``kappa
promote`` and a worker's ``/api/status``."""

from __future__ import annotations

from dataclasses import dataclass


def partition_lag(committed: dict[int, int], ranges: dict[int, tuple[int, int]]) -> dict[int, int]:
    """Records not yet processed per partition: from the group's committed offset (the
    next record to read) to the end; from the first retained record when the group has
    committed nothing on a partition, or committed an offset the log no longer holds."""
    return {
        p: max(0, end - max(begin, committed.get(p, begin))) for p, (begin, end) in ranges.items()
    }


@dataclass(frozen=True)
class LagSample:
    at_s: float  # a monotonic or wall clock, the same for both samples
    lag: int


@dataclass(frozen=True)
class CatchUp:
    """``rate``: records per second by which the lag shrinks (negative: it grows), None
    before two samples; ``eta_s``: seconds until no lag is left at that rate (0 when
    none is left, None when it does not shrink or is unknown)."""

    lag: int
    rate: float | None
    eta_s: float | None

    def as_json(self) -> dict[str, int | float | None]:
        return {
            "lag_total": self.lag,
            "rate_per_s": None if self.rate is None else round(self.rate, 1),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }


def catch_up(before: LagSample | None, after: LagSample) -> CatchUp:
    if after.lag == 0:
        rate = None if before is None or after.at_s <= before.at_s else _rate(before, after)
        return CatchUp(0, rate, 0.0)
    if before is None or after.at_s <= before.at_s:
        return CatchUp(after.lag, None, None)
    rate = _rate(before, after)
    return CatchUp(after.lag, rate, after.lag / rate if rate > 0 else None)


def _rate(before: LagSample, after: LagSample) -> float:
    return (before.lag - after.lag) / (after.at_s - before.at_s)


class LagSampler:
    """Measures each rate against a sample at least ``min_interval_s`` older, so that
    frequent status requests still measure over a meaningful interval: it keeps the two
    newest samples taken that far apart."""

    def __init__(self, min_interval_s: float = 2.0) -> None:
        self.min_interval_s = min_interval_s
        self._older: LagSample | None = None
        self._newer: LagSample | None = None

    def add(self, sample: LagSample) -> CatchUp:
        if self._newer is None or sample.at_s - self._newer.at_s >= self.min_interval_s:
            base = self._newer
            self._older, self._newer = self._newer, sample
        else:
            base = self._older
        return catch_up(base, sample)
