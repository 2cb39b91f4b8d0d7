"""An example custom agent: how many big orders (amount >= 1000) each customer placed.

Load it with ``KAPPA_AGENTS=agents.example_big_orders``. A custom agent module has a
``register(app, pipeline)`` function, which gets the ``CustomAgentContext`` of
agents/custom.py. It subscribes a Faust agent to the pipeline's input topic and reads
``pipeline.events(stream)``: the same validated events the aggregation gets, replayed
or live. Its table is written while the source event is
current, so it is co-partitioned with the input and recovered from its changelog.

Delivery to a custom agent is Faust's at-least-once: after a crash, events since the
last commit are seen again. kappa's own aggregation is exactly-once in effect because
each key record carries the offset of the last event applied (see docs/guarantees.md);
a custom agent that needs that too can keep such a fence in its own values.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from agents.custom import CustomAgentContext

THRESHOLD = 1000.0


def register(app: faust.App, pipeline: CustomAgentContext) -> None:
    amount = pipeline.spec.values.index("amount")
    big_orders = app.Table(
        "big-orders",
        default=int,
        partitions=pipeline.partitions,
        help="big orders per customer (example custom agent)",
    )

    async def count_big_orders(stream: Any) -> None:
        async for event in pipeline.events(stream):
            value = event.values[amount]
            if value is not None and value >= THRESHOLD:
                big_orders[event.key] += 1

    app.agent(pipeline.input, name=f"{pipeline.prefix}.big-orders")(count_big_orders)

    @app.page("/api/big-orders/{key}")
    class BigOrders(View):
        async def get(self, request: Request, key: str) -> Response:
            return self.json({"key": key, "big_orders": big_orders[key]})
