"""Live latency: from producing an event until kappa's query API shows it.

A kappa worker runs a fresh pipeline. A background producer sends events at a fixed
rate (keyed by the key field, with the default partitioner, as live producers do),
and a probe meanwhile produces an event for its own key every 20 ms and polls
``/api/keys/{probe}`` (every ~2 ms) for the key's count. Each probe event is one
sample: the time from just before its send to the first answer whose count includes
it. The probe adds 50 events/s to the rate; the poll loop loads the worker's event
loop a little, as a real reader would.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from app.kafka_client import client_options
from bench.workers import BenchPipeline, started, stop, wait_owned

WARM_UP_S = 1.0  # the background load runs this long before the first sample
POLL_S = 0.002
PROBE_INTERVAL_S = 0.02  # 50 samples/s, whatever the latency


def _event(key: str) -> bytes:
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")
    return orjson.dumps({"customer_id": key, "ts": ts, "amount": 1.25, "quantity": 1})


async def _background(
    producer: AIOKafkaProducer, topic: str, rate: float, keys: int, seconds: float
) -> int:
    """Send ``rate`` events/s for ``seconds``; returns how many were sent."""
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = 0
    while (elapsed := loop.time() - began) < seconds:
        for _ in range(int(rate * elapsed) - sent):
            key = f"c{rng.randrange(keys):05d}"
            await producer.send(topic, key=key.encode(), value=_event(key))
            sent += 1
        await asyncio.sleep(0.005)
    await producer.flush()
    return sent


async def _count(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        if response.status == 404:  # the key has no event processed yet
            return 0
        response.raise_for_status()
        body: Any = await response.json(loads=orjson.loads)
        return int(body["totals"]["count"])


async def _probe(producer: AIOKafkaProducer, topic: str, port: int, seconds: float) -> list[float]:
    """Send a probe event every PROBE_INTERVAL_S for ``seconds`` while one poller
    watches the probe key's count: when the count first reaches n, probe event n (one
    key, so one partition, processed in order) became visible. Returns the latencies."""
    key = f"probe-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{port}/api/keys/{key}"
    sent_at: list[float] = []
    samples: list[float] = []

    async def send() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            sent_at.append(time.perf_counter())
            await producer.send(topic, key=key.encode(), value=_event(key))
            await asyncio.sleep(PROBE_INTERVAL_S)

    sender = asyncio.create_task(send())
    async with aiohttp.ClientSession() as session:
        while not sender.done() or len(samples) < len(sent_at):
            count = await _count(session, url)
            now = time.perf_counter()
            samples.extend(now - sent for sent in sent_at[len(samples) : count])
            await asyncio.sleep(POLL_S)
    await sender
    return samples


async def _measure(
    pipeline: BenchPipeline, port: int, rate: float, keys: int, seconds: float
) -> tuple[list[float], int]:
    options = client_options(pipeline.settings)
    load = AIOKafkaProducer(**options, linger_ms=5)
    probe = AIOKafkaProducer(**options)  # linger 0: the probe's event leaves at once
    await load.start()
    await probe.start()
    try:
        background = asyncio.create_task(
            _background(load, pipeline.topic, rate, keys, WARM_UP_S + seconds)
        )
        await asyncio.sleep(WARM_UP_S)
        # Bounded: a worker that stops processing must not hang the benchmark.
        probing = _probe(probe, pipeline.topic, port, seconds)
        samples = await asyncio.wait_for(probing, seconds + 120)
        return samples, await background
    finally:
        await load.stop()
        await probe.stop()


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least ``p`` of the samples at or below."""
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def measure(pipeline: BenchPipeline, rate: float, seconds: float) -> dict[str, float]:
    """Latency percentiles (ms) at ``rate`` background events/s, spread over the
    workload's keys, over ``seconds``, on a fresh pipeline shaped like ``pipeline``."""
    fresh = replace(pipeline, run=uuid.uuid4().hex[:8])
    worker = fresh.worker(1, "live")
    proc = started(worker)
    try:
        wait_owned(worker.port, fresh.partitions, proc, worker.log)
        keys = fresh.workload.keys
        samples, sent = asyncio.run(_measure(fresh, worker.port, rate, keys, seconds))
    finally:
        stop([proc])
    ordered = sorted(samples)
    return {
        "rate_eps": rate,
        "sent": sent,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "p999_ms": percentile(ordered, 0.999) * 1000,
        "samples": len(ordered),
    }
