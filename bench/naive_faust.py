"""The naive Faust baseline: a plain agent that updates a Table once per event.

    BENCH_TOPIC=... BENCH_PARTITIONS=4 BENCH_PORT=6070 BENCH_DIR=/tmp/x \\
        KAPPA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python -m bench.naive_faust

It keeps per-key count and amount sum, the way a first Faust program would, and
reports how many events it has processed, and when it began and ended, at
``/processed``. bench.throughput starts it
on the topic kappa just processed and times it.
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from app.settings import KappaSettings

settings = KappaSettings()
TOPIC = os.environ["BENCH_TOPIC"]
PARTITIONS = int(os.environ["BENCH_PARTITIONS"])

app = faust.App(
    f"naive-{TOPIC}",
    broker=[f"kafka://{server}" for server in settings.bootstrap.split(",")],
    store="rocksdb://",
    datadir=os.environ["BENCH_DIR"],
    topic_partitions=PARTITIONS,
    web_host="127.0.0.1",
    web_port=int(os.environ["BENCH_PORT"]),
    consumer_auto_offset_reset="earliest",
)
source = app.topic(TOPIC, key_serializer="raw", value_serializer="raw", partitions=PARTITIONS)
totals = app.Table("totals", partitions=PARTITIONS)
processed = 0
# Epoch seconds of the first event's arrival and of the last event's end, for the timing.
first_at: float | None = None
last_at: float | None = None


@app.agent(source)
async def count(stream: Any) -> None:
    global processed, first_at, last_at
    async for value in stream:
        if first_at is None:
            first_at = time.time()
        event = orjson.loads(value)
        key = event["customer_id"]
        count, amount = totals.get(key) or (0, 0.0)
        totals[key] = (count + 1, amount + float(event.get("amount") or 0))
        processed += 1
        last_at = time.time()


@app.page("/processed")
class Processed(View):
    async def get(self, request: Request) -> Response:
        return self.json({"processed": processed, "first_at": first_at, "last_at": last_at})


if __name__ == "__main__":
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.spinner = None  # see app.worker.KappaWorker
    worker.execute_from_commandline()
