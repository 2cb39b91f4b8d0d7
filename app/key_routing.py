"""Every worker answers for every key: a request for a key another worker owns is passed
to that worker, as Faust's assignor last distributed the partitions."""

from __future__ import annotations

import aiohttp
import faust
from faust.web import Request, Response, View
from yarl import URL

ROUTED_HEADER = "X-Kappa-Routed-By"  # a routed request is never routed again


class KeyRouter:
    def __init__(self, app: faust.App, changelog: str, worker_name: str) -> None:
        self.app = app
        self.changelog = changelog
        self.worker_name = worker_name

    def owners(self) -> dict[str, list[int]]:
        """Which worker (by advertised URL) owns which partitions."""
        changelog = self.changelog
        return {
            host: sorted(topics.get(changelog, []))
            for host, topics in self.app.assignor.table_metadata(changelog).items()
        }

    async def answer_elsewhere(
        self, view: View, request: Request, key: str, partition: int, owned: set[int]
    ) -> Response | None:
        """The owner's answer when another worker owns ``partition``; None when we do."""
        if partition in owned:
            return None
        owner = next((h for h, ps in self.owners().items() if partition in ps), None)
        if owner is None or request.headers.get(ROUTED_HEADER):
            return view.error(
                503,
                f"no worker owns partition {partition} of key {key!r} right now (a rebalance "
                "is under way); retry shortly",
                key=key,
                partition=partition,
            )
        target = URL(owner).with_path(request.url.path).with_query(request.url.query)
        try:
            async with self.app.http_client.get(
                target, headers={ROUTED_HEADER: self.worker_name}
            ) as response:
                body = await response.read()
                return view.bytes(body, content_type="application/json", status=response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return view.error(
                502, f"the owner of partition {partition} at {owner} did not answer ({exc!r})"
            )
