"""The runbook tests' pieces: live traffic that never stops while the steps run, and the
``kappa`` commands as a user types them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from tests.support.worker import kappa_cli


class LiveTraffic:
    """Produces events keyed by their key (Kafka's default partitioner), in time order
    at ``rate`` events/s from a thread, until stopped."""

    def __init__(
        self, bootstrap: str, topic: str, events: list[dict[str, Any]], rate: float
    ) -> None:
        self.bootstrap, self.topic, self.events, self.rate = bootstrap, topic, events, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> LiveTraffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[dict[str, Any]]:
        """Stop producing; the events produced, all acknowledged."""
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the live producer did not stop"
        return self.events[: self.sent]

    async def _run(self) -> None:
        # Sees a grown topic within a second, as a producer that follows growth would.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, metadata_max_age_ms=1000
        )
        await producer.start()
        try:
            began = time.monotonic()
            for event in self.events:
                if self._stop.is_set():
                    break
                await producer.send_and_wait(
                    self.topic, key=event["customer_id"].encode(), value=orjson.dumps(event)
                )
                self.sent += 1
                ahead = self.sent / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        finally:
            await producer.stop()


def run(env: dict[str, str], *args: str, expect: int = 0) -> str:
    done = kappa_cli(env, *args)
    assert done.returncode == expect, f"kappa {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def versions(env: dict[str, str], name: str) -> dict[int, dict[str, Any]]:
    survey = json.loads(run(env, "versions", name, "--json", "--sample", "0"))
    return {v["version"]: v for v in survey["versions"]}


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)
