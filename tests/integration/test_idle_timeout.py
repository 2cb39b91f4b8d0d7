"""A partition that goes quiet gets its last windows' finals with an ``idle_timeout``,
live, on one worker and on two (where the active partition is another worker's, known
only from the meta changelog), and ``kappa verify`` lists the window the idle advance
closed apart. Expected values come from a plain Python fold."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from agents.partitions import expected_partition
from app.exit_codes import ExitCode
from tests.support.fold import folded_result
from tests.support.harness import Harness
from tests.support.kafka import produce_events, read_all
from tests.support.results import WindowKey, topic_finals, wait_processed
from tests.support.times import HOUR, iso, ms
from tests.support.worker import kappa_cli

pytestmark = pytest.mark.broker

IDLE_TIMEOUT_S = 15
PARTITIONS = 2
T0 = ms("2024-01-02T00:00:00+00:00")
MINUTE = 60_000
# Sums that only an exact, correctly rounded fold gets, and a NULL.
AMOUNTS = (0.1, 0.2, 0.3, 1e16, 1.0, -1e16, None)


def key_on(partition: int) -> str:
    return next(
        key
        for key in (f"c{i:05d}" for i in range(1000))
        if expected_partition(key, PARTITIONS) == partition
    )


def folded(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A window's result, as the results topic shows it, from its events."""
    return folded_result([(e["amount"], e["quantity"]) for e in events], ("amount", "quantity"))


def event(key: str, ts: int, amount: float | None, quantity: int = 1) -> dict[str, Any]:
    return {"customer_id": key, "ts": iso(ts), "amount": amount, "quantity": quantity}


@pytest.mark.parametrize("workers", [1, 2])
def test_a_quiet_partition_gets_its_finals_and_a_later_event_is_late(
    workers: int, kappa: Harness
) -> None:
    spec = kappa.make_spec(
        windows='{ size = "1h" }', lateness="10m", extra=f'idle_timeout = "{IDLE_TIMEOUT_S}s"\n'
    )
    started = [
        kappa.start_worker(kappa.env(spec, partitions=PARTITIONS, KAPPA_WORKER_NAME=f"w{n}"))
        for n in range(workers)
    ]

    def shared() -> bool:
        bodies = [w.get("/api/status")[1] for w in started]
        owned = [set(body["partitions_owned"]) for body in bodies]
        settled = not any(body["rebalancing"] for body in bodies)
        return settled and all(owned) and sum(map(len, owned)) == PARTITIONS

    started[0].wait_until(shared, 120, f"{workers} worker(s) to share the partitions")
    bootstrap, topic, unique = kappa.settings.bootstrap, kappa.topic, kappa.unique
    results, late_topic = f"kappa.t{unique}.v1.window-results", f"kappa.t{unique}.v1.late"
    quiet, active = key_on(0), key_on(1)
    quiet_events = [
        event(quiet, T0 + 10 * MINUTE + i * 1000, amount, i) for i, amount in enumerate(AMOUNTS)
    ]
    # The active partition is hours ahead: its own watermark is far past the quiet
    # partition's window, which only the quiet partition's watermark can close.
    ahead = [event(active, T0 + 5 * MINUTE, 1.0), event(active, T0 + 3 * HOUR, 2.0)]
    quiet_since = time.monotonic()  # before: the worker may apply them before it returns
    asyncio.run(produce_events(bootstrap, topic, quiet_events + ahead, "customer_id"))
    wait_processed(started, bootstrap, topic)
    window: WindowKey = (quiet, "1h", T0)
    assert window not in topic_finals(bootstrap, results)  # open: its partition is quiet
    assert (active, "1h", T0) in topic_finals(bootstrap, results)

    # The active partition keeps receiving (a record a second) until the quiet one closes.
    deadline = quiet_since + IDLE_TIMEOUT_S + 120
    tick = 0
    while window not in (finals := topic_finals(bootstrap, results)):
        assert time.monotonic() < deadline, "\n".join(w.log_tail() for w in started)
        tick += 1
        more = [event(active, T0 + 3 * HOUR + tick * 1000, 1.0)]
        asyncio.run(produce_events(bootstrap, topic, more, "customer_id"))
        time.sleep(1)
    waited = time.monotonic() - quiet_since
    print(
        f"{workers} worker(s): the quiet partition's final came {waited:.1f}s after its last record"
    )
    assert waited >= IDLE_TIMEOUT_S  # never before the partition was idle
    assert finals[window] == folded(quiet_events)
    owner = next(w for w in started if 0 in w.get("/api/status")[1]["partitions_owned"])
    assert owner.get("/api/status")[1]["idle_partitions"] == [0]

    # An event for the closed window after the idle close is late: in its key's totals
    # and the late topic; the window's final stands (a second, different final fails
    # ``topic_finals``).
    straggler = event(quiet, T0 + 20 * MINUTE, 5.0)
    asyncio.run(produce_events(bootstrap, topic, [straggler], "customer_id"))
    wait_processed(started, bootstrap, topic)
    kept = [orjson.loads(r.value) for r in asyncio.run(read_all(bootstrap, late_topic))]
    assert [(body["key"], body["event_ms"]) for body in kept] == [(quiet, ms(straggler["ts"]))]
    assert topic_finals(bootstrap, results)[window] == folded(quiet_events)
    assert owner.get("/api/status")[1]["idle_partitions"] == []  # it received a record
    status, body = owner.get(f"/api/keys/{quiet}")
    assert status == 200, body
    assert body["totals"]["count"] == len(quiet_events) + 1

    # kappa verify applies the idle advance where it happened (read from the meta
    # changelog): the straggler is late there too, so nothing differs, and the window
    # the advance closed before it came is listed apart.
    done = kappa_cli(kappa.env(spec, partitions=PARTITIONS), "verify", "--json", timeout=300)
    report = orjson.loads(done.stdout)
    assert done.returncode == ExitCode.OK, (done.stderr, report["idle"], report["differences"])
    assert report["input"]["late_events"] == 1
    assert report["idle"]["advances"] >= 1
    assert report["idle"]["late_events"] == 1
    closed_early = [
        (w["key"], w["window"], w["start_ms"]) for w in report["idle"]["windows_closed_early"]
    ]
    assert closed_early == [window]
    assert report["results"]["equal"] == report["results"]["compared"] > 0
