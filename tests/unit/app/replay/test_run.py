"""``kappa replay --rate``: the limiter sleeps exactly as long as the replay is ahead.

A fake clock stands in for time, so nothing here depends on the machine's speed.
"""

from __future__ import annotations

import pytest

from app.replay import run as replay


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("app.replay.run.time.monotonic", fake.monotonic)
    monkeypatch.setattr("app.replay.run.asyncio.sleep", fake.sleep)
    return fake


async def test_a_fast_replay_is_held_to_the_rate(clock: FakeClock) -> None:
    limiter = replay.RateLimiter(500.0)
    for sent in range(1, 2001):
        await limiter.wait(sent)
    # 2000 events at 500/s take 4 s of (fake) time, within one sleep's granularity.
    assert clock.now - 100.0 == pytest.approx(4.0, abs=0.01)


async def test_a_slow_replay_never_sleeps(clock: FakeClock) -> None:
    limiter = replay.RateLimiter(500.0)
    clock.now += 10.0  # already slower than the limit
    await limiter.wait(1000)
    assert clock.sleeps == []


async def test_no_rate_means_no_sleep(clock: FakeClock) -> None:
    limiter = replay.RateLimiter(None)
    await limiter.wait(10**9)
    assert clock.sleeps == []
