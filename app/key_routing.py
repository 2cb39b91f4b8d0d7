"""Every worker answers for every key: a request for a key another worker owns is passed
to that worker, as Faust's assignor last distributed the partitions. While another
version of the pipeline is active, it goes to the active version's worker that owns the
key's partition instead (app.versions.status), so readers get the active numbers from
any worker."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import faust
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View
from yarl import URL

from app.versions.status import VersionStatus

ROUTED_HEADER = "X-Kappa-Routed-By"  # a routed request is never routed again
# The version whose worker answered: after a promotion, readers of any worker get the
# active version's answers, whose windows may be named otherwise (app.web sets it on
# every answer; a forwarded one keeps its owner's).
VERSION_HEADER = "X-Kappa-Version"


class KeyRouter:
    def __init__(
        self,
        app: faust.App,
        changelog: str,
        worker_name: str,
        versions: VersionStatus,
        behind: Callable[[int], bool],
    ) -> None:
        self.app = app
        self.changelog = changelog
        self.worker_name = worker_name
        self.versions = versions
        # Whether a partition's state is behind records it must read again from Kafka
        # (agents.batch_loop.BatchLoop.behind).
        self.behind = behind

    def owners(self) -> dict[str, list[int]]:
        """Which worker (by advertised URL) owns which partitions."""
        changelog = self.changelog
        return {
            host: sorted(topics.get(changelog, []))
            for host, topics in self.app.assignor.table_metadata(changelog).items()
        }

    def _unless_recovering(self, view: View, key: str, partition: int) -> Response | None:
        """None (this worker answers), unless its stores are being rebuilt from their
        changelogs after an assignment, or are behind records the worker must read
        again (rebuilt behind what the group had committed, or changes a failure
        dropped): a key read then may be missing or old."""
        if self.app.in_recovery:
            why = "is being recovered from its changelogs after a rebalance"
        elif self.behind(partition):
            why = (
                "is behind records it reads again from Kafka (its state was recovered behind "
                "the group's committed offsets, or a failed store dropped its unstored "
                "changes) and catches up within a commit interval"
            )
        else:
            return None
        return view.error(
            503,
            f"partition {partition} of key {key!r} {why}; retry shortly",
            key=key,
            partition=partition,
        )

    async def answer_elsewhere(
        self, view: View, request: Request, key: str, partition: int, owned: set[int]
    ) -> Response | None:
        """The owner's answer when another worker (or the active version) owns
        ``partition``; None when this worker answers."""
        if request.headers.get(ROUTED_HEADER):
            if partition in owned:
                return self._unless_recovering(view, key, partition)
            return _no_owner(view, key, partition)
        version = self.versions.forward_to()
        if version is None:
            if partition in owned:
                return self._unless_recovering(view, key, partition)
            owner = next((h for h, ps in self.owners().items() if partition in ps), None)
        else:
            try:
                owner = (await self.versions.active_owners(version)).get(partition)
            except (KafkaError, TimeoutError, OSError) as exc:
                return view.error(
                    503, f"could not find the workers of active version v{version} ({exc!r})"
                )
            if owner is None:
                return view.error(
                    503,
                    f"no worker of the active version v{version} owns partition {partition} "
                    f"of key {key!r}: start its workers, or promote a running version",
                    key=key,
                    partition=partition,
                    active_version=version,
                )
        if owner is None:
            return _no_owner(view, key, partition)
        target = URL(owner).with_path(request.url.path).with_query(request.url.query)
        try:
            async with self.app.http_client.get(
                target, headers={ROUTED_HEADER: self.worker_name}
            ) as response:
                body = await response.read()
                answered_by = response.headers.get(VERSION_HEADER, str(version or ""))
                return view.bytes(
                    body,
                    content_type="application/json",
                    status=response.status,
                    headers={VERSION_HEADER: answered_by} if answered_by else None,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return view.error(
                502, f"the owner of partition {partition} at {owner} did not answer ({exc!r})"
            )


def _no_owner(view: View, key: str, partition: int) -> Response:
    return view.error(
        503,
        f"no worker owns partition {partition} of key {key!r} right now (a rebalance "
        "is under way); retry shortly",
        key=key,
        partition=partition,
    )
