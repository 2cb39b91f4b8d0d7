"""The Quix Streams peer: kappa's bench pipeline written in Quix Streams.

    BENCH_TOPIC=... BENCH_PORT=6070 BENCH_DIR=/tmp/x KAPPA_BOOTSTRAP_SERVERS=... \\
        BENCH_WINDOW_MS=3600000 BENCH_STEP_MS=3600000 var/bench-venv/bin/python -m bench.quix_peer

It runs in the benchmark's own venv (bench.peer makes it), never in kappa's, so it
imports nothing from kappa. Per key (the record key is already the customer id) it
keeps the count and the sums of ``amount`` and ``quantity``, and the workload's window
on the event time in ``ts`` (tumbling when ``BENCH_STEP_MS`` equals ``BENCH_WINDOW_MS``,
else hopping; aligned to the epoch, as kappa's are; with ``BENCH_GAP_MS`` set, Quix's
session windows with that inactivity gap) with 10 min grace, closed on the partition's
event time. State is in RocksDB (Quix's default store) with changelog
topics; closed windows go to an output topic, as kappa's do. With ``BENCH_DERIVE`` set,
it first derives two values and keeps about half the events, as bench.derive's spec
does, and aggregates those values. With ``BENCH_GROUP_BY`` (a field: the input's
record keys are null), it first regroups the events by that field through Quix's own
repartition topic (``group_by``), and counts an event processed once it has come
through it. It reports how many events
it has processed, and when it processed the first and the last, at ``/processed``, like
bench.naive_faust. (Its last time is before Quix's final checkpoint writes its state,
while kappa's includes storing the last batch: the comparison leans, if anything,
Quix's way.)
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from quixstreams import Application, State
from quixstreams.dataframe.windows import Count, Sum

processed = 0
# Epoch seconds of the first and the last processed message, for the timing.
first_at: float | None = None
last_at: float | None = None


GROUP_BY = os.environ.get("BENCH_GROUP_BY")


def _count(topic: str, partition: int, offset: int) -> None:
    global processed, first_at, last_at
    last_at = time.time()
    if first_at is None:
        first_at = last_at
    # Regrouped, an event is processed twice: read from the input, then from the
    # repartition topic, where its aggregation is done.
    if GROUP_BY is None or topic != os.environ["BENCH_TOPIC"]:
        processed += 1


def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    """The ``ts`` field (ISO-8601, as app.datagen writes it, or naive as bench.wide does:
    UTC), as kappa's spec reads it; not the record's timestamp."""
    moment = datetime.fromisoformat(value["ts"])
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _number(raw: Any) -> float | None:
    return None if raw is None or raw == "" else float(raw)


def parse(value: dict[str, Any]) -> dict[str, Any]:
    """The replay keeps CSV fields as text (an empty one is a null): parse them, as
    kappa's event parser does."""
    return {**value, "amount": _number(value["amount"]), "quantity": _number(value["quantity"])}


def derive(value: dict[str, Any]) -> dict[str, Any]:
    """bench.derive's two derived values, NULL when an operand is (as SQL has them)."""
    amount, quantity = value["amount"], value["quantity"]
    both = amount is not None and quantity is not None
    return {
        **value,
        "total": amount + quantity if both else None,
        "value": amount * quantity if both else None,
    }


def first_half_minute(value: dict[str, Any]) -> bool:
    """bench.derive's filter, ``second(ts) < 30``: about half the events."""
    return datetime.fromisoformat(value["ts"]).second < 30


# The two fields aggregated: the input's, or with BENCH_DERIVE the derived ones.
VALUES = ("total", "value") if os.environ.get("BENCH_DERIVE") else ("amount", "quantity")


def totals(value: dict[str, Any], state: State) -> None:
    count, first, second = state.get("totals", (0, 0.0, 0.0))
    state.set(
        "totals",
        (count + 1, first + (value[VALUES[0]] or 0.0), second + (value[VALUES[1]] or 0.0)),
    )


class Processed(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answer = {"processed": processed, "first_at": first_at, "last_at": last_at}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    topic = os.environ["BENCH_TOPIC"]
    app = Application(
        broker_address=os.environ["KAPPA_BOOTSTRAP_SERVERS"],
        # One group per peer process (its state dir is its own): a topic read by several.
        consumer_group=f"quix-{os.path.basename(os.environ['BENCH_DIR'])}",
        auto_offset_reset="earliest",
        state_dir=os.environ["BENCH_DIR"],
        loglevel="WARNING",
        on_message_processed=_count,
    )
    sdf = app.dataframe(app.topic(topic, value_deserializer="json", timestamp_extractor=event_time))
    sdf = sdf.apply(parse)
    if GROUP_BY is not None:
        sdf = sdf.group_by(GROUP_BY)
    if os.environ.get("BENCH_DERIVE"):
        sdf = sdf.apply(derive).filter(first_half_minute)
    sdf = sdf.update(totals, stateful=True)
    size, step = int(os.environ["BENCH_WINDOW_MS"]), int(os.environ["BENCH_STEP_MS"])
    gap = int(os.environ.get("BENCH_GAP_MS") or 0)
    grace = timedelta(minutes=10)
    windows = (
        sdf.session_window(gap, grace_ms=grace)
        if gap
        else sdf.tumbling_window(size, grace_ms=grace)
        if step == size
        else sdf.hopping_window(size, step, grace_ms=grace)
    )
    aggregated = windows.agg(
        count=Count(), **{VALUES[0]: Sum(VALUES[0]), VALUES[1]: Sum(VALUES[1])}
    )
    # Close windows on the partition's newest event time, as kappa's watermark does; by
    # default Quix closes a key's windows only when that key has a later event.
    sdf = aggregated.final(closing_strategy="partition")
    sdf.to_topic(app.topic(f"{topic}-quix-results", value_serializer="json"))
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["BENCH_PORT"])), Processed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app.run()


if __name__ == "__main__":
    main()
