"""The broker's longest hold of a worker's fetch (``limit_fetch_wait``): the aiokafka
consumer Faust builds for the app takes it, where Faust alone would give 1500 ms."""

from __future__ import annotations

from typing import Any, cast

import faust

from agents import consumer
from tests.support.stores import UNREACHABLE_BROKER


async def _fetch_wait_ms(app: faust.App) -> int:
    """``fetch_max_wait_ms`` of the aiokafka consumer the app's consumer thread builds
    (built in a running loop, as aiokafka requires; never started)."""
    thread = cast(consumer.BatchConsumer, app.consumer)._thread
    built = thread._create_worker_consumer(cast(Any, app.transport))
    try:
        return int(built._fetch_max_wait_ms)
    finally:
        await built.stop()


def _app(name: str) -> faust.App:
    return faust.App(name, broker=UNREACHABLE_BROKER.replace("kafka://", "kappa://"))


async def test_the_worker_consumer_waits_as_limited() -> None:
    app = _app("fetch-wait-limited")
    consumer.limit_fetch_wait(app, 77)
    assert await _fetch_wait_ms(app) == 77


async def test_without_a_limit_faust_holds_fetches_for_1500_ms() -> None:
    # What limit_fetch_wait overrides: if Faust changes it, its docstring must too.
    assert await _fetch_wait_ms(_app("fetch-wait-faust")) == 1500
